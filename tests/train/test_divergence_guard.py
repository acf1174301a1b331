"""Every training step stops on divergence (NaN/Inf or exploding loss) with the last good weights kept.

The head step on cached features, the head step end to end (``cached=False``) and the unfreezing step all
run `tfxfer.train.divergence.DivergenceGuard`: these tests make each diverge on purpose (a learning rate
that overflows, NaN inputs) and check the error, the weights put back and that nothing non-finite is left.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import TrainingDivergedError
from tfxfer.train.data import as_dataset
from tfxfer.train.divergence import DivergenceGuard
from tfxfer.train.fine_tune import fine_tune
from tfxfer.train.head import head_step, split_at_pool
from tfxfer.train.unfreeze import unfreeze_step


def _finite(model) -> bool:
    return all(np.all(np.isfinite(w)) for w in model.get_weights())


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def _model():
    return tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)


def _data(n=32):
    return tiny_images(n, size=16, signal="brightness")


def test_cached_head_step_with_an_overflowing_rate_raises_and_keeps_finite_weights():
    model = _model()
    head_before = split_at_pool(model)[1].get_weights()
    with pytest.raises(TrainingDivergedError) as info:
        head_step(model, as_dataset(_data(), batch_size=8), epochs=3, learning_rate=1e38, batch_size=8, verbose=0)
    assert _finite(model)
    assert info.value.epoch == 0 and info.value.batch is not None
    assert "put back" in str(info.value)
    # It diverged in the first epoch: the head is back at its starting weights.
    assert _same(split_at_pool(model)[1].get_weights(), head_before)


def test_end_to_end_head_step_with_an_overflowing_rate_raises_and_restores_the_start():
    model = _model()
    before = model.get_weights()
    ds = tf.data.Dataset.from_tensor_slices(_data()).batch(8)
    with pytest.raises(TrainingDivergedError, match="the weights the step started from were put back"):
        head_step(model, ds, epochs=2, learning_rate=1e38, batch_size=8, cached=False, verbose=0)
    assert _finite(model) and _same(model.get_weights(), before)


def test_cached_head_step_with_nan_inputs_raises():
    """NaN/Inf pixels in a tf.data input (arrays are screened before training) reach the cached features."""
    model = _model()
    x, y = _data()
    x = x.copy()
    x[0, 0, 0, 0] = np.inf
    with pytest.raises(TrainingDivergedError):
        head_step(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(8), epochs=2, learning_rate=1e-3,
                  batch_size=8, verbose=0)
    assert _finite(model)


def test_a_good_epoch_is_what_comes_back_after_a_later_divergence():
    """Epoch 0 trains normally; NaN labels arrive in epoch 1: the end-of-epoch-0 weights come back."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")

    class Poison(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.after_first = [np.array(w) for w in self.model.get_weights()] if epoch == 0 else self.after_first
            if epoch == 0:
                self.model.optimizer.learning_rate.assign(1e38)

    poison, guard = Poison(), DivergenceGuard()
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    with pytest.raises(TrainingDivergedError) as info:
        model.fit(x, x[:, :1] * 2, epochs=4, batch_size=8, verbose=0, callbacks=[poison, guard])
    assert info.value.epoch == 1 and guard.restored_epoch == 0
    assert _same(model.get_weights(), poison.after_first)


def test_an_exploding_but_finite_loss_stops_too():
    """SGD far above the stable rate on linear regression: the loss grows geometrically (finite for a while)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1.5), "mse")
    x = np.random.default_rng(1).normal(size=(64, 4)).astype("float32") * 3
    before = model.get_weights()
    guard = DivergenceGuard(explode_factor=100)
    with pytest.raises(TrainingDivergedError, match="exploded"):
        model.fit(x, x[:, :1], epochs=2, batch_size=1, shuffle=False, verbose=0, callbacks=[guard])
    assert guard.diverged["reason"] == "exploded" and np.isfinite(guard.diverged["value"])
    assert _same(model.get_weights(), before)
    # Without the explosion check the same run only stops once the loss overflows to inf / NaN.
    model2 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model2.set_weights(before)
    model2.compile(keras.optimizers.SGD(1.5), "mse")
    late = DivergenceGuard(explode_factor=None)
    with pytest.raises(TrainingDivergedError):
        model2.fit(x, x[:, :1], epochs=2, batch_size=1, shuffle=False, verbose=0, callbacks=[late])
    assert late.diverged["reason"] == "non-finite"
    assert (late.diverged["epoch"], late.diverged["batch"]) > (guard.diverged["epoch"], guard.diverged["batch"])


def test_a_healthy_run_is_untouched_and_the_guard_round_trips():
    model = _model()
    result = head_step(model, as_dataset(_data(), batch_size=8), epochs=2, learning_rate=1e-3, batch_size=8,
                       verbose=0)
    assert len(result.history["loss"]) == 2 and _finite(model)
    guard = DivergenceGuard(explode_factor=50, explode_floor=0.5, checkpoint_dir="/tmp/x")
    again = DivergenceGuard.from_config(guard.get_config())
    assert again.get_config() == guard.get_config()
    with pytest.raises(ValueError, match="explode_factor"):
        DivergenceGuard(explode_factor=0.5)


def test_unfreezing_step_divergence_keeps_finite_weights_and_names_the_error():
    model = _model()
    train = as_dataset(_data(), batch_size=8)
    with pytest.raises(TrainingDivergedError):
        unfreeze_step(model, train, epochs=2, learning_rate=1e38, warmup_epochs=0, verbose=0)
    assert _finite(model)


def test_fine_tune_head_divergence_surfaces_through_fine_tune():
    model = _model()
    x, y = _data()
    with pytest.raises(TrainingDivergedError):
        fine_tune(model, (x, y), val=_data(16), head_epochs=2, epochs=0, base_lr=1e38, batch_size=8, verbose=0)
    assert _finite(model)
