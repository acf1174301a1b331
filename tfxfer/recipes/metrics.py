"""Evaluation numbers for the report: accuracy, per-class precision/recall/F1, confusion matrix,
expected calibration error with reliability bins, and the most confident mistakes.

Example:
    >>> import numpy as np
    >>> probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    >>> m = classification_metrics(probs, np.array([0, 1, 1, 1]), ["cat", "dog"], bins=2)
    >>> m["accuracy"], m["confusion"], [c["recall"] for c in m["per_class"]]
    (0.75, [[1, 0], [1, 2]], [1.0, 0.6667])
"""

from __future__ import annotations

import numpy as np

from tfxfer.utils.atomic import atomic_path, atomic_write_json


def sparse(labels) -> np.ndarray:
    labels = np.asarray(labels)
    return labels.argmax(axis=-1) if labels.ndim == 2 else labels.astype(np.int64)


def reliability(probs: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> tuple[float, list]:
    """Expected calibration error (top-1 confidence, equal-width bins) and the per-bin table."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    table, ece = [], 0.0
    for i in range(bins):
        lo, hi = edges[i], edges[i + 1]
        mask = (conf > lo) & (conf <= hi) if i else (conf >= lo) & (conf <= hi)
        count = int(mask.sum())
        entry = {"lo": round(float(lo), 4), "hi": round(float(hi), 4), "count": count,
                 "confidence": None, "accuracy": None}
        if count:
            entry["confidence"] = round(float(conf[mask].mean()), 4)
            entry["accuracy"] = round(float(correct[mask].mean()), 4)
            ece += count / len(conf) * abs(entry["accuracy"] - entry["confidence"])
        table.append(entry)
    return round(float(ece), 4), table


def classification_metrics(probs, labels, class_names, *, bins: int = 10) -> dict:
    """Accuracy, macro F1, per-class metrics, confusion matrix and calibration of ``probs``."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = sparse(labels)
    k = len(class_names)
    pred = probs.argmax(axis=1)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = []
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        support = int(confusion[i].sum())
        predicted = int(confusion[:, i].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({"name": str(name), "precision": round(float(precision), 4),
                          "recall": round(float(recall), 4), "f1": round(float(f1), 4), "support": support})
    ece, table = reliability(probs, labels, bins=bins)
    present = [c for c in per_class if c["support"]]
    return {"num_examples": int(len(labels)), "accuracy": round(float((pred == labels).mean()), 4),
            "macro_f1": round(float(np.mean([c["f1"] for c in present])) if present else 0.0, 4),
            "per_class": per_class, "confusion": confusion.tolist(), "ece": ece, "reliability": table}


def thumbnails(images, *, size: int = 64) -> np.ndarray:
    """Batch of 0-255 images -> uint8 thumbnails no larger than ``size`` (aspect kept)."""
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    h, w = int(images.shape[1]), int(images.shape[2])
    scale = min(1.0, size / max(h, w))
    if scale < 1.0:
        images = tf.image.resize(tf.cast(images, tf.float32), (max(1, round(h * scale)), max(1, round(w * scale))),
                                 antialias=True)
    return np.clip(np.round(np.asarray(images, dtype=np.float32)), 0, 255).astype(np.uint8)


def save_misclassified(ctx, probs, labels, class_names, *, images=None, texts=None, names=None,
                       limit: int = 16) -> list[str]:
    """Write the ``limit`` most confident mistakes to ``eval/misclassified.json`` (+ ``.npz`` thumbnails)."""
    labels = sparse(labels)
    pred = np.asarray(probs).argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-np.asarray(probs)[wrong, pred[wrong]], kind="stable")][:limit]
    items = []
    for j, i in enumerate(order):
        item = {"index": int(i), "true": str(class_names[labels[i]]), "predicted": str(class_names[pred[i]]),
                "confidence": round(float(probs[i, pred[i]]), 4),
                "true_probability": round(float(probs[i, labels[i]]), 4)}
        if names is not None:
            item["name"] = str(names[i])
        if texts is not None:
            item["text"] = str(texts[i])
        if images is not None:
            item["thumbnail"] = j
        items.append(item)
    out = []
    json_path = ctx.path("eval", "misclassified.json")
    atomic_write_json(json_path, {"count": int(len(wrong)), "shown": items})
    out.append(ctx.rel(json_path))
    if images is not None:
        npz = ctx.path("eval", "misclassified.npz")
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, thumbnails=np.asarray(images)[order] if len(order) else
                         np.zeros((0, 1, 1, 1), np.uint8))
        out.append(ctx.rel(npz))
    return out
