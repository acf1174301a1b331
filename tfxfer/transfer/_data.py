"""Image data in, numpy arrays out (private to tfxfer.transfer)."""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentTypeError, DataError


def as_image_arrays(data, *, max_samples: int | None = None, seed: int = 0):
    """``(images, labels)`` arrays from a tuple or a ``tf.data.Dataset``; a seeded subset if asked."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        xs, ys, count = [], [], 0
        for batch in data:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise DataError("`data` must yield (images, labels) batches")
            xs.append(np.asarray(batch[0]))
            ys.append(np.asarray(batch[1]))
            count += len(xs[-1])
            if max_samples is not None and count >= max_samples:
                break
        if not xs:
            raise DataError("`data` yielded no batches")
        x, y = np.concatenate(xs), np.concatenate(ys)
    elif isinstance(data, tuple) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
    else:
        raise ArgumentTypeError("data", data, "an (images, labels) tuple of arrays or a tf.data.Dataset of such batches")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(f"`data` images must have shape (N, H, W, 1 or 3) of raw 0-255 pixels; got {x.shape}")
    if len(x) != len(y):
        raise DataError(f"`data` has {len(x)} images but {len(y)} labels")
    if max_samples is not None and len(x) > max_samples:
        index = np.sort(np.random.default_rng(seed).choice(len(x), size=max_samples, replace=False))
        x, y = x[index], y[index]
    return x, y


def single_labels(labels: np.ndarray) -> np.ndarray:
    """Class ids from class ids or one-hot rows; multi-hot (multi-label) rows are refused."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        if not np.allclose(labels.sum(axis=1), 1.0) or np.any((labels != 0) & (labels != 1)):
            raise DataError("`data` labels look multi-label (multi-hot rows); transferability scores need one class per example")
        return labels.argmax(axis=1)
    return labels.reshape(-1) if labels.ndim == 2 else labels
