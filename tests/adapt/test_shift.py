"""detect_shift and the two-sample tests: shifts are found, random splits are not, verdicts say so."""

import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model
from tfxfer.adapt import atc_estimate, classifier_test, detect_shift, mmd_test
from tfxfer.errors import ArgumentError, DataError


def _gauss(rng, n, shift=0.0, d=16):
    return rng.normal(loc=shift, size=(n, d))


@pytest.mark.parametrize("test", [mmd_test, classifier_test])
def test_clearly_shifted_features_get_a_small_p_value(rng, test):
    result = test(_gauss(rng, 150), _gauss(rng, 150, shift=0.7), permutations=200)
    assert result.p_value == pytest.approx(1 / 201)
    assert result.n_source == result.n_target == 150


@pytest.mark.parametrize("test", [mmd_test, classifier_test])
def test_random_splits_of_one_domain_are_not_flagged(rng, test):
    p_values = []
    for seed in range(10):
        pool = _gauss(rng, 200)
        order = rng.permutation(200)
        p_values.append(test(pool[order[:100]], pool[order[100:]], permutations=100, seed=seed).p_value)
    assert sum(p > 0.05 for p in p_values) >= 8, p_values
    assert np.mean(p_values) > 0.25  # roughly uniform under the null, not piled up near 0


def test_domain_classifier_auc_reflects_separability(rng):
    strong = classifier_test(_gauss(rng, 200), _gauss(rng, 200, shift=2.0), permutations=50)
    none = classifier_test(_gauss(rng, 200), _gauss(rng, 200), permutations=50)
    assert strong.statistic > 0.95
    assert abs(none.statistic - 0.5) < 0.15


def test_detect_shift_on_features_combines_tests_and_explains(rng):
    result = detect_shift(None, _gauss(rng, 120), _gauss(rng, 120, shift=1.0), permutations=300)
    assert result.shifted
    assert [t.name for t in result.tests] == ["classifier", "mmd"]
    assert result.p_value == pytest.approx(min(1.0, 2 * min(t.p_value for t in result.tests)))
    assert result.verdict.startswith("Shift detected")
    assert "tfxfer.adapt" in result.verdict
    assert result.domain_auc > 0.9
    same = detect_shift(None, _gauss(rng, 120), _gauss(rng, 120), method="mmd", permutations=300)
    assert [t.name for t in same.tests] == ["mmd"]
    assert same.shifted == (same.p_value < 0.01)
    if not same.shifted:
        assert same.verdict.startswith("No shift detected")


def test_detect_shift_on_an_image_model_reports_confidence_and_expected_accuracy():
    x_source, y_source = tiny_images(48, seed=0)
    x_target = np.clip(x_source[::-1] * 0.3 + 170, 0, 255).astype("float32")  # a much brighter domain
    model = tiny_model(hidden_units=8)
    result = detect_shift(model, (x_source, y_source), (x_target, y_source[::-1]), permutations=300)
    assert result.shifted, result.summary()
    assert result.feature_dim == 1280
    assert result.source_accuracy is not None and result.expected_target_accuracy is not None
    assert result.target_accuracy is not None
    assert 0.0 <= result.expected_target_accuracy <= 1.0
    assert result.per_class and all(c.n_source + c.n_target > 0 for c in result.per_class)
    assert "expected on the target" in result.verdict
    assert result.to_dict()["per_class"][0]["drop"] == pytest.approx(result.per_class[0].drop)


def test_atc_estimate_matches_source_accuracy_on_the_source_itself(rng):
    probs = rng.dirichlet([1, 1, 1], size=400)
    labels = np.where(rng.random(400) < probs.max(axis=1), probs.argmax(axis=1), (probs.argmax(axis=1) + 1) % 3)
    accuracy = np.mean(probs.argmax(axis=1) == labels)
    assert atc_estimate(probs, labels, probs) == pytest.approx(accuracy, abs=0.01)
    less_sure = probs * 0.5 + 0.5 / 3  # same argmax, lower confidence: lower expected accuracy
    assert atc_estimate(probs, labels, less_sure) < accuracy


def test_target_with_other_channels_or_size_is_refused():
    model = tiny_model()
    x, y = tiny_images(8)
    with pytest.raises(ArgumentError, match=r"`target` must have the model's input shape \(32, 32, 3\).*1 channels"):
        detect_shift(model, (x, y), x[..., :1], permutations=300)
    with pytest.raises(ArgumentError, match=r"`target`.*inputs of shape \(16, 16, 3\)"):
        detect_shift(model, (x, y), x[:, :16, :16], permutations=300)


def test_target_labels_outside_the_label_set_are_refused():
    model = tiny_model(num_classes=3)
    x, _ = tiny_images(8)
    with pytest.raises(ArgumentError, match="`target`.*labels \\[2\\] that the source data does not have"):
        detect_shift(model, (x, np.arange(8) % 2), (x, np.full(8, 2)), permutations=300)
    with pytest.raises(ArgumentError, match=r"`target`.*class ids in \[0, 2\]"):
        detect_shift(model, x, (x, np.full(8, 5)), permutations=300)


def test_bad_arguments_are_named(rng):
    a = _gauss(rng, 10)
    with pytest.raises(ArgumentError, match="`method`"):
        detect_shift(None, a, a, method="ks")
    with pytest.raises(ArgumentError, match="`alpha`"):
        detect_shift(None, a, a, alpha=1.5)
    with pytest.raises(ArgumentError, match="`permutations` must be >= 200 for method='both' and alpha=0.01"):
        detect_shift(None, a, a, permutations=100)
    with pytest.raises(ArgumentError, match="`target` must have the source's feature dimension 16"):
        mmd_test(a, _gauss(rng, 10, d=3))
    with pytest.raises(DataError, match="NaN"):
        mmd_test(a, np.full((10, 16), np.nan))
    with pytest.raises(DataError, match=">= 4 examples per domain"):
        classifier_test(a[:3], a[:3])


@pytest.mark.parametrize("test", [mmd_test, classifier_test])
def test_permutation_p_values_are_calibrated_under_the_null(test):
    """Exactness, measured: over 300 random halves of one sample, p <= 0.05 comes up about 5 % of the
    time (an anti-conservative test, e.g. one refitting its scaler on the held-out half, or
    permuting a different statistic than it reports, shows up here as a higher rate)."""
    rng = np.random.default_rng(123)
    p_values = []
    for seed in range(300):
        pool = rng.standard_t(df=3, size=(80, 5))  # heavy tails: no reliance on normality
        order = rng.permutation(80)
        p_values.append(test(pool[order[:40]], pool[order[40:]], permutations=99, seed=seed).p_value)
    rate = float(np.mean(np.array(p_values) <= 0.05))
    assert 0.01 <= rate <= 0.09, rate  # 0.05 +- 3 binomial standard deviations (n=300)


def test_atc_estimate_with_tied_confidences_still_gives_back_the_source_accuracy(rng):
    """A saturated softmax gives many confidences of exactly 1.0: a strict threshold dropped them all
    (ATC 0.0 on target == source at 0.74 accuracy)."""
    labels = rng.integers(0, 2, 200)
    right = rng.random(200) < 0.8
    p1 = np.where(right == (labels == 1), 1.0, 0.0).astype("float32")  # every confidence exactly 1.0
    probs = np.stack([1 - p1, p1], axis=1)
    accuracy = float(np.mean(probs.argmax(1) == labels))
    assert atc_estimate(probs, labels, probs) == pytest.approx(accuracy, abs=1e-6)
    half_sure = np.full_like(probs, 0.5)
    assert atc_estimate(probs, labels, half_sure) == 0.0


@pytest.mark.parametrize("test", [mmd_test, classifier_test])
def test_huge_or_tiny_features_give_the_statistics_of_ordinary_ones(rng, test):
    """Features of 1e160 overflowed the squared distances: MMD² NaN, and NaN got the smallest p-value
    (a shift flagged between two samples of one distribution). The pooled features are scaled by a
    power of two first, which changes no statistic of ordinary features at all."""
    a, b = _gauss(rng, 60, d=4), _gauss(rng, 60, d=4)
    plain = test(a, b, permutations=200)
    for scale in (2.0 ** 500, 2.0 ** -520):  # exact scales: the statistics are the same to the bit
        scaled = test(a * scale, b * scale, permutations=200)
        assert (scaled.statistic, scaled.p_value) == (plain.statistic, plain.p_value), scale
    huge = test(a * 1e160, b * 1e160, permutations=200)
    assert huge.statistic == pytest.approx(plain.statistic, rel=1e-9) and huge.p_value > 0.05
    assert not detect_shift(None, a * 1e160, b * 1e160, method="mmd", permutations=300).shifted


def test_a_nan_statistic_is_refused_and_never_a_small_p_value(monkeypatch):
    import importlib

    module = importlib.import_module("tfxfer.adapt.two_sample")
    assert module._p_value(float("nan"), np.zeros(99)) == 1.0
    assert module._p_value(0.5, np.full(99, np.nan)) == 1.0  # a NaN null value counts as extreme
    monkeypatch.setattr(module, "_sq_distances", lambda x: np.full((len(x), len(x)), np.nan))
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="MMD test's kernel bandwidth .* is nan"):
        mmd_test(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), permutations=20)


@pytest.mark.parametrize("test", [mmd_test, classifier_test])
def test_permutations_are_bounded_and_drawn_in_chunks(rng, monkeypatch, test):
    import importlib

    module = importlib.import_module("tfxfer.adapt.two_sample")
    a, b = _gauss(rng, 30, d=3), _gauss(rng, 30, shift=0.3, d=3)
    with pytest.raises(ArgumentError, match=r"`permutations` must be an int in \[1, 100000\]"):
        test(a, b, permutations=module.MAX_PERMUTATIONS + 1)
    whole = test(a, b, permutations=300)
    monkeypatch.setattr(module, "_CHUNK_ENTRIES", 100)  # a couple of permutations per chunk
    chunked = test(a, b, permutations=300)
    assert chunked.statistic == pytest.approx(whole.statistic, rel=1e-12) and chunked.p_value == whole.p_value


def test_detect_shift_bounds_permutations_and_alpha(rng):
    a = _gauss(rng, 10)
    with pytest.raises(ArgumentError, match=r"`permutations` must be an int in \[1, 100000\]"):
        detect_shift(None, a, a, permutations=10**7)
    with pytest.raises(ArgumentError, match="`alpha` must be >= 2e-05 for method='both'"):
        detect_shift(None, a, a, alpha=1e-6, permutations=100_000)
