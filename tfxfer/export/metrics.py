"""Metrics the verification gate compares between a Keras model and its exported file.

Example:
    >>> import numpy as np
    >>> from tfxfer.export.metrics import expected_calibration_error
    >>> probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    >>> round(expected_calibration_error(probs, np.array([0, 0, 1, 1])), 3)
    0.3
"""

from __future__ import annotations

import numpy as np


def looks_like_probabilities(outputs: np.ndarray, *, atol: float = 1e-2) -> bool:
    """Rows in [0, 1] that sum to 1 (a softmax output)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        return False
    return bool(np.all(outputs >= -atol) and np.all(outputs <= 1 + atol)
                and np.allclose(outputs.sum(axis=1), 1.0, atol=max(atol, 0.02)))


def expected_calibration_error(probabilities, labels, *, bins: int = 15) -> float:
    """ECE over ``bins`` equal-width confidence bins of the top-1 probability (0 = calibrated)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def per_class_accuracy(predictions, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(accuracy, support)`` per class; accuracy is NaN for classes absent from ``labels``."""
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    support = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels[predictions == labels], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return accuracy, support
