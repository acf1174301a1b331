"""`fine_tune`'s defaults and the API around them: best-epoch restore, the head-only fallback, the per-step
record, test evaluation, gray arrays, balanced class weights, warmup as a share of each stage."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tests.helpers import weights_by_path
from tfxfer.errors import ArgumentError
from tfxfer.train.best import RestoreBest, better
from tfxfer.train.fine_tune import fine_tune
from tfxfer.train.plan import auto_plan
from tfxfer.train.unfreeze import StagedUnfreezing


def _model(num_classes):
    """MobileNetV2's groups and layer names on the factories' ~1k-parameter look-alike: the picked plan and
    the stages are the real ones, the steps take a fraction of the time."""
    return tiny_model(num_classes, backbone=tiny_spec("mobilenet_v2"))


class Sabotage(keras.callbacks.Callback):
    """Scramble the head kernel at the start of every epoch from ``start`` on (the unfreezing step)."""

    def __init__(self, start):
        super().__init__()
        self.start = start

    def on_epoch_begin(self, epoch, logs=None):
        if epoch >= self.start:
            head = self.model.get_layer("predictions") if "predictions" in [l.name for l in self.model.layers] \
                else self.model.layers[-1]
            kernel = head.weights[0]
            kernel.assign(np.random.default_rng(epoch).normal(0, 50, kernel.shape).astype("float32"))


def test_unfreezing_that_does_not_beat_the_head_is_undone_and_said():
    model = _model(2)
    x, y = tiny_images(32)
    probe = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2 and not probe:
                probe.update(weights_by_path(model.layers))

    result = fine_tune(model, (x, y), val=(x, y), head_epochs=2, epochs=2, batch_size=16, verbose=0,
                       callbacks=[Snapshot(), Sabotage(start=2)])
    assert result.selection["kept"] == "head"
    assert not better(result.selection["fine_tuned"], result.selection["head"], monitor="val_loss")
    assert any("head-only weights were restored" in n for n in result.notes)
    after = weights_by_path(model.layers)
    assert all(np.array_equal(probe[k], after[k]) for k in probe)
    assert [s["name"] for s in result.steps] == ["head", "unfreeze"]
    assert all(s["wall_s"] > 0 for s in result.steps)


def test_defaults_are_picked_from_the_data_and_recorded():
    model = _model(2)
    x, y = tiny_images(16)
    result = fine_tune(model, (x, y), val=(x, y), test=(x, y), epochs=1, batch_size=8, verbose=0)
    assert set(result.settings["picked"]) == {"head_epochs", "base_lr", "unfreeze_lr_factor", "layer_decay"}
    assert result.settings["head_epochs"] == 30 and result.settings["stages"] == {0: 2}
    assert result.steps[0]["epochs"] <= 30 and result.steps[0]["best_epoch"] is not None
    assert set(result.test) >= {"loss", "accuracy"} and 0.0 <= result.test["accuracy"] <= 1.0
    assert auto_plan(n=500, text=False, groups=8, cached=True)["epochs"] == 5
    assert auto_plan(n=50000, text=False, groups=8, cached=True)["stages"] == {0: 4}


def test_gray_arrays_and_balanced_class_weights():
    model = _model(2)
    x, y = tiny_images(16, channels=1)
    y = np.array([0] * 12 + [1] * 4)
    result = fine_tune(model, (x[..., 0], y), head_epochs=1, epochs=0, batch_size=8, class_weight="balanced",
                       verbose=0)
    assert result.settings["class_weight"] == {0: 16 / 24, 1: 16 / 8}
    with pytest.raises(ArgumentError, match="class_weight"):
        fine_tune(model, (x[..., 0], y), head_epochs=1, epochs=0, class_weight="inverse", verbose=0)


def test_restore_best_puts_back_the_best_epoch():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    cb = RestoreBest("val_loss")
    cb.set_model(model)
    cb.on_train_begin()
    for epoch, loss in enumerate([0.5, 0.2, 0.9]):
        model.layers[0].kernel.assign([[float(epoch)]])
        cb.on_epoch_end(epoch, {"val_loss": loss})
    cb.on_train_end()
    assert cb.best_epoch == 1 and float(model.layers[0].kernel.numpy()[0, 0]) == 1.0


def test_warmup_share_warms_up_once_then_decays_within_a_one_epoch_stage():
    cb = StagedUnfreezing({0: 0}, learning_rates={0: 1e-3}, warmup_share=0.1, verbose=0)
    cb.params = {"epochs": 1, "steps": 20}

    class Holder:
        optimizer = keras.optimizers.Adam(1e-3)
        trainable_variables = []
        distribute_strategy = None

    cb.set_model(Holder())
    cb._fresh_optimizer(0, 0)
    schedule = cb.model.optimizer._learning_rate
    rates = [float(schedule(step)) if callable(schedule) else float(schedule) for step in (0, 2, 10, 19)]
    assert rates[1] == pytest.approx(1e-3, rel=1e-3) and rates[3] < rates[2] < rates[1]
