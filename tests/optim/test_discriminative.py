"""Per-group learning-rate multipliers give exact first-step update ratios (Adam and SGD)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.factories import tiny_images, tiny_model
from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError
from tfxfer.freezing import group_names, unfreeze
from tfxfer.optim import (
    DiscriminativeAdam, DiscriminativeAdamW, DiscriminativeSGD, discriminative, group_multipliers, layerwise_decay,
)


def _setup():
    model = tiny_model(2, dropout=0.0)
    unfreeze(model, top_groups=2)
    names = group_names(model)
    mults = {"head": 1.0, names[-2]: 0.1, names[-3]: 0.01}
    x, y = tiny_images(8)
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        loss = tf.reduce_mean(loss)
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    return model, names, mults, variables, grads


def _group_of(model, names, path):
    mapping = {}
    for group, mult in group_multipliers(model, {g: 1.0 for g in names}).items():
        mapping[group] = mult
    from tfxfer.freezing import layer_groups

    for g, layers in layer_groups(model).items():
        if any(v.path == path for l in layers for v in l.weights):
            return g
    raise AssertionError(path)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_first_step_updates_scale_exactly_with_the_multipliers(kind):
    model, names, mults, variables, grads = _setup()
    lr, eps = 1e-2, 1e-7
    multipliers = group_multipliers(model, mults)
    if kind == "adam":
        opt = DiscriminativeAdam(learning_rate=lr, epsilon=eps, lr_multipliers=multipliers)
    else:
        opt = DiscriminativeSGD(learning_rate=lr, lr_multipliers=multipliers)
    before = [v.numpy().copy() for v in variables]
    opt.apply(grads, variables)
    seen = set()
    for v, g, b in zip(variables, grads, before):
        group = _group_of(model, names, v.path)
        mult = mults[group]
        seen.add(group)
        g = g.numpy()
        delta = b - v.numpy()
        if kind == "adam":
            # Keras Adam's first step: lr*sqrt(1-b2)/(1-b1) * (1-b1)g / (sqrt((1-b2)g^2) + eps)
            expected = lr * mult * g / (np.abs(g) + eps / np.sqrt(1 - 0.999))
        else:
            expected = lr * mult * g
        # atol: float32 rounding of w - delta; the smallest full step here is lr * 0.01 = 1e-4.
        np.testing.assert_allclose(delta, expected, rtol=2e-3, atol=2e-7)
    assert seen == set(mults)


def test_measured_ratios_between_groups():
    model, names, mults, variables, grads = _setup()
    opt = DiscriminativeSGD(learning_rate=1.0, lr_multipliers=group_multipliers(model, mults))
    for v in variables:  # start from zero so the update is read back without float32 rounding
        v.assign(np.zeros(v.shape, v.dtype))
    before = [v.numpy().copy() for v in variables]
    opt.apply(grads, variables)
    ratio = {}
    for v, g, b in zip(variables, grads, before):
        g = g.numpy()
        mask = np.abs(g) > 0
        if mask.any():
            ratio.setdefault(_group_of(model, names, v.path), []).append(
                float(np.median(((b - v.numpy())[mask]) / g[mask])))
    assert np.median(ratio[names[-3]]) == pytest.approx(0.01, rel=1e-4)
    assert np.median(ratio[names[-2]]) == pytest.approx(0.1, rel=1e-4)
    assert np.median(ratio["head"]) == pytest.approx(1.0, rel=1e-4)


def test_regex_rules_and_default_multiplier():
    opt = DiscriminativeAdam(lr_multipliers={"exact/kernel": 0.5, r"^block_1\d_": 0.2})
    var = keras.Variable(np.zeros(2), name="kernel")
    assert opt.multiplier_for(var) == 1.0
    class V:  # duck-typed variable with a path
        def __init__(self, path):
            self.path = path
    assert opt.multiplier_for(V("exact/kernel")) == 0.5
    assert opt.multiplier_for(V("block_13_expand/kernel")) == 0.2
    assert opt.multiplier_for(V("Conv1/kernel")) == 1.0


def test_layerwise_decay_is_geometric_from_the_head_down():
    model = tiny_model(2)
    mults = layerwise_decay(model, decay=0.5)
    names = group_names(model)
    head_kernel = model.get_layer("head").kernel.path
    assert mults[head_kernel] == 1.0
    top_kernel = model.get_layer("mobilenet_v2").get_layer("Conv_1").kernel.path
    assert mults[top_kernel] == 0.5
    stem_kernel = model.get_layer("mobilenet_v2").get_layer("Conv1").kernel.path
    assert mults[stem_kernel] == pytest.approx(0.5 ** (len(names) - 1))


def test_keras_round_trip_with_schedule_and_resumed_training(tmp_path):
    from tfxfer.optim import WarmupSchedule

    model = tiny_model(2)
    unfreeze(model, top_groups=1)
    sched = WarmupSchedule(1e-3, 2, 10)
    model.compile(optimizer=DiscriminativeAdamW(sched, weight_decay=1e-4, lr_multipliers=layerwise_decay(model)),
                  loss="sparse_categorical_crossentropy")
    x, y = tiny_images(8)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, DiscriminativeAdamW)
    assert loaded.optimizer.lr_multipliers == model.optimizer.lr_multipliers
    assert isinstance(loaded.optimizer._learning_rate, WarmupSchedule)
    assert int(loaded.optimizer.iterations.numpy()) == 2
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert int(loaded.optimizer.iterations.numpy()) == 4


def test_works_under_jit_compile():
    model = tiny_model(2)
    unfreeze(model, top_groups=1)
    # Adam: random-init MobileNetV2 features are ~1e-12 at 32x32, too small for a visible SGD step.
    model.compile(optimizer=discriminative("adam", learning_rate=0.1, lr_multipliers=layerwise_decay(model)),
                  loss="sparse_categorical_crossentropy", jit_compile=True)
    x, y = tiny_images(8)
    kernel = model.get_layer("head").kernel.numpy().copy()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert not np.array_equal(kernel, model.get_layer("head").kernel.numpy())


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda m: DiscriminativeAdam(lr_multipliers=[1]), ArgumentTypeError, "`lr_multipliers` must be a dict"),
        (lambda m: DiscriminativeAdam(lr_multipliers={"a": -1}), ArgumentError,
         r"`lr_multipliers\['a'\]` must be a finite number >= 0. Received: lr_multipliers\['a'\]=-1"),
        (lambda m: group_multipliers(m, {"stem": True}), ArgumentError,
         r"`multipliers\['stem'\]` must be a finite number >= 0. Received: multipliers\['stem'\]=True"),
        (lambda m: discriminative("rmsprop", learning_rate=1e-3, lr_multipliers={}), ArgumentError, "`optimizer`"),
        (lambda m: group_multipliers(m, {"stme": 0.1}), UnknownNameError, "Did you mean: 'stem'"),
        (lambda m: layerwise_decay(m, decay=0), ArgumentError, r"`decay` must be a finite number in \(0, 1\]"),
    ],
)
def test_bad_arguments(call, error, match):
    model = tiny_model(2)
    with pytest.raises(error, match=match):
        call(model)


def _two_dense():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense_a"), keras.layers.Dense(2, name="head")])


def test_a_key_that_is_not_a_regex_is_refused_at_construction():
    with pytest.raises(ArgumentError, match=r"`lr_multipliers\['dense_a/kernel\['\]` must be a variable path or a valid "
                                            "regular expression"):
        DiscriminativeAdam(1e-1, lr_multipliers={"head": 1.0, "dense_a/kernel[": 0.0})


@pytest.mark.parametrize("multipliers", [{"densea/kernel": 0.0}, {"stem": 0.0}])
def test_keys_that_match_no_variable_warn_at_build_naming_them(multipliers):
    model = _two_dense()
    model.compile(optimizer=DiscriminativeAdam(1e-1, lr_multipliers=multipliers), loss="mse")
    key = next(iter(multipliers))
    with pytest.warns(UserWarning, match=f"No key of lr_multipliers \\('{key}'\\) matches any of the 4 variables"):
        model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)


def test_partly_matching_keys_are_silent_and_listed_by_unmatched_keys():
    model = _two_dense()
    opt = DiscriminativeAdam(1e-1, lr_multipliers={"dense_a/kernel": 0.0, "densea/bias": 0.0, "frozen_layer/": 0.5})
    model.compile(optimizer=opt, loss="mse")
    before = model.get_layer("dense_a").kernel.numpy().copy()
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)  # no warning: one key matches
    np.testing.assert_array_equal(before, model.get_layer("dense_a").kernel.numpy())
    assert opt.unmatched_keys(model.variables) == ["densea/bias", "frozen_layer/"]
    clone = DiscriminativeAdam.from_config(opt.get_config())
    assert clone.lr_multipliers == opt.lr_multipliers and clone.unmatched_keys(model.variables) == ["densea/bias",
                                                                                                  "frozen_layer/"]


def test_layerwise_decay_on_a_partly_frozen_model_builds_without_a_warning():
    model = tiny_model(2)  # backbone frozen: only the head's variables reach build, BN statistics never do
    opt = DiscriminativeAdam(1e-3, lr_multipliers=layerwise_decay(model, decay=0.5))
    opt.build(model.trainable_variables)
    assert 0 < len(opt.unmatched_keys(model.trainable_variables)) < len(opt.lr_multipliers)


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooled"])
def test_layerwise_decay_of_a_text_model_matches_the_text_rule(pooling):
    """An unused pooler took a depth level, so every encoder layer got half the multiplier
    text_layerwise_decay gives it; now both agree variable for variable."""
    from tests.factories import tiny_text_classifier
    from tfxfer.text import text_layerwise_decay

    model = tiny_text_classifier(2, pooling=pooling)
    generic = layerwise_decay(model, decay=0.5)
    assert generic == text_layerwise_decay(model, decay=0.5)
    top = next(p for p in generic if p.startswith("transformer_layer_1/"))
    assert generic[top] == (0.25 if pooling == "pooled" else 0.5)
