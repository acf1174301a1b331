"""Staged unfreezing: every stage checked before the first epoch, and a warmup/decay that spans the
stage even when tf.data cannot tell the number of batches."""

from __future__ import annotations


import keras
import pytest
import tensorflow as tf

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import ArgumentError, UnknownNameError
from tfxfer.freezing import GradualUnfreezing
from tfxfer.train.fine_tune import fine_tune

X, Y = tiny_images(16, size=16)


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen, self.rates = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(epoch)

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def _fit(schedule, epochs=3, **kw):
    model = tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    log = Epochs()
    model.fit(X, Y, epochs=epochs, batch_size=8, verbose=0, callbacks=[GradualUnfreezing(schedule, verbose=0, **kw), log])
    return log


@pytest.mark.parametrize("schedule, error, message", [
    ({0: 0, 2: ["no_such_group"]}, UnknownNameError, "no_such_group"),
    ({0: 0, 2: 99}, ArgumentError, r"`schedule\[2\]` must be an int in \[0, 2\]"),
])
def test_a_stage_the_model_cannot_take_fails_before_the_first_epoch(schedule, error, message):
    log = Epochs()
    with pytest.raises(error, match=message):
        model = tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(X, Y, epochs=3, batch_size=8, verbose=0, callbacks=[GradualUnfreezing(schedule, verbose=0), log])
    assert log.seen == []


def test_constructor_refuses_fractional_epochs_and_negative_groups():
    with pytest.raises(ArgumentError, match="must have integer epochs as keys"):
        GradualUnfreezing({0: 0, 1.7: 2})
    with pytest.raises(ArgumentError, match="number of top groups >= 0"):
        GradualUnfreezing({0: 0, 2: -1})
    assert GradualUnfreezing.from_config(GradualUnfreezing({0: 0, 1: 2}).get_config()).schedule == {0: 0, 1: 2}


def test_a_stage_after_the_last_epoch_is_warned_about():
    with pytest.warns(UserWarning, match=r"stage\(s\) starting at epoch\(s\) \[5\] come after the fit's last epoch"):
        _fit({0: 0, 5: 1}, epochs=2)


def test_fine_tune_on_a_dataset_of_unknown_size_warms_up_and_decays_over_the_stage():
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).filter(lambda a, b: True).batch(4)  # 4 batches, size unknown
    assert int(ds.cardinality()) == int(tf.data.UNKNOWN_CARDINALITY)
    model = tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)
    log = Epochs()
    fine_tune(model, ds, head_epochs=1, epochs=2, warmup_epochs=1, use_cached_features=False, callbacks=[log],
              verbose=0, keep_if_better=False, base_lr=1e-2, unfreeze_lr_factor=0.1)
    rates = log.rates[-8:]  # the unfreezing step: 2 epochs of 4 batches
    assert max(rates) == pytest.approx(1e-3) and rates.index(max(rates)) == 3  # warmup over the first epoch
    assert all(r > 0 for r in rates[:-1]) and rates[4] > rates[6]  # then a decay that spans the stage


def test_a_plain_fit_of_unknown_size_keeps_the_peak_rate_and_says_why():
    ds = tf.data.Dataset.from_tensor_slices((X, Y)).filter(lambda a, b: True).batch(4)
    model = tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    log = Epochs()
    with pytest.warns(UserWarning, match="number of batches per epoch is unknown"):
        model.fit(ds, epochs=2, verbose=0, callbacks=[GradualUnfreezing({0: 0, 1: 1}, learning_rates={1: 1e-3},
                                                                        warmup_epochs=1, verbose=0), log])
    assert log.rates[-4:] == [pytest.approx(1e-3)] * 4
