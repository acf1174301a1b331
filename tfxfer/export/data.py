"""Turn the data a user passes to the exporters into numpy arrays.

Accepted everywhere: a numpy array of images, an ``(images, labels)`` tuple, or a
``tf.data.Dataset`` yielding images or ``(images, labels)`` (batched or not).
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError


def _is_dataset(data) -> bool:
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - tensorflow is a dependency
        return False
    return isinstance(data, tf.data.Dataset)


def _from_dataset(data, *, limit: int | None, name: str):
    images, labels = [], []
    count = 0
    for element in data.as_numpy_iterator():
        if isinstance(element, (tuple, list)):
            x, y = element[0], element[1] if len(element) > 1 else None
        elif isinstance(element, dict):
            raise ArgumentTypeError(name, data, "a dataset of images or (images, labels), not of dicts")
        else:
            x, y = element, None
        x = np.asarray(x)
        if x.ndim == 3:  # unbatched
            x = x[None]
            y = None if y is None else np.asarray(y)[None]
        images.append(x)
        if y is not None:
            labels.append(np.asarray(y))
        count += len(x)
        if limit is not None and count >= limit:
            break
    if not images:
        raise DataError(f"`{name}` yielded no images")
    x = np.concatenate(images)
    y = np.concatenate(labels) if labels and len(labels) == len(images) else None
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    return x, y


def as_arrays(data, *, name: str = "data", limit: int | None = None):
    """``(images, labels)`` as numpy arrays; ``labels`` is None when the data carries none."""
    if _is_dataset(data):
        x, y = _from_dataset(data, limit=limit, name=name)
    elif isinstance(data, tuple) and len(data) == 2:
        x, y = np.asarray(data[0]), (None if data[1] is None else np.asarray(data[1]))
        if y is not None and len(y) != len(x):
            raise DataError(f"`{name}` has {len(x)} images but {len(y)} labels")
    elif isinstance(data, np.ndarray):
        x, y = data, None
    else:
        raise ArgumentTypeError(
            name, data, "a numpy array of images, an (images, labels) tuple or a tf.data.Dataset"
        )
    if x.ndim != 4:
        raise DataError(f"`{name}` images must have shape (n, height, width, channels); got {x.shape}")
    if len(x) == 0:
        raise DataError(f"`{name}` is empty")
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    return x.astype(np.float32, copy=False), y


def check_image_shape(images: np.ndarray, shape: tuple[int, int, int], *, name: str) -> None:
    if tuple(images.shape[1:]) != tuple(shape):
        raise DataError(
            f"`{name}` images have shape {tuple(images.shape[1:])} but the model takes {tuple(shape)}; "
            "resize them to the model's input size first"
        )


def sparse_labels(labels, *, num_classes: int, name: str = "data") -> np.ndarray:
    """Integer class ids from integer or one-hot labels."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        y = y.argmax(axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"`{name}` labels must be class ids or one-hot rows; got shape {y.shape}")
    if not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"`{name}` labels must be integer class ids")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= num_classes:
        raise DataError(f"`{name}` labels must be in [0, {num_classes}); got [{y.min()}, {y.max()}]")
    return y


def keras_reference(model, images: np.ndarray, reference_outputs=None, *, num_classes: int,
                    batch_size: int = 32) -> np.ndarray:
    """The Keras model's outputs on ``images`` that a converted file is judged against: ``reference_outputs``
    when given (checked to be ``(len(images), num_classes)``), else one ``model.predict``.

    Example:
        >>> keras_reference(None, np.zeros((2, 4, 4, 3)), np.ones((2, 3)), num_classes=3).shape
        (2, 3)
    """
    if reference_outputs is None:
        return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float32)
    reference = np.asarray(reference_outputs, dtype=np.float32)
    if reference.shape != (len(images), num_classes):
        raise ArgumentError("reference_outputs", reference.shape, f"must have shape {(len(images), num_classes)}")
    return reference


def sample_images(data, *, num_samples: int, seed: int = 0, name: str = "representative_data") -> np.ndarray:
    """Up to ``num_samples`` images drawn at random (seeded) from ``data``, for calibration."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ArgumentError("num_calibration", num_samples, "must be an int >= 1")
    x, _ = as_arrays(data, name=name, limit=None if not _is_dataset(data) else num_samples * 4)
    if len(x) > num_samples:
        index = np.random.default_rng(seed).choice(len(x), size=num_samples, replace=False)
        x = x[np.sort(index)]
    return x
