"""`fine_tune` applies its learning-rate plan: the unfreezing stages run at
``base_lr * unfreeze_lr_factor`` and each backbone group below the head at ``layer_decay**depth`` of
it, while frozen groups do not move. Measured on the first Adam step of the unfreezing stage, whose
update per element is ``lr * g / (|g| + eps)``, i.e. the effective rate wherever |g| >> eps."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.freezing import layer_groups
from tfxfer.train.fine_tune import fine_tune

BASE_LR, FACTOR, DECAY = 1e-2, 0.1, 0.5


class FirstStepUpdates(keras.callbacks.Callback):
    """Largest |change| of every weight over the first batch of epoch ``start`` (the first unfreezing
    epoch: fine_tune's callbacks see the head step's fit too)."""

    def __init__(self, start: int):
        super().__init__()
        self.start, self.epoch = start, None
        self.before, self.update, self.learning_rate = None, None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.before is None and self.epoch == self.start:
            self.before = {v.path: np.array(v.numpy()) for v in self.model.weights}
            self.learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_batch_end(self, batch, logs=None):
        if self.update is None and self.before is not None:
            self.update = {v.path: float(np.max(np.abs(v.numpy() - self.before[v.path]))) for v in self.model.weights}


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_unfreezing_runs_at_the_factor_with_layerwise_decay(optimizer):
    keras.utils.set_random_seed(0)
    model = tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=0.0)
    x, y = tiny_images(48, size=16, classes=3, signal="mean_colour")
    probe = FirstStepUpdates(start=1)  # after head_epochs=1
    fine_tune(model, (x, y), head_epochs=1, epochs=1, stages={0: 2}, base_lr=BASE_LR, unfreeze_lr_factor=FACTOR,
              warmup_epochs=0, layer_decay=DECAY, optimizer=optimizer, batch_size=48, callbacks=[probe], verbose=0)
    lr = BASE_LR * FACTOR
    assert probe.learning_rate == pytest.approx(lr, rel=1e-6)
    groups = [g for g in layer_groups(model)]  # bottom to top, "head" last
    expected = {"head": lr}
    for depth, group in enumerate(reversed(groups[:-1]), start=1):
        expected[group] = lr * DECAY**depth if depth <= 2 else 0.0  # stages={0: 2}: the top two groups train
    checked = 0
    for group, layers in layer_groups(model).items():
        for layer in layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                continue  # frozen by the BatchNorm policy whatever the group
            for v in layer.trainable_weights + layer.non_trainable_weights:
                if not v.path.endswith("kernel"):
                    continue
                step = probe.update[v.path]
                if expected[group] == 0.0:
                    assert step == 0.0, f"{v.path} ({group}) is frozen but moved by {step}"
                else:
                    # adamw also decays the weights: lr * wd * |w| is far below lr for these small kernels
                    assert step == pytest.approx(expected[group], rel=0.05), f"{v.path} ({group})"
                checked += 1
    assert checked >= 4
    assert {g for g, e in expected.items() if e == 0.0}, "some groups must stay frozen in this plan"
