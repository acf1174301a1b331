"""LogME: the log marginal evidence of a linear model on frozen features (You et al., ICML 2021).

LogME fits, for each target column ``y`` (one-hot class indicator or regression target), the
Bayesian linear model ``y = F w + e`` with prior ``w ~ N(0, 1/alpha I)`` and noise
``e ~ N(0, 1/beta)``, chooses ``alpha`` and ``beta`` by the evidence fixed point, and returns the
maximised log evidence per sample, averaged over target columns. Higher is better; it is
comparable between backbones on the same data, not across data sets.

This implementation works on one eigendecomposition of the smaller Gram matrix (``F^T F`` or
``F F^T``) shared by every class, so evaluating the evidence costs O(min(N, D)) per class. Instead of the published
MacKay fixed-point loop (which stops after 11 steps, and for N <= D drifts slowly towards
``alpha/beta -> 0`` without converging) it maximises the evidence directly: given
``t = alpha / beta`` the best ``beta`` has a closed form, so the evidence is a smooth function of
``log t``, searched on a grid and refined with bounded Brent. Where the fixed point converges both
reach the same maximum. Numerically: the log-determinant is ``sum(log1p(sigma / t))`` (zero
singular values of rank-deficient, constant or duplicated features contribute exactly zero
instead of ``log(0)``), singular values below the rank tolerance are dropped, ``t`` stays in a
finite range and the residual has a tiny floor, so finite inputs never give NaN or infinity.

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
import scipy.optimize

from tfxfer.errors import ArgumentError
from tfxfer.transfer._checks import as_class_labels, as_features, as_targets

_TASKS = ("classification", "regression")
_GRID = 64
_EPS = np.finfo(np.float64).eps


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
    return _max_evidences(sigma, x * x, residual_outside, y2, n)


def _spectrum(f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negligible eigenvalues ``sigma`` of ``F^T F`` and the targets in the left singular basis."""
    n, d = f.shape
    peak = float(np.max(np.abs(f)))
    if peak > 0.0:
        f = f / peak  # LogME is invariant to the feature scale; this keeps F^T F far from overflow
    if n > d:
        gram = f.T @ f
        sigma, v = np.linalg.eigh(gram)
        sigma = np.maximum(sigma, 0.0)
        keep = _kept(sigma, n, d)
        sigma, v = sigma[keep], v[:, keep]
        # U^T y = S^-1 V^T F^T y, evaluated only for the kept (non-zero) singular values.
        x = (v.T @ (f.T @ y)) / np.sqrt(sigma)[:, None]
    else:
        sigma, u = np.linalg.eigh(f @ f.T)  # the N x N Gram matrix: cheaper than an SVD of F
        sigma = np.maximum(sigma, 0.0)
        keep = _kept(sigma, n, d)
        sigma, u = sigma[keep], u[:, keep]
        x = u.T @ y
    return sigma, x


def _kept(sigma: np.ndarray, n: int, d: int) -> np.ndarray:
    top = float(sigma.max()) if sigma.size else 0.0
    if top <= 0.0:
        return np.zeros(sigma.shape, dtype=bool)
    return sigma > top * max(n, d) * _EPS


def _max_evidences(sigma: np.ndarray, x2: np.ndarray, residual_outside: np.ndarray, y2: np.ndarray, n: int):
    """Maximum of the profile evidence over ``t = alpha / beta`` for every target column.

    For fixed ``t`` the optimal ``beta`` is ``N / Q(t)`` with ``Q(t) = ||y - F m||^2 + t ||m||^2 =
    sum(x^2 t / (sigma + t)) + residual_outside``, which leaves a smooth 1-D function of ``log t``.
    A log-spaced grid finds the best region (so the maximum is global), bounded Brent refines it.
    """
    if sigma.size:
        scale = float(sigma.max())
        sigma = sigma / scale  # the evidence depends on sigma / t only
    low = np.log(max(n, 1) * _EPS * 1e-3)
    high = np.log(1e8)
    floor = np.maximum(y2, 1.0) * n * _EPS
    grid = np.linspace(low, high, _GRID)
    values = _profile(grid, sigma, x2, residual_outside, floor, n)  # (G, T)
    best = np.argmax(values, axis=0)
    out = np.empty(x2.shape[1])
    for j in range(x2.shape[1]):
        i = int(best[j])
        a, b = grid[max(i - 1, 0)], grid[min(i + 1, _GRID - 1)]
        result = scipy.optimize.minimize_scalar(
            lambda z: -_profile(np.array([z]), sigma, x2[:, j : j + 1], residual_outside[j : j + 1], floor[j : j + 1], n)[0, 0],
            bounds=(a, b), method="bounded", options={"xatol": 1e-10},
        )
        out[j] = max(-float(result.fun), float(values[i, j]))
    return out


def _profile(log_t: np.ndarray, sigma: np.ndarray, x2: np.ndarray, residual_outside: np.ndarray,
             floor: np.ndarray, n: int) -> np.ndarray:
    """Evidence / N at ``beta = N / Q(t)``, ``alpha = beta t``, for each log t (rows) and target (columns).

    ``D/2 log(alpha) - 1/2 sum_D log(alpha + beta sigma) = -1/2 sum log1p(sigma / t)``: zero
    singular values contribute nothing, so rank-deficient features need no special case.
    """
    t = np.exp(log_t)[:, None]  # (G, 1)
    shrink = t / (sigma[None, :] + t)  # (G, k)
    q = np.maximum(shrink @ x2 + residual_outside[None, :], floor[None, :])  # (G, T)
    log_det = np.sum(np.log1p(sigma[None, :] / t), axis=1, keepdims=True)  # (G, 1)
    evidence = -0.5 * log_det + 0.5 * n * np.log(n / q) - 0.5 * n - 0.5 * n * np.log(2.0 * np.pi)
    return evidence / n
