"""The most confident mistakes of an evaluation, for the report: a JSON list and image thumbnails.

Example:
    >>> import numpy as np, os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.2, 0.8]])
    >>> paths = write_misclassified(folder, probs, [1, 1, 0], ["cat", "dog"], texts=["a", "b", "c"])
    >>> [os.path.basename(p) for p in paths]
    ['misclassified.json']
"""

from __future__ import annotations

import os

import numpy as np

from tfxfer.metrics import class_ids
from tfxfer.utils.atomic import atomic_path, atomic_write_json


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


def write_misclassified(folder, probs, labels, class_names, *, images=None, texts=None, names=None,
                        limit: int = 16) -> list[str]:
    """Write the ``limit`` most confident mistakes to ``<folder>/misclassified.json`` (and their
    ``images`` as ``misclassified.npz`` thumbnails); returns the written paths."""
    probs = np.asarray(probs)
    labels = class_ids(labels)
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-probs[wrong, pred[wrong]], kind="stable")][:limit]
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
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    json_path = os.path.join(folder, "misclassified.json")
    atomic_write_json(json_path, {"count": int(len(wrong)), "shown": items})
    out = [json_path]
    if images is not None:
        npz = os.path.join(folder, "misclassified.npz")
        with atomic_path(npz) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, thumbnails=np.asarray(images)[order] if len(order) else np.zeros((0, 1, 1, 1), np.uint8))
        out.append(npz)
    return out
