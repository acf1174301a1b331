"""Argument checks shared by the transferability scores (private)."""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError


def as_features(features, *, name: str = "features") -> np.ndarray:
    """``features`` as a finite float64 (N, D) array; 1-D input becomes one column."""
    try:
        array = np.asarray(features, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError(name, type(features).__name__, "a numeric array of shape (N, D)") from exc
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ArgumentError(name, f"array of shape {array.shape}", "must have shape (N, D)")
    if array.shape[0] < 2 or array.shape[1] < 1:
        raise DataError(f"`{name}` needs at least 2 samples and 1 feature. Received shape {array.shape}")
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise DataError(f"`{name}` holds {bad} NaN or infinite values; transferability scores need finite features")
    return array


def as_class_labels(labels, num_samples: int, *, name: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Integer class labels of length ``num_samples`` re-indexed to 0..C-1; returns (indices, classes)."""
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] > 1:
        raise ArgumentError(name, f"array of shape {array.shape}", "must be integer class labels of shape (N,), not one-hot")
    array = array.reshape(-1)
    if array.shape[0] != num_samples:
        raise ArgumentError(name, f"{array.shape[0]} labels", f"must have one label per sample ({num_samples})")
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ArgumentError(name, "non-integer values", "must be integer class labels (use task='regression' for real targets)")
        array = array.astype(np.int64)
    elif array.dtype.kind not in "iub":
        raise ArgumentTypeError(name, f"array of dtype {array.dtype}", "integer class labels")
    classes, indices = np.unique(array, return_inverse=True)
    if classes.size < 2:
        raise DataError(f"`{name}` holds a single class ({classes.tolist()}); a transferability score needs at least 2")
    return indices.astype(np.int64), classes


def as_targets(targets, num_samples: int, *, name: str = "targets") -> np.ndarray:
    """Real-valued targets as a finite float64 (N, T) array."""
    array = np.asarray(targets, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] != num_samples:
        raise ArgumentError(name, f"array of shape {array.shape}", f"must have shape ({num_samples},) or ({num_samples}, T)")
    if not np.all(np.isfinite(array)):
        raise DataError(f"`{name}` holds NaN or infinite values")
    return array


def as_probabilities(probs, *, name: str = "source_probs", from_logits: bool = False) -> np.ndarray:
    """Source-model class probabilities as a (N, Z) float64 array whose rows sum to 1."""
    array = as_features(probs, name=name)
    if from_logits:
        shifted = array - array.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        return exp / exp.sum(axis=1, keepdims=True)
    sums = array.sum(axis=1)
    if np.any(array < 0) or not np.allclose(sums, 1.0, atol=1e-3):
        raise ArgumentError(
            name, f"rows summing to [{sums.min():.4g}, {sums.max():.4g}]",
            "must hold probabilities (non-negative rows summing to 1)", hint="Pass from_logits=True for logits",
        )
    return array / sums[:, None]
