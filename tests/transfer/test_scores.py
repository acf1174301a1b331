"""Transferability scores: LogME against a direct reference, H-score / LEEP / NCE by hand."""

import numpy as np
import pytest

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.transfer import hscore, leep, logme, logme_per_target, nce


def reference_logme(f, y_columns, iters=5000, tol=1e-11, return_converged=False):
    """Direct, unoptimised LogME: per target column, the MacKay alpha/beta fixed point on the full
    D x D eigendecomposition of F^T F with explicit posterior mean and log-determinant."""
    n, d = f.shape
    gram = f.T @ f
    sigma, _ = np.linalg.eigh(gram)
    sigma = np.maximum(sigma, 0.0)
    with np.errstate(all="ignore"):  # a drifting fixed point overflows; the test expects NaN then
        return _reference_loop(f, y_columns, gram, sigma, iters, tol, return_converged)


def _reference_loop(f, y_columns, gram, sigma, iters, tol, return_converged):
    n, d = f.shape
    out, converged = [], []
    for y in y_columns.T:
        alpha, beta = 1.0, 1.0
        done = False
        for _ in range(iters):
            if not np.isfinite(alpha / beta) or alpha / beta == 0:
                break
            a = alpha * np.eye(d) + beta * gram
            m = beta * np.linalg.solve(a, f.T @ y)
            gamma = np.sum(beta * sigma / (alpha + beta * sigma))
            new_alpha = gamma / (m @ m)
            new_beta = (n - gamma) / np.sum((y - f @ m) ** 2)
            done = abs(new_alpha / new_beta - alpha / beta) <= tol * alpha / beta
            alpha, beta = new_alpha, new_beta
            if done:
                break
        a = alpha * np.eye(d) + beta * gram
        m = beta * np.linalg.solve(a, f.T @ y)
        evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * np.linalg.slogdet(a)[1]
                    - beta / 2 * np.sum((y - f @ m) ** 2) - alpha / 2 * (m @ m) - n / 2 * np.log(2 * np.pi))
        out.append(evidence / n)
        converged.append(done)
    if return_converged:
        return np.array(out), np.array(converged)
    return np.array(out)


def one_hot(labels, c):
    return np.eye(c)[labels]


@pytest.mark.parametrize("n,d", [(60, 5), (40, 12), (18, 20)])  # N > D (eigh path) and N <= D (SVD path)
def test_logme_matches_direct_reference(rng, n, d):
    f = rng.normal(size=(n, d)) + 0.3
    labels = rng.integers(0, 3, size=n)
    labels[:3] = [0, 1, 2]
    w = rng.normal(size=(d, 3))
    informative = np.argmax(f @ w + 0.5 * rng.normal(size=(n, 3)), axis=1)
    informative[:3] = [0, 1, 2]
    for y in (labels, informative):
        fast = logme_per_target(f, y)
        ref, converged = reference_logme(f, one_hot(y, 3), return_converged=True)
        assert converged.any()
        np.testing.assert_allclose(fast[converged], ref[converged], rtol=1e-7, atol=1e-9)
        # Where the fixed point never settles (N <= D: alpha/beta drifts to 0) the maximum is at least as high.
        # (the direct reference may even overflow to NaN there).
        assert np.all(np.isfinite(fast))
        assert np.all(np.isnan(ref[~converged]) | (fast[~converged] >= ref[~converged] - 1e-9))
    targets = f @ rng.normal(size=(d, 2)) + rng.normal(size=(n, 2))
    np.testing.assert_allclose(
        logme_per_target(f, targets, task="regression"), reference_logme(f, targets), rtol=1e-6, atol=1e-8
    )


def test_logme_linear_labels_beat_shuffled(rng):
    f = rng.normal(size=(300, 16))
    w = rng.normal(size=(16, 4))
    y = np.argmax(f @ w, axis=1)
    assert logme(f, y) > logme(f, rng.permutation(y)) + 0.05
    targets = f @ rng.normal(size=16) + 0.1 * rng.normal(size=300)
    assert logme(f, targets, task="regression") > logme(f, rng.permutation(targets), task="regression") + 0.5


def test_logme_prefers_informative_features(rng):
    y = rng.integers(0, 3, size=200)
    informative = np.eye(3)[y] * 2.0 + rng.normal(size=(200, 3))
    noise = rng.normal(size=(200, 3))
    assert logme(informative, y) > logme(noise, y)


def test_logme_is_invariant_to_feature_scale(rng):
    f = rng.normal(size=(80, 6))
    y = (f[:, 0] + 0.5 * rng.normal(size=80) > 0).astype(int)
    assert logme(f, y) == pytest.approx(logme(1000.0 * f, y), rel=1e-6)


@pytest.mark.parametrize("name", ["zeros", "constant", "duplicate", "rank1", "wide", "tiny", "huge", "separable"])
def test_scores_finite_on_degenerate_features(rng, name):
    n = 30
    y = np.arange(n) % 3
    base = rng.normal(size=(n, 4))
    f = {
        "zeros": np.zeros((n, 5)),
        "constant": np.ones((n, 5)) * 3.0,
        "duplicate": np.concatenate([base, base, base[:, :1]], axis=1),
        "rank1": np.outer(rng.normal(size=n), rng.normal(size=7)),
        "wide": rng.normal(size=(n, 300)),
        "tiny": base * 1e-150,
        "huge": base * 1e150,
        "separable": np.eye(3)[y] * 10.0,
    }[name]
    for value in (logme(f, y), logme(f, f[:, 0] * 0 + y, task="regression"), hscore(f, y),
                  hscore(f, y, shrinkage="auto"), hscore(f, y, shrinkage=0.1)):
        assert np.isfinite(value)


def test_logme_duplicate_columns_equal_reference_on_deduplicated_gram(rng):
    # Duplicating a column changes the prior, not the feasibility: both must stay finite and close
    # to the reference on the same (rank-deficient) matrix, which eigh handles through zero eigenvalues.
    f = rng.normal(size=(50, 3))
    f = np.concatenate([f, f[:, :1]], axis=1)
    y = (f[:, 0] > 0).astype(int)
    np.testing.assert_allclose(logme_per_target(f, y), reference_logme(f, one_hot(y, 2)), rtol=1e-5)


def test_logme_no_features_equals_gaussian_evidence():
    n = 20
    y = np.array([0, 1] * 10)
    # Zero features: y_k ~ N(0, 1/beta) with beta = N / sum(y_k^2); evidence / N = 0.5 log(beta) - 0.5 - 0.5 log(2 pi)
    beta = n / 10.0
    expected = 0.5 * np.log(beta) - 0.5 - 0.5 * np.log(2 * np.pi)
    assert logme(np.zeros((n, 4)), y) == pytest.approx(expected, rel=1e-9)


def test_hscore_hand_computed():
    # centred f = [-3, -1, 1, 3] (var 5), class means -2 and 2 (between-class var 4): H = 4 / 5
    assert hscore([0.0, 2.0, 4.0, 6.0], [0, 0, 1, 1]) == pytest.approx(0.8)
    # two independent unit-variance dims, each fully explained by its own label bit
    f = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=float)
    assert hscore(f, [0, 1, 2, 3]) == pytest.approx(2.0)
    assert hscore(f, [0, 0, 1, 1]) == pytest.approx(1.0)
    # a duplicated column adds nothing
    assert hscore(np.concatenate([f, f[:, :1]], axis=1), [0, 0, 1, 1], shrinkage=None) == pytest.approx(1.0)
    # a constant column adds nothing either
    assert hscore(np.concatenate([f, np.ones((4, 1))], axis=1), [0, 0, 1, 1], shrinkage=None) == pytest.approx(1.0)
    # cov = I already, so shrinking leaves it and only the (1 - a) factor remains
    assert hscore(f, [0, 0, 1, 1], shrinkage=0.5) == pytest.approx(0.5)
    assert hscore(f, [0, 0, 1, 1], shrinkage=1.0) == pytest.approx(0.0)


def test_regularized_hscore_does_not_saturate_when_d_near_n(rng):
    # Anisotropic features (like a backbone's), D close to N: the plain H-score sits near its
    # ceiling C - 1 = 3 whatever the features; the shrunk one keeps informative ones well ahead.
    y = np.arange(120) % 4
    scales = 1.0 / np.sqrt(np.arange(1, 111))
    noise = rng.normal(size=(120, 110)) * scales
    informative = noise.copy()
    informative[:, :4] += np.eye(4)[y]
    plain_gap = hscore(informative, y, shrinkage=None) - hscore(noise, y, shrinkage=None)
    assert hscore(noise, y, shrinkage=None) > 2.5
    assert hscore(informative, y) - hscore(noise, y) > 10 * plain_gap
    assert hscore(informative, y) > 1.3 * hscore(noise, y)


def test_ledoit_wolf_amount_matches_scikit_learn(rng):
    from sklearn.covariance import ledoit_wolf_shrinkage

    from tfxfer.transfer.scores import ledoit_wolf_amount

    for n, d in ((200, 50), (40, 300)):
        x = rng.normal(size=(n, d)) * rng.uniform(0.1, 3.0, size=d)
        x -= x.mean(axis=0)
        assert ledoit_wolf_amount(x) == pytest.approx(ledoit_wolf_shrinkage(x, assume_centered=True), rel=1e-9)


def test_leep_hand_computed():
    assert leep(np.eye(2), [0, 1]) == pytest.approx(0.0)
    assert leep(np.full((2, 2), 0.5), [0, 1]) == pytest.approx(np.log(0.5))
    theta = np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]])
    y = [0, 0, 1]
    # joint P(y, z) = 1/3 [[1.2, 0.8], [0.1, 0.9]], P(z) = 1/3 [1.3, 1.7]
    p = {(0, 0): 1.2 / 1.3, (0, 1): 0.8 / 1.7, (1, 0): 0.1 / 1.3, (1, 1): 0.9 / 1.7}
    expected = np.mean([
        np.log(p[0, 0] * 0.8 + p[0, 1] * 0.2),
        np.log(p[0, 0] * 0.4 + p[0, 1] * 0.6),
        np.log(p[1, 0] * 0.1 + p[1, 1] * 0.9),
    ])
    assert leep(theta, y) == pytest.approx(expected)
    logits = np.log(theta) + 7.0
    assert leep(logits, y, from_logits=True) == pytest.approx(expected)


def test_leep_ignores_unused_source_classes():
    theta = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    assert leep(theta, [0, 1]) == pytest.approx(np.log(0.5))


def test_nce_hand_computed():
    y = [0, 0, 1, 1]
    assert nce(np.array([0, 0, 0, 1]), y) == pytest.approx(0.5 * np.log(2 / 3) + 0.25 * np.log(1 / 3))
    assert nce(np.array([5, 5, 9, 9]), y) == pytest.approx(0.0)  # source labels determine y
    assert nce(np.array([3, 3, 3, 3]), y) == pytest.approx(np.log(0.5))  # uninformative: -H(Y)
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    assert nce(probs, y) == pytest.approx(0.5 * np.log(2 / 3) + 0.25 * np.log(1 / 3))


def test_labels_are_reindexed():
    f = np.random.default_rng(3).normal(size=(40, 3))
    y = np.arange(40) % 2
    assert logme(f, y) == pytest.approx(logme(f, np.where(y == 0, 7, 42)))
    assert hscore(f, y) == pytest.approx(hscore(f, np.where(y == 0, -1, 5)))


def test_errors():
    f = np.zeros((4, 2))
    with pytest.raises(ArgumentError, match="task"):
        logme(f, [0, 1, 0, 1], task="ranking")
    with pytest.raises(ArgumentError, match="one label per sample"):
        logme(f, [0, 1, 0])
    with pytest.raises(DataError, match="single class"):
        logme(f, [1, 1, 1, 1])
    with pytest.raises(DataError, match="NaN or infinite"):
        logme(np.array([[np.nan, 1.0]] * 4), [0, 1, 0, 1])
    with pytest.raises(ArgumentError, match="integer class labels"):
        logme(f, [0.5, 1, 0, 1])
    with pytest.raises(ArgumentError, match="not one-hot"):
        hscore(f, np.eye(4))
    with pytest.raises(ArgumentError, match="shape \\(N, D\\)"):
        hscore(np.zeros((2, 2, 2)), [0, 1])
    with pytest.raises(DataError, match="at least 2 samples"):
        hscore(np.zeros((1, 2)), [0])
    with pytest.raises(ArgumentTypeError, match="numeric array"):
        hscore([["a", "b"], ["c", "d"]], [0, 1])
    with pytest.raises(ArgumentError, match="shrinkage"):
        hscore(f, [0, 1, 0, 1], shrinkage="ledoit")
    with pytest.raises(ArgumentError, match="shrinkage"):
        hscore(f, [0, 1, 0, 1], shrinkage=2.0)
    with pytest.raises(ArgumentError, match="from_logits=True"):
        leep(np.array([[2.0, 1.0], [0.0, 3.0]]), [0, 1])
    with pytest.raises(ArgumentError, match="integer source labels"):
        nce(np.array([0.5, 1.5]), [0, 1])
    with pytest.raises(ArgumentTypeError, match="integer class labels"):
        logme(f, np.array(["a", "b", "a", "b"]))
    with pytest.raises(ArgumentError, match="shape"):
        logme(f, np.zeros((3, 2)), task="regression")
