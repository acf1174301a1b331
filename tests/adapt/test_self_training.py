"""Self-training: confident pseudo-labels are trained on, collapse and NaN stop with weights restored."""

import keras
import numpy as np
import pytest

from tfxfer.adapt import AdaptationDivergedError, self_train
from tfxfer.errors import ArgumentError, ModelError


def _model(bias=(0.0, 0.0), lr=1e-2):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax", name="head")])
    model.get_layer("head").set_weights([np.array([[4.0, -4.0], [0.0, 0.0]], "float32"), np.array(bias, "float32")])
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    return model


def _data(rng, n=64):
    xs = rng.normal(size=(n, 2)).astype("float32")
    ys = (xs[:, 0] < 0).astype("int64")  # weight [4, -4] on x0: class 0 for x0 > 0
    xt = (xs + np.float32(0.3)).astype("float32")
    return xs, ys, xt


def test_only_confident_target_examples_are_pseudo_labelled(rng):
    xs, ys, xt = _data(rng)
    model = _model()
    probs = model.predict(xt, verbose=0)
    expected = int((probs.max(axis=1) >= 0.97).sum())
    assert 0 < expected < len(xt)
    result = self_train(model, (xs, ys), xt, threshold=0.97, rounds=1, epochs=1)
    first = result.rounds[0]
    assert first.selected == expected and first.candidates == len(xt)
    assert sum(first.class_counts) == expected
    assert first.mean_confidence >= 0.97 and first.loss is not None
    assert result.stopped == "completed" and "1 round(s)" in result.summary()


def test_no_confident_prediction_stops_without_training(rng):
    xs, ys, xt = _data(rng)
    model = _model()
    model.get_layer("head").set_weights([np.zeros((2, 2), "float32"), np.zeros(2, "float32")])  # always 0.5
    before = [w.copy() for w in model.get_weights()]
    result = self_train(model, (xs, ys), xt, threshold=0.9, rounds=3)
    assert result.stopped == "no confident predictions" and len(result.rounds) == 1
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_pseudo_label_collapse_raises_and_keeps_the_weights(rng):
    xs, ys, xt = _data(rng)
    model = _model(bias=(20.0, -20.0))  # every target example confidently class 0
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(AdaptationDivergedError, match="pseudo-labels collapsed in round 0: 100% .* class 0") as info:
        self_train(model, (xs, ys), xt, threshold=0.9, rounds=2)
    assert info.value.reason == "collapse" and info.value.method == "self_train"
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    # Opting out of the check lets it run.
    assert self_train(model, (xs, ys), xt, threshold=0.9, rounds=1, max_class_fraction=None).rounds[0].selected == 64


def test_collapse_after_a_round_restores_the_weights_from_before_that_round(rng):
    xs, ys, xt = _data(rng)
    ys_biased = np.zeros_like(ys)  # a source that teaches one class drives the pseudo-labels there
    model = _model(lr=0.5)
    start = [w.copy() for w in model.get_weights()]
    with pytest.raises(AdaptationDivergedError, match=r"collapsed in round [1-5].*weights from before round") as info:
        self_train(model, (xs, ys_biased), xt, threshold=0.6, rounds=6, epochs=3, max_class_fraction=0.9)
    assert info.value.epoch >= 1
    assert any(not np.array_equal(a, b) for a, b in zip(start, model.get_weights()))  # earlier rounds kept
    # The restored weights are the ones whose pseudo-labels were still healthy.
    probs = model.predict(xt, verbose=0)
    confident = probs.argmax(axis=1)[probs.max(axis=1) >= 0.6]
    assert np.bincount(confident, minlength=2).max() / len(confident) <= 0.9


def test_a_collapse_caused_by_the_last_round_is_raised_and_undone(rng):
    """rounds=1: the only check before training passes; the round's training collapses the model."""
    xs, ys, xt = _data(rng)
    model = _model()
    model.compile(keras.optimizers.SGD(20.0), "sparse_categorical_crossentropy")  # one full batch: deterministic
    start = [w.copy() for w in model.get_weights()]
    with pytest.raises(AdaptationDivergedError, match=r"collapsed after the last round \(0\).*before round 0") as info:
        self_train(model, (xs, np.zeros_like(ys)), xt, threshold=0.6, rounds=1, batch_size=256, max_class_fraction=0.9)
    assert info.value.reason == "collapse"
    for a, b in zip(start, model.get_weights()):  # the round that collapsed it is undone
        np.testing.assert_array_equal(a, b)


def test_source_labels_as_a_column_are_class_ids(rng):
    """(n, 1) labels, as Keras fit takes them; pseudo-labels keep that shape (a model fitted on (n, 1)
    labels cannot be fitted on (n,) ones afterwards)."""
    xs, ys, xt = _data(rng)
    model = _model()
    model.fit(xs, ys[:, None], epochs=1, verbose=0)
    result = self_train(model, (xs, ys[:, None]), xt, threshold=0.5, rounds=1, max_class_fraction=None)
    assert result.stopped == "completed" and result.rounds[0].loss is not None


def test_a_nan_loss_restores_the_previous_weights(rng):
    xs, ys, xt = _data(rng)
    model = _model()
    model.compile(keras.optimizers.SGD(1e38), "sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(AdaptationDivergedError, match="loss became (nan|inf)"):
        self_train(model, (xs * np.float32(1e30), ys), xt, threshold=0.5, rounds=1, max_class_fraction=None)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_inputs_are_named(rng):
    xs, ys, xt = _data(rng)
    model = _model()
    with pytest.raises(ArgumentError, match=r"`target` must have the model's input shape \(2,\)"):
        self_train(model, (xs, ys), np.zeros((4, 3), "float32"))
    with pytest.raises(ArgumentError, match=r"`source`.*class ids in \[0, 1\]"):
        self_train(model, (xs, ys + 2), xt)
    with pytest.raises(ArgumentError, match="`threshold`"):
        self_train(model, (xs, ys), xt, threshold=0.0)
    with pytest.raises(ArgumentError, match="`source` must be an \\(x, y\\) tuple"):
        self_train(model, xs, xt)
    uncompiled = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    with pytest.raises(ModelError, match="not compiled"):
        self_train(uncompiled, (xs, ys), xt)


def test_class_balanced_selection_gives_the_unsure_class_pseudo_labels(rng):
    xs, ys, xt = _data(rng)

    def unsure_about_class_one():
        model = _model()
        model.get_layer("head").set_weights([np.array([[1.0, -1.0], [0.0, 0.0]], "float32"),
                                             np.array([1.0, 0.0], "float32")])
        return model

    probs = unsure_about_class_one().predict(xt, verbose=0)
    predicted_one = probs.argmax(axis=1) == 1
    threshold = float(probs[predicted_one].max()) + 1e-4  # above every class-1 confidence
    assert predicted_one.any() and (probs[~predicted_one].max(axis=1) >= threshold).any()
    plain = self_train(unsure_about_class_one(), (xs, ys), xt, threshold=threshold, rounds=1,
                       max_class_fraction=None)
    assert plain.rounds[0].class_counts[1] == 0
    balanced = self_train(unsure_about_class_one(), (xs, ys), xt, threshold=threshold, rounds=1,
                          per_class_fraction=0.5, max_class_fraction=None)
    counts = balanced.rounds[0].class_counts
    assert counts[1] == max(1, round(0.5 * predicted_one.sum()))  # the most confident half of class 1's predictions
    assert counts[0] >= round(0.5 * (~predicted_one).sum())
    with pytest.raises(ArgumentError, match="per_class_fraction"):
        self_train(unsure_about_class_one(), (xs, ys), xt, per_class_fraction=0.0)
