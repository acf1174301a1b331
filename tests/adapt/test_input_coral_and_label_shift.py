"""CORAL on the head input (CoralMap), label-shift correction (EM priors folded into the output) and
reverse validation: the maths, round trips in a fresh process, composition and bad input."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tfxfer.adapt import (CoralMap, correct_label_shift, estimate_target_priors, fit_coral_map, fit_temperature,
                          fold_prior_correction, reverse_validation, with_input_map)
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _head(dim=3, classes=2, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((dim,), name="features")
    hidden = keras.layers.Dense(8, activation="relu", name="head_hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name="head")(hidden), name="head")


def test_coral_map_matches_mean_and_covariance_of_the_other_domain(rng):
    source = rng.normal(size=(2000, 4))
    mixing = rng.normal(size=(4, 4))
    target = source @ mixing + np.array([1.0, -2.0, 0.5, 3.0])
    mapped = np.asarray(fit_coral_map(target, source, shrinkage=0.0)(target.astype("float32")))
    np.testing.assert_allclose(mapped.mean(axis=0), source.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(np.cov(mapped, rowvar=False), np.cov(source, rowvar=False), atol=1e-3)
    # shrinkage pulls the map towards a scaled identity: the covariance no longer matches exactly
    shrunk = np.asarray(fit_coral_map(target, source, shrinkage=1.0)(target.astype("float32")))
    assert not np.allclose(np.cov(shrunk, rowvar=False), np.cov(source, rowvar=False), atol=1e-2)
    np.testing.assert_allclose(shrunk.mean(axis=0), source.mean(axis=0), atol=1e-4)


def test_coral_map_fits_fewer_examples_than_dimensions_with_shrinkage(rng):
    layer = fit_coral_map(rng.normal(size=(10, 32)), rng.normal(size=(12, 32)) * 2.0)
    assert np.all(np.isfinite(layer.get_weights()[2]))
    with pytest.raises(ArgumentError, match="shrinkage"):
        fit_coral_map(rng.normal(size=(10, 32)), rng.normal(size=(12, 32)), shrinkage=0.0)


def test_coral_map_recovers_a_source_head_on_a_rotated_scaled_target(rng):
    source = rng.normal(size=(600, 2)).astype("float32")
    labels = (source[:, 0] > 0).astype(int)
    head = _head(2)
    head.compile(keras.optimizers.Adam(3e-2), "sparse_categorical_crossentropy")
    head.fit(source, labels, epochs=30, batch_size=64, verbose=0)
    angle = 0.9
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale = np.diag([3.0, 0.5])
    target_latent = rng.normal(size=(600, 2))
    target = (target_latent @ scale @ rotation + 4.0).astype("float32")
    target_labels = (target_latent[:, 0] > 0).astype(int)
    plain = np.mean(head.predict(target, verbose=0).argmax(1) == target_labels)
    deployed = with_input_map(head, fit_coral_map(target, source, shrinkage=0.0))
    mapped = np.mean(deployed.predict(target, verbose=0).argmax(1) == target_labels)
    assert mapped > plain + 0.1, (plain, mapped)  # CORAL cannot undo a rotation fully, but the scale and shift go


def test_mapped_model_round_trips_in_a_fresh_process(rng, tmp_path):
    source, target = rng.normal(size=(50, 3)), rng.normal(size=(60, 3)) * 3 + 1
    model = with_input_map(_head(), fit_coral_map(target, source))
    path = tmp_path / "mapped.keras"
    model.save(path)
    x = target[:5].astype("float32")
    np.save(tmp_path / "x.npy", x)
    code = ("import json, sys, numpy as np, keras, tfxfer\n"
            f"m = keras.models.load_model({str(path)!r})\n"
            f"print(json.dumps(m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0).tolist()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(json.loads(out.stdout.strip().splitlines()[-1]), model.predict(x, verbose=0), atol=1e-6)
    layer = model.layers[1]
    again = CoralMap.from_config(layer.get_config())
    assert again.dim == 3 and not again.trainable


def test_coral_map_and_with_input_map_refuse_bad_input(rng):
    with pytest.raises(ArgumentError, match="to_features"):
        fit_coral_map(rng.normal(size=(20, 3)), rng.normal(size=(20, 4)))
    with pytest.raises(DataError, match="from_features"):
        fit_coral_map(np.full((20, 3), np.nan), rng.normal(size=(20, 3)))
    with pytest.raises(ArgumentError, match="shrinkage"):
        fit_coral_map(rng.normal(size=(20, 3)), rng.normal(size=(20, 3)), shrinkage=-1.0)
    with pytest.raises(ArgumentError, match="input_map"):
        with_input_map(_head(3), fit_coral_map(rng.normal(size=(20, 4)), rng.normal(size=(20, 4))))
    with pytest.raises(ArgumentTypeError, match="input_map"):
        with_input_map(_head(3), "coral")


def test_coral_map_refuses_zero_variance_features_without_shrinkage(rng):
    """Constant from_features and shrinkage=0: a zero covariance, whose inverse root was all NaN."""
    constant, varied = np.ones((50, 3)), rng.normal(size=(50, 3))
    with pytest.raises(DataError, match="`from_features` has zero variance in every dimension .* shrinkage > 0"):
        fit_coral_map(constant, varied, shrinkage=0.0)
    with pytest.raises(DataError, match="`to_features` has zero variance"):
        fit_coral_map(varied, constant, shrinkage=0.0)
    with pytest.raises(DataError, match="`from_features`'s covariance overflows"):
        fit_coral_map(varied * 1e300, varied)
    assert np.isfinite(fit_coral_map(constant, varied).get_weights()[2]).all()  # shrinkage > 0: finite
    # one dead unit among live ones, no shrinkage: its eigenvalue is floored, the map stays finite
    dead = np.concatenate([varied[:, :2], np.zeros((50, 1))], axis=1)
    assert np.isfinite(fit_coral_map(dead, varied, shrinkage=0.0).get_weights()[2]).all()


def test_coral_map_names_features_of_the_wrong_dimension(rng):
    """The check sat in build(), which Keras never calls on a layer built in __init__: a raw
    InvalidArgumentError from the matmul came out instead."""
    layer = fit_coral_map(rng.normal(size=(50, 3)), rng.normal(size=(50, 3)))
    message = (r"`inputs` must have the dimension the CORAL map was fitted on \(3\). "
               r"Received: inputs='features of dimension 5'")
    with pytest.raises(ArgumentError, match=message):
        layer(rng.normal(size=(4, 5)).astype("float32"))
    with pytest.raises(ArgumentError, match=message):
        layer(keras.Input((5,)))  # building a functional model
    assert tuple(layer(rng.normal(size=(4, 3)).astype("float32")).shape) == (4, 3)


def _scores(rng, y):
    score = rng.normal(loc=2.0 * y - 1.0)
    p1 = 1 / (1 + np.exp(-2.0 * score))  # calibrated for 50/50 priors
    return np.stack([1 - p1, p1], axis=1)


@pytest.mark.parametrize("share", [0.1, 0.3, 0.7])
def test_em_recovers_target_priors(rng, share):
    y = (rng.random(5000) < share).astype(int)
    estimate = estimate_target_priors(_scores(rng, y), source_priors=[0.5, 0.5])
    assert estimate.converged
    assert estimate.priors[1] == pytest.approx(share, abs=0.03)
    np.testing.assert_allclose(estimate.weights, estimate.priors / 0.5)


def test_folded_prior_correction_is_bayes_rule_and_improves_accuracy_under_label_shift(rng):
    model = _head(3)
    x = rng.normal(size=(2000, 3)).astype("float32")
    before = model.predict(x, verbose=0)
    fold_prior_correction(model, [0.2, 1.8], temperature=2.0)
    expected = np.exp(np.log(before) / 2.0) * [0.2, 1.8]
    np.testing.assert_allclose(model.predict(x, verbose=0), expected / expected.sum(1, keepdims=True), atol=1e-5)
    y = (rng.random(4000) < 0.1).astype(int)
    p = _scores(rng, y)
    estimate = estimate_target_priors(p, source_priors=[0.5, 0.5])
    corrected = p * estimate.weights
    assert np.mean(corrected.argmax(1) == y) > np.mean(p.argmax(1) == y) + 0.03
    with pytest.raises(ArgumentError, match="weights"):
        fold_prior_correction(model, [1.0, -1.0])
    with pytest.raises(ArgumentError, match="model"):
        fold_prior_correction(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), [1.0, 1.0])


def test_temperature_fit_undoes_overconfidence(rng):
    y = rng.integers(0, 2, 3000)
    logit = 2.0 * (2.0 * y - 1.0) + rng.normal(size=3000) * 2.0
    p1 = 1 / (1 + np.exp(-3.0 * logit))  # three times too confident
    assert fit_temperature(np.stack([1 - p1, p1], axis=1), y) == pytest.approx(3.0, rel=0.15)


def test_correct_label_shift_changes_only_the_output_layer_and_round_trips(rng, tmp_path):
    xs = rng.normal(size=(400, 3)).astype("float32")
    ys = (xs[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(int)
    model = _head()
    model.compile(keras.optimizers.Adam(3e-2), "sparse_categorical_crossentropy")
    model.fit(xs, ys, epochs=20, batch_size=64, verbose=0)
    xt = rng.normal(size=(400, 3)).astype("float32") - np.float32([1.2, 0, 0])  # mostly class 0
    plain = model.predict(xt, verbose=0)
    layers_before = [layer.name for layer in model.layers]
    hidden_before = model.get_layer("head_hidden").get_weights()
    estimate = correct_label_shift(model, xt, source_labels=ys, calibration=(xs, ys))
    assert estimate.priors[0] > 0.7 and estimate.temperature > 0 and estimate.converged
    assert [layer.name for layer in model.layers] == layers_before  # folded, nothing added
    for a, b in zip(hidden_before, model.get_layer("head_hidden").get_weights()):
        np.testing.assert_array_equal(a, b)
    probs = model.predict(xt, verbose=0)
    assert probs.mean(axis=0)[0] > plain.mean(axis=0)[0]
    path = tmp_path / "corrected.keras"
    model.save(path)
    np.testing.assert_allclose(keras.models.load_model(path).predict(xt[:8], verbose=0), probs[:8], atol=1e-6)
    with pytest.raises(ArgumentError, match="source_labels"):
        correct_label_shift(model, xt)
    with pytest.raises(ArgumentError, match="source_priors"):
        correct_label_shift(model, xt, source_priors=[0.2, 0.3, 0.5])
    with pytest.raises(ArgumentTypeError, match="model"):
        correct_label_shift("model", xt, source_priors=[0.5, 0.5])


def test_a_handful_of_target_examples_changes_nothing(rng):
    """EM converges on one target example (priors 0 and 1); folding that in wrecked the model."""
    xs = rng.normal(size=(200, 3)).astype("float32")
    ys = (xs[:, 0] > 0).astype(int)
    model = _head()
    before = model.get_weights()
    estimate = correct_label_shift(model, xs[:1], source_labels=ys)
    assert estimate.converged and estimate.too_small and not estimate.applied
    assert "too few" in estimate.describe()
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert correct_label_shift(model, xs[:20], source_labels=ys).applied  # 10 per class: applied


def test_reverse_validation_ranks_right_labels_above_wrong_ones(rng):
    xs = rng.normal(size=(300, 3)); ys = (xs[:, 0] > 0).astype(int)
    xt = rng.normal(size=(300, 3)) + 0.3
    truth = (xt[:, 0] > 0).astype(int)
    noisy = np.where(rng.random(300) < 0.3, 1 - truth, truth)
    scores = [reverse_validation(xt, labels, xs, ys) for labels in (truth, noisy, (xt[:, 2] > 0).astype(int))]
    assert scores[0] > 0.9 and scores[0] >= scores[1] > scores[2], scores
    assert reverse_validation(xt, np.zeros(300, int), xs, ys) == pytest.approx(np.mean(ys == 0))
    with pytest.raises(ArgumentError, match="target_predictions"):
        reverse_validation(xt, truth[:10], xs, ys)
    with pytest.raises(ArgumentError, match="source_features"):
        reverse_validation(xt, truth, xs[:, :2], ys)
