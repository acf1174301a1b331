"""Hostile inputs to the adaptation methods: NaN / infinite data, labels that are not class ids,
targets of the wrong shape or too small. Each is refused with a typed error naming the argument,
before the model changes; a divergence that only shows in the weights is stopped and rolled back."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.adapt import (DANN, AdaptationDivergedError, DeepCORAL, adapt_batchnorm, adaptation_dataset,
                          correct_label_shift, detect_shift, fit_temperature, self_train)
from tfxfer.errors import ArgumentError, DataError


def _dense(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="x")
    features = keras.layers.Dense(8, activation="relu", name="feat")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(features), name="dense")


def _arrays():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(32, 4)).astype("float32")
    xt = (rng.normal(size=(32, 4)) * 2 + 1).astype("float32")
    return xs, (xs[:, 0] > 0).astype("int64"), xt


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def images():
    return tiny_images(16, size=16)


def _image_model():
    return tiny_model(2, backbone=tiny_spec("mobilenet_v2"), size=16, seed=0)


# ---- 1. DeepCORAL / DANN ------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["source", "target"])
def test_adaptation_dataset_refuses_non_finite_inputs_naming_the_first(where):
    xs, ys, xt = _arrays()
    bad = (xs if where == "source" else xt).copy()
    bad[3, 1] = np.nan
    bad[5, 0] = np.inf
    args = ((bad, ys), xt) if where == "source" else ((xs, ys), bad)
    with pytest.raises(DataError, match=rf"`{where}` holds 2 NaN or infinite .*\(3, 1\)"):
        adaptation_dataset(*args, batch_size=8)


class _NanToZeroDense(keras.layers.Dense):
    """A Dense layer whose output has NaN replaced by 0: the forward pass stays finite on any CPU, while
    the kernel's gradient (input^T @ upstream, NaN * 0 = NaN) does not. Whether ReLU maps NaN to 0 or
    keeps it depends on the CPU's kernels (it does on Intel, not on AMD EPYC), so the test does not rely
    on it."""

    def call(self, inputs):
        out = super().call(inputs)
        return keras.ops.where(keras.ops.isnan(out), keras.ops.zeros_like(out), out)


def _nan_blind_dense(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,), name="x")
    features = _NanToZeroDense(8, activation="relu", name="feat")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(features), name="dense")


@pytest.mark.parametrize("cls", [DeepCORAL, DANN])
def test_weights_turning_nan_under_a_finite_loss_stop_and_roll_back(cls):
    # A dataset built by hand bypasses adaptation_dataset's checks: one NaN target value turns the
    # feature kernel NaN while the loss stays finite (the feature layer maps NaN outputs to 0).
    xs, ys, xt = _arrays()
    xt[3, 1] = np.nan
    model = _nan_blind_dense()
    start = _weights(model)
    trainer = cls(model, feature_layer="feat")
    trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ds = tf.data.Dataset.from_tensor_slices(((xs, xt), ys)).batch(8)
    with pytest.raises(AdaptationDivergedError, match="NaN or infinite") as info:
        trainer.fit(ds, epochs=2, verbose=0)
    assert info.value.reason == "nan" and info.value.method == cls.__name__
    assert _same(_weights(model), start)  # the NaN came in the first epoch: the start is the last good state
    assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in trainer.optimizer.variables
               if "float" in str(v.dtype))
    clean = tf.data.Dataset.from_tensor_slices(((xs, xs[::-1].copy()), ys)).batch(8)
    trainer.fit(clean, epochs=1, verbose=0)  # the trainer is usable again
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_adaptation_dataset_needs_two_target_examples():
    xs, ys, xt = _arrays()
    with pytest.raises(DataError, match="`target` has 1 example; .*at least 2"):
        adaptation_dataset((xs, ys), xt[:1], batch_size=8)


def test_fit_checks_source_labels_against_the_wrapped_model():
    xs, _, xt = _arrays()
    trainer = DeepCORAL(_dense(), feature_layer="feat")
    trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ArgumentError, match=r"`source` must be class ids in \[0, 1\]"):
        trainer.fit(adaptation_dataset((xs, np.full(32, 5)), xt, batch_size=8), epochs=1, verbose=0)


@pytest.mark.parametrize("labels, match", [
    (np.array(["a", "b"] * 16), r"`source` must be integer class ids .*dtype <U1"),
    (np.where(np.arange(32) % 2, np.nan, 1.0), r"`source` must be finite class ids.*including nan"),
    (np.full(32, 0.5), r"`source` must be whole-number class ids"),
])
def test_labels_that_are_not_class_ids_are_refused_by_name(labels, match):
    xs, _, xt = _arrays()
    with pytest.raises(ArgumentError, match=match):
        adaptation_dataset((xs, labels), xt, batch_size=8, model=_dense())


# ---- 2. AdaBN -----------------------------------------------------------------------------------
def test_adabn_refuses_a_nan_target_and_leaves_the_model_untouched(images):
    x, _ = images
    model = _image_model()
    start = _weights(model)
    target = x.copy()
    target[2, 4, 5, 1] = np.nan
    with pytest.raises(DataError, match=r"`target` holds 1 NaN .*\(2, 4, 5, 1\)"):
        adapt_batchnorm(model, target, batch_size=8)
    assert _same(_weights(model), start)


# ---- 3. detect_shift ----------------------------------------------------------------------------
def test_detect_shift_refuses_an_all_nan_target(images):
    x, y = images
    with pytest.raises(DataError, match="`target` holds .* NaN"):
        detect_shift(_image_model(), (x, y), np.full_like(x, np.nan), permutations=200)
    with pytest.raises(DataError, match="`target` holds .* NaN"):  # datasets and feature matrices too
        detect_shift(None, np.ones((8, 3)), tf.data.Dataset.from_tensor_slices(np.full((8, 3), np.inf)).batch(4),
                     permutations=200)


# ---- 4. correct_label_shift ---------------------------------------------------------------------
@pytest.mark.parametrize("call, error, match", [
    (lambda x, y: dict(target=x[..., :1], source_labels=y), ArgumentError, r"`target` must have the model's input"),
    (lambda x, y: dict(target=x, source_labels=np.array([0, 1, 5, 5])), ArgumentError,
     r"`source_labels` must be class ids in \[0, 1\]"),
    (lambda x, y: dict(target=x, source_labels=np.array([0, 1, -1])), ArgumentError,
     r"`source_labels` must be class ids >= 0"),
    (lambda x, y: dict(target=x, source_labels=np.zeros(16, int)), ArgumentError,
     r"`source_labels` must hold every one of the model's 2 classes"),
    (lambda x, y: dict(target=x, source_labels=y, calibration=(x, np.full(16, 7))), ArgumentError,
     r"`calibration` must be class ids in \[0, 1\]"),
    (lambda x, y: dict(target=x, source_labels=y, calibration=(x[..., :1], y)), ArgumentError,
     r"`calibration` must have the model's input"),
    (lambda x, y: dict(target=np.full_like(x, np.nan), source_labels=y), DataError, r"`target` holds .* NaN"),
])
def test_correct_label_shift_checks_its_inputs_before_changing_the_model(images, call, error, match):
    x, y = images
    model = _image_model()
    start = _weights(model)
    with pytest.raises(error, match=match):
        correct_label_shift(model, **call(x, y))
    assert _same(_weights(model), start)


def test_correct_label_shift_applies_nothing_when_em_does_not_converge(images):
    x, y = images
    model = _image_model()
    start = _weights(model)
    estimate = correct_label_shift(model, x[:1], source_labels=y)
    assert not estimate.converged and not estimate.applied
    assert "no correction was applied" in estimate.describe()
    assert _same(_weights(model), start)


def test_fit_temperature_refuses_labels_outside_the_classes():
    with pytest.raises(ArgumentError, match=r"`labels` must be class ids in \[0, 1\]"):
        fit_temperature(np.full((4, 2), 0.5), np.array([0, 1, 7, 0]))


# ---- 5. self_train ------------------------------------------------------------------------------
def test_self_train_names_a_nan_source_as_data():
    xs, ys, xt = _arrays()
    xs[0, 0] = np.nan
    model = _dense()
    model.compile("adam", "sparse_categorical_crossentropy")
    start = _weights(model)
    with pytest.raises(DataError, match=r"`source` holds 1 NaN .*\(0, 0\)"):
        self_train(model, (xs, ys), xt, threshold=0.5, rounds=1)
    with pytest.raises(ArgumentError, match="`source` must be integer class ids"):
        self_train(model, (np.nan_to_num(xs), np.array(["a", "b"] * 16)), xt, threshold=0.5, rounds=1)
    assert _same(_weights(model), start)


def test_alignment_fit_on_plain_arrays_is_a_typed_error_naming_x():
    from tfxfer.errors import ArgumentTypeError

    xs, ys = tiny_images(8, size=16, classes=2)
    for cls in (DANN, DeepCORAL):
        trainer = cls(tiny_model(2, backbone=tiny_spec("mobilenet_v2"), size=16, hidden_units=8, seed=0),
                      feature_layer="head_hidden")
        trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        with pytest.raises(ArgumentTypeError, match="`x` must be a dataset from tfxfer.adapt.adaptation_dataset"):
            trainer.fit(xs, ys, epochs=1, verbose=0)
        with pytest.raises(ArgumentError, match="`x`"):
            trainer.fit(tf.data.Dataset.from_tensor_slices((xs, ys)).batch(4), epochs=1, verbose=0)


def test_reverse_validation_refuses_names_and_negative_ids():
    from tfxfer.adapt import reverse_validation

    rng = np.random.default_rng(0)
    xt, xs, ys = rng.normal(size=(20, 3)), rng.normal(size=(20, 3)), np.arange(20) % 2
    with pytest.raises(ArgumentError, match="target_predictions.*integer class ids"):
        reverse_validation(xt, np.array(["cat", "dog"] * 10), xs, ys)
    with pytest.raises(ArgumentError, match="target_predictions.*>= 0"):
        reverse_validation(xt, np.arange(20) % 2 - 1, xs, ys)


def test_an_unbatched_target_dataset_is_told_to_batch():
    model = tiny_model(2, backbone=tiny_spec("mobilenet_v2"), size=16, seed=0)
    x, _ = tiny_images(6, size=16, classes=2)
    with pytest.raises(ArgumentError, match=r"dataset\.batch\(32\)"):
        adapt_batchnorm(model, tf.data.Dataset.from_tensor_slices(x))
