"""The one metrics module: accuracy, per-class precision / recall / F1 / accuracy, confusion matrix,
expected calibration error (ECE) with its reliability table, and the chance-level check
(`chance_check`: at or below the majority-class rate, or one class for everything). Used by the export gate,
the evaluate stages, ``tfxfer evaluate`` and the report, so they all report the same numbers for the same model.

**ECE uses 15 equal-width confidence bins** (`ECE_BINS`), the count of Guo et al. 2017 ("On
Calibration of Modern Neural Networks") and of most papers and libraries since, so tfxfer's numbers
compare with published ones. Bin ``i`` holds top-1 confidences in ``(i/15, (i+1)/15]`` (the first bin
also holds 0). Fewer bins hide miscalibration inside a bin, many more leave bins nearly empty on a
few hundred held-out examples. The reliability *diagram* may use other bins (``bins`` of
`classification_metrics`); the ECE it reports is always the 15-bin one.

Example:
    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> m = classification_metrics(probs, np.array([0, 1, 1, 1]), ["cat", "dog"])
    >>> m["accuracy"], m["confusion"], [c["recall"] for c in m["per_class"]], m["ece"]
    (0.75, [[1, 0], [1, 2]], [1.0, 0.6667], 0.3)
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError, DataError, bounded_repr

#: Equal-width confidence bins of the expected calibration error (see the module docstring).
ECE_BINS = 15


def class_ids(labels, *, name: str = "labels") -> np.ndarray:
    """Class ids (int64) from ids or one-hot rows.

    Raises:
        DataError: labels that are not class ids (class names, NaN / Inf, fractions, ids < 0);
            ``name`` is the argument named in the message.

    Example:
        >>> class_ids([[0, 1], [1, 0]]).tolist(), class_ids([2.0, 0.0]).tolist()
        ([1, 0], [2, 0])
        >>> class_ids([0, -1])
        Traceback (most recent call last):
        ...
        tfxfer.errors.DataError: `labels` must be class ids >= 0; found -1 at example 1
    """
    labels = np.asarray(labels)
    if labels.dtype.kind == "b":
        labels = labels.astype(np.int64)
    if labels.dtype.kind == "O":  # numbers in an object array (pandas); names stay refused below
        try:
            labels = labels.astype(np.float64)
        except (TypeError, ValueError):
            pass
    if labels.dtype.kind not in "iuf":
        shown = bounded_repr(labels.reshape(-1)[:3].tolist())
        raise DataError(f"`{name}` must be integer class ids (or one-hot rows); got dtype {labels.dtype} (such as "
                        f"{shown}). Map class names to ids first, e.g. names, ids = np.unique(labels, "
                        "return_inverse=True)")
    if labels.dtype.kind == "f" and labels.size:
        finite = np.isfinite(labels)
        if not finite.all():
            raise DataError(f"`{name}` contains NaN or Inf (first at example {_first(~finite)}); class ids must be "
                            "finite integers >= 0")
        if labels.ndim != 2 and np.any(np.mod(labels, 1) != 0):
            bad = _first(np.mod(labels, 1) != 0)
            raise DataError(f"`{name}` must be integer class ids; found {labels.reshape(-1)[bad]} at example {bad}")
    if labels.ndim == 2:
        return labels.argmax(axis=-1)
    if labels.size and labels.min() < 0:
        bad = _first(labels < 0)
        raise DataError(f"`{name}` must be class ids >= 0; found {labels.reshape(-1)[bad]:g} at example {bad}")
    return labels.astype(np.int64)


def _first(mask) -> int:
    """The example (row) index of the first True of ``mask``."""
    mask = np.asarray(mask)
    flat = int(np.flatnonzero(mask.reshape(-1))[0])
    return flat // int(np.prod(mask.shape[1:], dtype=np.int64)) if mask.ndim > 1 else flat


def check_probabilities(outputs, *, name: str = "predictions", atol: float = 1e-3) -> np.ndarray:
    """``outputs`` as float64 class probabilities ``(n, k)``, else a `DataError` naming ``name``.

    Rows must be finite, within [0, 1] and sum to 1 (within ``atol`` per entry and 1e-2 per row,
    what float16 / float32 softmax outputs meet); logits and sigmoid outputs of several labels do not.

    Example:
        >>> check_probabilities([[3.0, -2.0]])
        Traceback (most recent call last):
        ...
        tfxfer.errors.DataError: `predictions` must be class probabilities (rows in [0, 1] summing to 1); row 0 ...
    """
    probs = np.asarray(outputs, dtype=np.float64)
    what = f"`{name}` must be class probabilities (rows in [0, 1] summing to 1)"
    if probs.ndim != 2:
        raise DataError(f"{what}; got an array of shape {probs.shape}")
    finite = np.isfinite(probs).all(axis=1)
    if not finite.all():
        raise DataError(f"{what}; row {_first(~finite)} holds NaN or Inf")
    out_of_range = ((probs < -atol) | (probs > 1 + atol)).any(axis=1)
    if out_of_range.any():
        bad = _first(out_of_range)
        raise DataError(f"{what}; row {bad} is {bounded_repr(probs[bad].tolist())} (logits? apply a softmax "
                        "first)")
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > max(atol, 1e-2)
    if off.any():
        bad = _first(off)
        raise DataError(f"{what}; row {bad} sums to {sums[bad]:.4g}")
    return np.clip(probs, 0.0, 1.0)


def _check_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ArgumentError("bins", bins, "must be an int >= 1")
    return int(bins)


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)


def looks_like_probabilities(outputs, *, atol: float = 1e-2) -> bool:
    """Rows in [0, 1] that sum to 1 (a softmax output with at least two classes)."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2 or outputs.shape[1] < 2:
        return False
    return bool(np.all(outputs >= -atol) and np.all(outputs <= 1 + atol)
                and np.allclose(outputs.sum(axis=1), 1.0, atol=max(atol, 0.02)))


def expected_calibration_error(probabilities, labels, *, bins: int = ECE_BINS) -> float:
    """ECE: the example-weighted mean |accuracy - confidence| over equal-width top-1 confidence bins
    (0 = calibrated). ``labels`` are class ids or one-hot rows."""
    bins = _check_bins(bins)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = class_ids(labels)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    index = _bin_index(confidence, bins)
    ece = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def reliability(probabilities, labels, *, bins: int = ECE_BINS) -> tuple[float, list]:
    """``(ece, table)``: the ECE over ``bins`` bins (rounded to 4 places) and one
    ``{"lo", "hi", "count", "confidence", "accuracy"}`` entry per bin (the reliability diagram)."""
    bins = _check_bins(bins)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = class_ids(labels)
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    index = _bin_index(confidence, bins)
    edges = np.linspace(0.0, 1.0, bins + 1)
    table = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        table.append({"lo": round(float(edges[b]), 4), "hi": round(float(edges[b + 1]), 4), "count": count,
                      "confidence": round(float(confidence[mask].mean()), 4) if count else None,
                      "accuracy": round(float(correct[mask].mean()), 4) if count else None})
    return round(expected_calibration_error(probabilities, labels, bins=bins), 4), table


def per_class_accuracy(predictions, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``(accuracy, support)`` per class (accuracy = recall); NaN for classes absent from ``labels``."""
    predictions = np.asarray(predictions)
    labels = class_ids(labels)
    support = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels[predictions == labels], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(support > 0, hits / np.maximum(support, 1), np.nan)
    return accuracy, support


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """``[true class, predicted class]`` counts (int64)."""
    labels, predictions = class_ids(labels), np.asarray(predictions, dtype=np.int64)
    if labels.shape != predictions.shape:
        raise ArgumentError("predictions", predictions.shape, f"must match the labels' shape {labels.shape}")
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return confusion


def per_class_scores(confusion, class_names) -> list[dict]:
    """``{"name", "precision", "recall", "f1", "support"}`` per class from a confusion matrix
    (0 where a class was never predicted or never present, as scikit-learn's ``zero_division=0``)."""
    confusion = np.asarray(confusion)
    out = []
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        support = int(confusion[i].sum())
        predicted = int(confusion[:, i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append({"name": str(name), "precision": round(float(precision), 4), "recall": round(float(recall), 4),
                    "f1": round(float(f1), 4), "support": support})
    return out


def classification_metrics(probabilities, labels, class_names, *, bins: int = ECE_BINS) -> dict:
    """Accuracy, macro F1 (over present classes), per-class scores, confusion matrix, the 15-bin ECE and
    a reliability table over ``bins`` bins (for the diagram).

    Args:
        probabilities: ``[examples, classes]`` model outputs.
        labels: class ids or one-hot rows.
        class_names: one name per class.
        bins: bins of the reliability table; the ``ece`` value always uses `ECE_BINS`.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = class_ids(labels)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(class_names):
        raise ArgumentError("probabilities", probabilities.shape, f"must have shape (examples, {len(class_names)})")
    predictions = probabilities.argmax(axis=1)
    confusion = confusion_matrix(labels, predictions, len(class_names))
    per_class = per_class_scores(confusion, class_names)
    _, table = reliability(probabilities, labels, bins=bins)
    present = [c for c in per_class if c["support"]]
    return {"num_examples": int(len(labels)),
            "accuracy": round(float((predictions == labels).mean()), 4) if len(labels) else 0.0,
            "macro_f1": round(float(np.mean([c["f1"] for c in present])) if present else 0.0, 4),
            "per_class": per_class, "confusion": confusion.tolist(),
            "ece": round(expected_calibration_error(probabilities, labels), 4) if len(labels) else 0.0,
            "reliability": table}


#: The rule `chance_check` applies, in words (printed by the CLI and the report).
CHANCE_RULE = ("flagged when accuracy is at or below the majority-class rate of the evaluation labels (the "
               "accuracy of always answering the most frequent class; 1/num_classes on a balanced split), or when "
               "the model predicts one class for every example of data holding two or more classes")


def chance_check(confusion, class_names=None) -> dict:
    """Is a classifier no better than chance on its evaluation data? A pure function of the confusion
    matrix (``[true class, predicted class]`` counts), shared by ``tfxfer run``, ``tfxfer evaluate``
    and the report so all three flag the same runs (`CHANCE_RULE`).

    Flagged when ``accuracy <= chance``, where ``chance`` is the majority-class rate (the share of the
    most frequent true class, which a constant answer reaches; ``1 / num_classes`` when the split is
    balanced), or when every example gets the same predicted class although the data hold two or
    more classes. Data with fewer than two classes present cannot be judged (``applicable`` False).

    Returns:
        ``{"flagged", "applicable", "reasons": [sentence, ...], "accuracy", "chance", "majority_class",
        "predicted_classes", "single_class" (name or None), "classes_present", "num_examples", "rule"}``.

    Example:
        >>> check = chance_check([[5, 0], [5, 0]], ["ok", "defect"])  # always answers "ok"
        >>> check["flagged"], check["chance"], check["single_class"]
        (True, 0.5, 'ok')
        >>> print(check["reasons"][0])
        accuracy 0.5000 is at or below chance (0.5000, the majority-class rate: always answering 'ok')
        >>> chance_check([[4, 1], [0, 5]])["flagged"]
        False
    """
    matrix = np.asarray(confusion)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.issubdtype(matrix.dtype, np.number):
        raise ArgumentError("confusion", f"an array of shape {matrix.shape}", "must be a square matrix of counts")
    if np.any(matrix < 0) or not np.all(np.isfinite(matrix)):
        raise ArgumentError("confusion", "a matrix with negative or non-finite entries", "must hold counts >= 0")
    matrix = matrix.astype(np.int64)
    k = matrix.shape[0]
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ArgumentError("class_names", f"{len(names)} names", f"must have one name per class ({k})")
    n = int(matrix.sum())
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    correct = int(np.trace(matrix))
    present = int((support > 0).sum())
    out = {"flagged": False, "applicable": n > 0 and present >= 2, "reasons": [],
           "accuracy": round(correct / n, 4) if n else None,
           "chance": round(float(support.max()) / n, 4) if n else None,
           "majority_class": names[int(support.argmax())] if n else None,
           "predicted_classes": int((predicted > 0).sum()), "single_class": None, "classes_present": present,
           "num_examples": n, "rule": CHANCE_RULE}
    if not out["applicable"]:
        return out
    if correct <= int(support.max()):  # counts, not rounded rates: exact
        out["reasons"].append(f"accuracy {correct / n:.4f} is at or below chance ({support.max() / n:.4f}, the "
                              f"majority-class rate: always answering {out['majority_class']!r})")
    if out["predicted_classes"] == 1:
        out["single_class"] = names[int(predicted.argmax())]
        out["reasons"].append(f"the model predicts {out['single_class']!r} for all {n} examples although the data "
                              f"hold {present} classes")
    out["flagged"] = bool(out["reasons"])
    return out


def metrics_chance_check(metrics) -> dict | None:
    """`chance_check` of a `classification_metrics` dict (as ``eval/metrics.json`` stores it); None
    for metrics without a confusion matrix (NER's entity scores, multi-label)."""
    if not isinstance(metrics, dict) or not metrics.get("confusion"):
        return None
    names = [c.get("name") for c in metrics.get("per_class") or []]
    try:
        return chance_check(metrics["confusion"], names if len(names) == len(metrics["confusion"]) else None)
    except (ArgumentError, TypeError, ValueError):
        return None
