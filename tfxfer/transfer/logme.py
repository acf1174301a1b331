"""LogME: the log marginal evidence of a linear model on frozen features (You et al., ICML 2021).

LogME fits, for each target column ``y`` (one-hot class indicator or regression target), the
Bayesian linear model ``y = F w + e`` with prior ``w ~ N(0, 1/alpha I)`` and noise
``e ~ N(0, 1/beta)``, chooses ``alpha`` and ``beta`` by the evidence fixed point, and returns the
maximised log evidence per sample, averaged over target columns. Higher is better; it is
comparable between backbones on the same data, not across data sets.

This implementation works on one SVD (or, when N > D, one eigendecomposition of ``F^T F``) shared
by every class, so each fixed-point step costs O(min(N, D)). It is written for numerical
robustness: the log-determinant is evaluated as ``sum(log1p(sigma / t))`` with ``t = alpha/beta``
(so zero singular values of rank-deficient, constant or duplicated features contribute exactly
zero instead of ``log(0)``), singular values below the rank tolerance are dropped, and ``t`` is
clamped to a finite range, so no input of finite numbers yields NaN or infinity.

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer import logme
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 8))
    >>> y = (x[:, 0] > 0).astype(int)
    >>> logme(x, y) > logme(x, rng.permutation(y))
    True
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.transfer._checks import as_class_labels, as_features, as_targets

_TASKS = ("classification", "regression")
_MAX_ITER = 100
_TOL = 1e-7
_EPS = np.finfo(np.float64).eps
_TINY = 1e-300


def logme(features, targets, *, task: str = "classification") -> float:
    """LogME score of ``features`` for ``targets`` (higher is better).

    Args:
        features: (N, D) array of frozen backbone features (pooled), any float dtype.
        targets: for ``task="classification"`` integer class labels (N,), any integer values
            (re-indexed internally); for ``task="regression"`` real targets (N,) or (N, T).
        task: "classification" or "regression".

    Returns:
        The mean over classes (or target columns) of the maximum log evidence divided by N.

    Raises:
        ArgumentError: unknown task, mismatched lengths, one-hot or non-integer class labels.
        DataError: fewer than 2 samples or classes, NaN or infinite values.

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import logme
        >>> x = np.random.default_rng(1).normal(size=(100, 4))
        >>> round(logme(x, 2.0 * x[:, 1], task="regression"), 2) > 0
        True
    """
    return float(np.mean(logme_per_target(features, targets, task=task)))


def logme_per_target(features, targets, *, task: str = "classification") -> np.ndarray:
    """Per-class (or per-target-column) LogME evidences; `logme` is their mean. Same arguments."""
    if task not in _TASKS:
        raise ArgumentError("task", task, "must be one of " + ", ".join(_TASKS))
    f = as_features(features)
    n = f.shape[0]
    if task == "classification":
        indices, classes = as_class_labels(targets, n, name="targets")
        y = np.zeros((n, classes.size), dtype=np.float64)
        y[np.arange(n), indices] = 1.0
    else:
        y = as_targets(targets, n)
    sigma, x = _spectrum(f, y)
    y2 = np.sum(y * y, axis=0)
    residual_outside = np.maximum(y2 - np.sum(x * x, axis=0), 0.0)
    return np.array([
        _max_evidence(sigma, x[:, j] ** 2, residual_outside[j], y2[j], n) for j in range(y.shape[1])
    ])


def _spectrum(f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negligible eigenvalues ``sigma`` of ``F^T F`` and the targets in the left singular basis."""
    n, d = f.shape
    if n > d:
        gram = f.T @ f
        sigma, v = np.linalg.eigh(gram)
        sigma = np.maximum(sigma, 0.0)
        keep = _kept(sigma, n, d)
        sigma, v = sigma[keep], v[:, keep]
        # U^T y = S^-1 V^T F^T y, evaluated only for the kept (non-zero) singular values.
        x = (v.T @ (f.T @ y)) / np.sqrt(sigma)[:, None]
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        sigma = s * s
        keep = _kept(sigma, n, d)
        sigma, u = sigma[keep], u[:, keep]
        x = u.T @ y
    return sigma, x


def _kept(sigma: np.ndarray, n: int, d: int) -> np.ndarray:
    top = float(sigma.max()) if sigma.size else 0.0
    if top <= 0.0:
        return np.zeros(sigma.shape, dtype=bool)
    return sigma > top * max(n, d) * _EPS


def _max_evidence(sigma: np.ndarray, x2: np.ndarray, residual_outside: float, y2: float, n: int) -> float:
    """Run the alpha/beta fixed point in ``t = alpha / beta`` and return the evidence / N."""
    scale = float(sigma.max()) if sigma.size else 1.0
    t_low, t_high = scale * 1e-12, scale * 1e12
    res_floor = max(y2, 1.0) * n * _EPS
    t = float(np.clip(1.0, t_low, t_high))
    for _ in range(_MAX_ITER):
        gamma, m2, res2 = _moments(sigma, x2, residual_outside, t)
        if m2 <= _TINY:
            t_new = t_high  # targets orthogonal to the features: the prior wins
        else:
            alpha = gamma / m2
            beta = max(n - gamma, _TINY) / max(res2, res_floor)
            t_new = float(np.clip(alpha / beta, t_low, t_high))
        done = abs(t_new - t) <= _TOL * t
        t = t_new
        if done:
            break
    gamma, m2, res2 = _moments(sigma, x2, residual_outside, t)
    beta = max(max(n - gamma, _TINY) / max(res2, res_floor), _TINY)
    alpha = beta * t
    evidence = (
        -0.5 * float(np.sum(np.log1p(sigma / t)))  # D/2 log(alpha) - 1/2 sum_D log(alpha + beta sigma)
        + 0.5 * n * np.log(beta)
        - 0.5 * beta * res2
        - 0.5 * alpha * m2
        - 0.5 * n * np.log(2.0 * np.pi)
    )
    return float(evidence / n)


def _moments(sigma: np.ndarray, x2: np.ndarray, residual_outside: float, t: float):
    """Effective parameter count, squared norm of the posterior mean and residual sum of squares."""
    denom = sigma + t
    gamma = float(np.sum(sigma / denom))
    m2 = float(np.sum(sigma * x2 / (denom * denom)))
    res2 = float(np.sum(x2 * (t / denom) ** 2)) + residual_outside
    return gamma, m2, res2
