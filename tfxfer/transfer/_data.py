"""Image data in, numpy arrays out (private to tfxfer.transfer)."""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentTypeError, DataError


def read_image_arrays(data, *, read_limit: int | None = None):
    """``(images, labels)`` arrays from a tuple or a ``tf.data.Dataset`` (read until it ends or has
    yielded ``read_limit`` examples), checked: images (N, H, W, 1 or 3), one label per image."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        xs, ys, count = [], [], 0
        for batch in data:
            if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                raise DataError("`data` must yield (images, labels) batches")
            xs.append(np.asarray(batch[0]))
            ys.append(np.asarray(batch[1]))
            count += len(xs[-1])
            if read_limit is not None and count >= read_limit:
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
    return x, y


def as_image_arrays(data, *, max_samples: int | None = None, seed: int = 0):
    """``(images, labels)`` arrays from a tuple or a ``tf.data.Dataset``; a seeded subset if asked."""
    x, y = read_image_arrays(data, read_limit=max_samples)
    if max_samples is not None and len(x) > max_samples:
        index = np.sort(np.random.default_rng(seed).choice(len(x), size=max_samples, replace=False))
        x, y = x[index], y[index]
    return x, y


def class_quotas(counts, *, max_samples: int | None, max_per_class: int | None, seed: int = 0) -> np.ndarray:
    """How many examples of each class a stratified subset takes: at most ``max_per_class`` of each
    (all of a smaller class), then, over ``max_samples`` in all, as even as the classes allow (the
    last few places go to a seeded choice of the largest classes).

    Example:
        >>> class_quotas([500, 500, 30], max_samples=1000, max_per_class=50).tolist()
        [50, 50, 30]
        >>> class_quotas([500, 500, 30], max_samples=100, max_per_class=None).tolist()
        [35, 35, 30]
    """
    counts = np.asarray(counts, dtype=np.int64)
    quotas = counts if max_per_class is None else np.minimum(counts, int(max_per_class))
    if max_samples is None or quotas.sum() <= max_samples:
        return quotas
    low, high = 0, int(quotas.max())  # the largest per-class level whose capped total fits (binary search)
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if np.minimum(quotas, mid).sum() <= max_samples else (low, mid - 1)
    level = low
    out = np.minimum(quotas, level)
    left = int(max_samples - out.sum())
    open_classes = np.flatnonzero(quotas > level)
    out[np.random.default_rng(seed).permutation(open_classes)[:left]] += 1
    return out


def ranking_subset(labels, *, max_samples: int | None, max_per_class: int | None, seed: int = 0,
                   stratify: bool = True) -> np.ndarray:
    """Sorted indices of the examples a ranking scores: stratified by class (`class_quotas`), each
    class's examples a seeded random choice; without ``stratify`` (regression) a seeded random
    subset of at most ``max_samples``. All indices when no limit applies.

    Example:
        >>> import numpy as np
        >>> index = ranking_subset(np.repeat([0, 1], [90, 10]), max_samples=40, max_per_class=None)
        >>> len(index), int((index >= 90).sum())
        (40, 10)
    """
    n = len(labels)
    rng = np.random.default_rng(seed)
    if not stratify:
        if max_samples is None or n <= max_samples:
            return np.arange(n)
        return np.sort(rng.choice(n, size=max_samples, replace=False))
    labels = np.asarray(labels)
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=classes.size)
    quotas = class_quotas(counts, max_samples=max_samples, max_per_class=max_per_class, seed=seed)
    if np.array_equal(quotas, counts):
        return np.arange(n)
    chosen = [rng.permutation(np.flatnonzero(inverse == c))[:q] for c, q in enumerate(quotas)]
    return np.sort(np.concatenate(chosen))


def single_labels(labels: np.ndarray) -> np.ndarray:
    """Class ids from class ids or one-hot rows; multi-hot (multi-label) rows are refused."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        if not np.allclose(labels.sum(axis=1), 1.0) or np.any((labels != 0) & (labels != 1)):
            raise DataError("`data` labels look multi-label (multi-hot rows); transferability scores need one class per example")
        return labels.argmax(axis=1)
    return labels.reshape(-1) if labels.ndim == 2 else labels
