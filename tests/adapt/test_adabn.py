"""AdaBN re-estimates BatchNorm moving statistics on the target and changes nothing else."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model
from tests.helpers import weights_by_path
from tfxfer.adapt import adapt_batchnorm
from tfxfer.adapt.adabn import batchnorm_layers
from tfxfer.errors import ArgumentError, DataError, ModelError


def test_adabn_changes_batchnorm_statistics_and_nothing_else():
    model = tiny_model()
    bns = batchnorm_layers(model)
    flags = [(layer.name, layer.trainable) for layer in bns]
    momenta = [layer.momentum for layer in bns]
    trainable_before = [v.path for v in model.trainable_weights]
    before = weights_by_path([model])
    target = np.clip(tiny_images(32, seed=1)[0] * 0.2 + 200, 0, 255).astype("float32")
    report = adapt_batchnorm(model, target, batch_size=16)
    after = weights_by_path([model])
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    assert changed  # the statistics moved
    assert {p.rsplit("/", 1)[-1] for p in changed} <= {"moving_mean", "moving_variance"}
    assert report.layers == len(bns) and report.examples == 32 and report.mean_change > 0
    # BatchNorm stays frozen (inference mode) with its momentum; the trainable set is unchanged.
    assert [(layer.name, layer.trainable) for layer in bns] == flags
    assert [layer.momentum for layer in bns] == momenta
    assert [v.path for v in model.trainable_weights] == trainable_before


def test_adabn_statistics_are_the_target_statistics_for_the_first_batchnorm():
    inputs = keras.Input((4,))
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(bn(inputs)))
    bn.trainable = False
    target = np.random.default_rng(0).normal(loc=3.0, scale=2.0, size=(64, 4)).astype("float32")
    adapt_batchnorm(model, target, batch_size=16)
    np.testing.assert_allclose(bn.moving_mean.numpy(), target.mean(axis=0), rtol=1e-5, atol=1e-5)
    batch_vars = target.reshape(4, 16, 4).var(axis=1).mean(axis=0)  # equal batches: mean of batch variances
    np.testing.assert_allclose(bn.moving_variance.numpy(), batch_vars, rtol=1e-4)
    # Inference afterwards uses the new statistics: the target is normalised to ~zero mean.
    normalised = keras.Model(inputs, bn(inputs, training=False))(target).numpy()
    assert abs(normalised.mean()) < 0.05


def test_adabn_refuses_models_without_batchnorm_and_mismatched_targets():
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ModelError, match="no BatchNormalization layer"):
        adapt_batchnorm(dense, np.zeros((4, 3), "float32"))
    model = tiny_model()
    with pytest.raises(ArgumentError, match=r"`target` must have the model's input shape \(32, 32, 3\)"):
        adapt_batchnorm(model, np.zeros((4, 32, 32, 1), "float32"))
    with pytest.raises(ArgumentError, match="`batch_size`"):
        adapt_batchnorm(model, np.zeros((4, 32, 32, 3), "float32"), batch_size=1)


class _PinnedBatchNorm(keras.layers.Layer):
    """A custom layer that always runs its BatchNorm in inference mode."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bn = keras.layers.BatchNormalization()

    def call(self, x):
        return self.bn(x, training=False)


def test_adabn_refuses_a_model_that_pins_its_batchnorm_to_inference():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, _PinnedBatchNorm()(inputs))
    bn = model.layers[1].bn
    bn.moving_mean.assign(np.full(4, 0.25, "float32"))
    with pytest.raises(ModelError, match="no BatchNorm statistic moved"):
        adapt_batchnorm(model, np.random.default_rng(0).normal(size=(8, 4)).astype("float32"), batch_size=4)
    np.testing.assert_array_equal(bn.moving_mean.numpy(), np.full(4, 0.25, "float32"))  # its own statistics back


def test_adabn_run_twice_on_the_same_target_is_no_error():
    """A re-run (a notebook cell run again) finds the statistics already adapted: nothing moves, and
    that is no sign of a BatchNorm fixed in inference mode."""
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Dense(4)(inputs)))
    target = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    first = adapt_batchnorm(model, target, batch_size=8)
    second = adapt_batchnorm(model, target, batch_size=8)
    assert first.mean_change > 0 and second.mean_change == pytest.approx(0.0, abs=1e-6)


def test_adabn_refuses_a_one_example_target_and_skips_a_trailing_single_example():
    """One example has no variance: a BatchNorm on a 1x1 feature map would get a moving variance of 0."""
    inputs = keras.Input((1, 1, 2))
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, bn(inputs))
    target = np.random.default_rng(0).normal(size=(5, 1, 1, 2)).astype("float32")
    with pytest.raises(DataError, match="`target` has 1 example; AdaBN needs at least 2"):
        adapt_batchnorm(model, target[:1])
    np.testing.assert_array_equal(bn.moving_variance.numpy(), np.ones(2, "float32"))  # untouched
    with pytest.raises(ArgumentError, match="`max_examples` must be an int >= 2"):
        adapt_batchnorm(model, target, max_examples=1)
    report = adapt_batchnorm(model, target, batch_size=2)  # batches of 2, 2 and a trailing 1 (skipped)
    assert report.examples == 4 and (bn.moving_variance.numpy() > 0).all()
