"""Two-sample tests on feature vectors: do source and target come from the same distribution?

Both tests are exact permutation tests (numpy and scipy only), so their p-values are valid at any
sample size: under "no shift" a p-value below 0.05 comes up at most 5 % of the time.

* `classifier_test`: a logistic-regression domain classifier trained on one half of the pooled
  features and scored on the other half; the statistic is its held-out AUC (0.5 = cannot tell the
  domains apart, 1.0 = always can). The p-value permutes the held-out domain labels (the trained
  classifier never saw them, so this is the exact null).
* `mmd_test`: the maximum mean discrepancy with a Gaussian kernel (bandwidth: the median pairwise
  distance of the pooled sample) and a permutation p-value.

Both scale the pooled features by a power of two near their largest magnitude first: no squared
distance or variance overflows (features of 1e160 gave a NaN MMD²), and since a power-of-two scale
changes no mantissa, every statistic is exactly what it was on ordinary features. A statistic that
still comes out NaN or infinite is refused (`DataError`), never turned into a p-value. Permutations
(at most `MAX_PERMUTATIONS`) are drawn in chunks of bounded size, so memory stays bounded.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt.two_sample import classifier_test, mmd_test
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(100, 8)), rng.normal(loc=1.0, size=(100, 8))
    >>> mmd_test(a, b, permutations=200).p_value < 0.01
    True
    >>> classifier_test(a, b, permutations=200).statistic > 0.8
    True
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize
from scipy.stats import rankdata

from tfxfer.errors import ArgumentError, DataError
from tfxfer.utils.validate import check_int

#: The most permutations a test draws (its smallest p-value is 1/(1+permutations)); the bound keeps
#: the run time finite.
MAX_PERMUTATIONS = 100_000

#: Entries (examples x permutations) of the permutation matrices built at once: bounds their memory.
_CHUNK_ENTRIES = 1 << 20


@dataclasses.dataclass(frozen=True)
class TwoSampleTest:
    """One test's outcome: ``statistic`` (AUC or MMD²), its permutation ``p_value`` and details."""

    name: str
    statistic: float
    p_value: float
    permutations: int
    n_source: int
    n_target: int
    note: str = ""

    def describe(self) -> str:
        label = "domain-classifier AUC" if self.name == "classifier" else "MMD²"
        return f"{label} {self.statistic:.3g} (permutation p={self.p_value:.3g}, n={self.n_source}+{self.n_target})"


def as_feature_matrix(name: str, features) -> np.ndarray:
    """``features`` as a finite float64 ``(n, d)`` matrix with n >= 2, else a typed error naming it."""
    array = np.asarray(features, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ArgumentError(name, f"an array of shape {array.shape}", "must be a (n_examples, n_features) matrix")
    if len(array) < 2:
        raise DataError(f"`{name}` has {len(array)} examples; a two-sample test needs at least 2 per domain")
    if not np.all(np.isfinite(array)):
        raise DataError(f"`{name}` holds NaN or infinite values ({int((~np.isfinite(array)).sum())} entries)")
    return array


def _check_pair(source, target):
    source = as_feature_matrix("source", source)
    target = as_feature_matrix("target", target)
    if source.shape[1] != target.shape[1]:
        raise ArgumentError("target", f"features of dimension {target.shape[1]}",
                            f"must have the source's feature dimension {source.shape[1]}")
    return source, target


def _subsample(array: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or len(array) <= limit:
        return array
    return array[np.sort(rng.choice(len(array), size=limit, replace=False))]


def _p_value(observed: float, null: np.ndarray) -> float:
    """(1 + #null >= observed) / (1 + permutations): never 0, exact under exchangeability. A NaN
    statistic is no evidence of a shift (p = 1), and a NaN null value counts as at least as extreme."""
    if not np.isfinite(observed):
        return 1.0
    return float((1 + np.count_nonzero(~(null < observed - 1e-12))) / (1 + len(null)))


def _scaled(pooled: np.ndarray) -> tuple[np.ndarray, int]:
    """``(pooled * 2**-e, e)`` with ``e`` bringing the largest magnitude into [0.5, 1): exact (no
    mantissa changes), so distances and standardised values keep their ratios bit for bit, while
    squares of huge (or tiny) features no longer overflow (or underflow)."""
    peak = float(np.max(np.abs(pooled)))
    exponent = int(np.frexp(peak)[1]) if peak > 0.0 else 0
    return np.ldexp(pooled, -exponent), exponent


def _unscaled(value: float, exponent: int) -> str:
    """``value * 2**exponent`` (a squared distance back in the features' own units), as text."""
    with np.errstate(over="ignore"):
        back = float(np.ldexp(value, exponent))
    return f"{back:.3g}" if np.isfinite(back) else f"{value:.3g} x 2^{exponent}"


def _check_finite_statistic(name: str, value: float, what: str) -> None:
    if not np.isfinite(value):
        raise DataError(f"The {name} test's {what} is {value} on these features; no p-value can be computed from "
                        "it. Check the features (standardise them, or look for extreme values)")


def _chunks(total: int, rows: int):
    """``(start, stop)`` ranges over ``total`` columns of ``rows`` entries each, `_CHUNK_ENTRIES` at most."""
    step = max(1, _CHUNK_ENTRIES // max(1, rows))
    return [(start, min(start + step, total)) for start in range(0, total, step)]


# ---- MMD -----------------------------------------------------------------------------------------

def _sq_distances(x: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", x, x)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)


def mmd_test(source, target, *, permutations: int = 500, max_samples: int | None = 500, seed: int = 0) -> TwoSampleTest:
    """Gaussian-kernel MMD² between ``source`` and ``target`` features with a permutation p-value.

    Args:
        source, target: ``(n, d)`` feature matrices.
        permutations: random relabellings for the null distribution (p-values are >= 1/(1+permutations)),
            at most `MAX_PERMUTATIONS`.
        max_samples: at most this many examples per domain (random subset), bounding the n² kernel.
        seed: seeds the subsets and the permutations.

    Raises:
        DataError: fewer than 2 examples in a domain, NaN / infinite features, or a bandwidth or
            statistic that is not finite.
    """
    permutations = check_int("permutations", permutations, low=1, high=MAX_PERMUTATIONS)
    max_samples = check_int("max_samples", max_samples, low=2, allow_none=True)
    rng = np.random.default_rng(seed)
    source, target = _check_pair(source, target)
    source, target = _subsample(source, max_samples, rng), _subsample(target, max_samples, rng)
    pooled, exponent = _scaled(np.concatenate([source, target]))
    n, m = len(source), len(target)
    distances = _sq_distances(pooled)
    off_diagonal = distances[np.triu_indices(len(pooled), k=1)]
    bandwidth = float(np.median(off_diagonal)) or float(off_diagonal.mean()) or 1.0
    _check_finite_statistic("MMD", bandwidth, "kernel bandwidth (median squared distance)")
    kernel = np.exp(-distances / bandwidth)
    # MMD² (biased V-statistic) = a^T K a with a = +1/n on source rows and -1/m on target rows;
    # column 0 is the observed labelling, the others permutations of it.
    base = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    stats = np.empty(permutations + 1)
    for start, stop in _chunks(permutations + 1, n + m):
        weights = np.empty((n + m, stop - start))
        for j in range(start, stop):
            weights[:, j - start] = base if j == 0 else base[rng.permutation(n + m)]
        stats[start:stop] = np.einsum("ij,ij->j", weights, kernel @ weights)
    _check_finite_statistic("MMD", float(stats[0]), "statistic (MMD²)")
    return TwoSampleTest("mmd", float(stats[0]), _p_value(stats[0], stats[1:]), permutations, n, m,
                         note=f"Gaussian kernel, bandwidth {_unscaled(bandwidth, 2 * exponent)} "
                              "(median squared distance)")


# ---- domain classifier -----------------------------------------------------------------------------

def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """L2-regularised logistic regression by L-BFGS; returns weights with the bias last."""
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)

    def loss_and_grad(w):
        z = design @ w
        loss = np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.dot(w[:-1], w[:-1])
        p = 0.5 * (1.0 + np.tanh(0.5 * z))  # stable sigmoid
        grad = design.T @ (p - y) / len(y)
        grad[:-1] += l2 * w[:-1]
        return loss, grad

    result = minimize(loss_and_grad, np.zeros(design.shape[1]), jac=True, method="L-BFGS-B",
                      options={"maxiter": 200})
    return result.x


def _auc_from_ranks(ranks: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """AUC (Mann-Whitney) of scores with ``ranks`` for each row of boolean ``positives`` (k, n)."""
    n_pos = positives.sum(axis=-1)
    n_neg = positives.shape[-1] - n_pos
    rank_sum = (positives * ranks).sum(axis=-1)
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def classifier_test(source, target, *, permutations: int = 500, max_samples: int | None = 1000,
                    l2: float = 1e-2, seed: int = 0) -> TwoSampleTest:
    """Held-out AUC of a domain classifier (target = positive) with a permutation p-value.

    The pooled features are standardised, split in two halves stratified by domain; a logistic
    regression learns "source or target?" on one half and its AUC is measured on the other.

    Args:
        source, target: ``(n, d)`` feature matrices (each domain needs >= 4 examples).
        permutations: relabellings of the held-out half for the null distribution (at most
            `MAX_PERMUTATIONS`).
        max_samples: at most this many examples per domain (random subset).
        l2: ridge penalty of the logistic regression (on standardised features).
        seed: seeds the subsets, the split and the permutations.

    Raises:
        DataError: fewer than 4 examples in a domain, NaN / infinite features, or an AUC that is
            not finite.
    """
    permutations = check_int("permutations", permutations, low=1, high=MAX_PERMUTATIONS)
    max_samples = check_int("max_samples", max_samples, low=4, allow_none=True)
    rng = np.random.default_rng(seed)
    source, target = _check_pair(source, target)
    if min(len(source), len(target)) < 4:
        raise DataError(f"the domain-classifier test needs >= 4 examples per domain; got "
                        f"{len(source)} source and {len(target)} target")
    source, target = _subsample(source, max_samples, rng), _subsample(target, max_samples, rng)
    x, _ = _scaled(np.concatenate([source, target]))  # exact: the standardised features are unchanged
    y = np.concatenate([np.zeros(len(source)), np.ones(len(target))])
    fit_rows = np.zeros(len(x), dtype=bool)
    for domain in (0, 1):
        rows = np.flatnonzero(y == domain)
        fit_rows[rng.choice(rows, size=len(rows) // 2, replace=False)] = True
    mean, std = x[fit_rows].mean(axis=0), x[fit_rows].std(axis=0)
    x = (x - mean) / np.where(std > 1e-12, std, 1.0)
    weights = _fit_logistic(x[fit_rows], y[fit_rows], l2)
    held = ~fit_rows
    scores = np.concatenate([x[held], np.ones((held.sum(), 1))], axis=1) @ weights
    ranks = rankdata(scores)
    labels = y[held].astype(bool)
    observed = float(_auc_from_ranks(ranks, labels[None, :])[0])
    _check_finite_statistic("domain-classifier", observed, "held-out AUC")
    null_auc = np.concatenate([
        _auc_from_ranks(ranks, np.stack([labels[rng.permutation(len(labels))] for _ in range(stop - start)]))
        for start, stop in _chunks(permutations, len(labels))])
    return TwoSampleTest("classifier", observed, _p_value(observed, null_auc), permutations,
                         len(source), len(target),
                         note=f"logistic regression, held-out half of {len(x)} examples")
