"""Divergence: NaN/Inf stops the run with a clear message and the last good checkpoint is kept."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfxfer.errors import ArgumentTypeError
from tfxfer.reliability import ResumableCheckpoint, StopOnDivergence, TrainingDivergedError, latest_state


def _model(lr):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(lr), "mse")
    return model


class Blowup(keras.callbacks.Callback):
    """Sets the learning rate far too high from ``epoch`` on: a run that diverges mid-training."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch_at = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch_at:
            self.model.optimizer.learning_rate.assign(1e12)


def test_divergence_stops_names_batch_and_keeps_the_last_good_checkpoint(tmp_path):
    model = _model(0.01)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = x.sum(1, keepdims=True)
    ckpt = ResumableCheckpoint(str(tmp_path))
    stop = StopOnDivergence(checkpoint_dir=str(tmp_path))
    with pytest.raises(TrainingDivergedError, match=r"diverged at epoch 2, batch \d+: loss = (nan|inf).*"
                                                    r"last good checkpoint is .*epoch-00001") as info:
        model.fit(x, y, epochs=6, batch_size=8, callbacks=[ckpt, stop, Blowup(2)], verbose=0)
    assert info.value.epoch == 2 and info.value.checkpoint.endswith("epoch-00001")
    assert "learning rate" in str(info.value) and "clipnorm" in str(info.value)
    assert isinstance(info.value, FloatingPointError)
    state = latest_state(str(tmp_path))
    assert state.epoch == 1 and np.isfinite(state.logs["loss"])
    with np.load(f"{state.path}/arrays.npz", allow_pickle=False) as npz:
        assert all(np.all(np.isfinite(npz[k])) for k in npz.files if npz[k].dtype.kind == "f")
    # The run can restart from that checkpoint at a sane learning rate.
    fresh = _model(0.01)
    ckpt2 = ResumableCheckpoint(str(tmp_path))
    history = fresh.fit(x, y, epochs=4, initial_epoch=ckpt2.initial_epoch, batch_size=8, verbose=0,
                        callbacks=[ckpt2, StopOnDivergence()])
    assert np.isfinite(history.history["loss"]).all() and ckpt2.restored_from == state.path


def test_nan_inputs_stop_at_the_first_batch_without_raising_when_asked():
    model = _model(0.01)
    x = np.ones((16, 4), "float32")
    x[3, 1] = np.inf
    stop = StopOnDivergence(raise_error=False)
    history = model.fit(x, x[:, :1], epochs=3, batch_size=8, callbacks=[stop], verbose=0)
    assert stop.diverged["epoch"] == 0 and stop.diverged["batch"] == 0
    assert len(history.history["loss"]) == 1  # stopped in the first epoch


def test_non_finite_weights_are_caught_at_epoch_end_and_config_round_trips():
    model = _model(0.01)
    x = np.ones((8, 4), "float32")

    class PoisonWeights(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            kernel = self.model.layers[0].kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    stop = StopOnDivergence(monitor="loss")
    with pytest.raises(TrainingDivergedError, match="weight .*kernel = nan.*No checkpoint was saved"):
        model.fit(x, x[:, :1], epochs=3, callbacks=[PoisonWeights(), stop], verbose=0)
    assert StopOnDivergence.from_config(stop.get_config()).monitor == ("loss",)
    with pytest.raises(ArgumentTypeError, match="`monitor` must be a log key"):
        StopOnDivergence(monitor=3)
