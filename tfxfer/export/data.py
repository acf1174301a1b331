"""Turn the data a user passes to the exporters into numpy arrays.

Accepted everywhere: a numpy array of images, an ``(images, labels)`` tuple, or a
``tf.data.Dataset`` yielding images or ``(images, labels)`` (batched or not). Images must be finite:
one NaN or infinite pixel is a `DataError` naming the data and its position, before any work (it would
otherwise surface as a gate failure blamed on the exported file, or skew int8 calibration).
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError


def _is_dataset(data) -> bool:
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover - tensorflow is a dependency
        return False
    return isinstance(data, tf.data.Dataset)


def _from_dataset(data, *, limit: int | None, name: str):
    import tensorflow as tf

    if limit is None and int(data.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise DataError(f"`{name}` is an infinite tf.data.Dataset (a .repeat() without a count?): it would be "
                        "read forever; pass a finite one (e.g. dataset.take(n), or drop the .repeat())")
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


def as_arrays(data, *, name: str = "data", limit: int | None = None, sample: tuple[int, int] | None = None):
    """``(images, labels)`` as numpy arrays; ``labels`` is None when the data carries none.

    ``sample=(n, seed)`` keeps a seeded random subset of at most ``n`` images (in their order), picked
    before the images are converted to float32 and checked, so a large uint8 array is never copied whole.
    A tf.data.Dataset is read to its end (or ``limit`` images): an infinite one is a `DataError`.
    """
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
    rows = None
    if sample is not None and len(x) > sample[0]:
        rows = np.sort(np.random.default_rng(sample[1]).choice(len(x), size=sample[0], replace=False))
        x, y = x[rows], None if y is None else y[rows]
    x = x.astype(np.float32, copy=False)
    check_finite(x, name=name, rows=rows)
    return x, y


def check_finite(values: np.ndarray, *, name: str, what: str = "images", rows=None) -> None:
    """`DataError` naming ``name`` and the first NaN or infinite entry of ``values``, if there is one
    (``rows``: the original row of each row of ``values``, when they are a subset: the error names it).

    Example:
        >>> check_finite(np.array([[1.0, np.nan]]), name="eval_data")
        Traceback (most recent call last):
        ...
        tfxfer.errors.DataError: `eval_data` images hold a non-finite value (nan) at index (0, 1); \
tfxfer exports and gates on finite pixel values only (clean or drop those images first)
    """
    finite = np.isfinite(values)
    if finite.all():
        return
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    value = values[first]
    if rows is not None:
        first = (int(rows[first[0]]), *first[1:])
    raise DataError(f"`{name}` {what} hold a non-finite value ({value}) at index {first}; tfxfer exports "
                    f"and gates on finite {'pixel ' if what == 'images' else ''}values only (clean or drop those "
                    f"{what} first)")


def check_image_shape(images: np.ndarray, shape: tuple[int, int, int], *, name: str) -> None:
    if tuple(images.shape[1:]) != tuple(shape):
        raise DataError(
            f"`{name}` images have shape {tuple(images.shape[1:])} but the model takes {tuple(shape)}; "
            "resize them to the model's input size first"
        )


def _numeric(labels, *, name: str) -> np.ndarray:
    y = np.asarray(labels)
    if y.dtype.kind not in "biuf":
        raise DataError(f"`{name}` labels must be numbers; got dtype {y.dtype}")
    if y.dtype.kind == "f":
        check_finite(y, name=name, what="labels")
    return y


def sparse_labels(labels, *, num_classes: int, name: str = "data") -> np.ndarray:
    """Integer class ids from integer or one-hot labels (multi-hot rows are a `DataError`: a softmax
    model picks one class, see `multilabel_targets` for sigmoid models)."""
    y = _numeric(labels, name=name)
    if y.ndim == 2 and y.shape[1] == num_classes and num_classes > 1:
        binary = np.isin(y, (0, 1)).all(axis=1)
        multi_hot = binary & (y.sum(axis=1) != 1)
        if multi_hot.any():
            row = int(np.argmax(multi_hot))
            raise DataError(f"`{name}` label row {row} is {y[row].tolist()}: not one-hot (a multi-class model "
                            "takes one class per example; multi-hot rows are for multi-label sigmoid models)")
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


def multilabel_targets(labels, *, num_labels: int, name: str = "data") -> np.ndarray:
    """``(examples, num_labels)`` 0/1 targets of a multi-label (sigmoid) model from multi-hot rows (or
    a column of 0/1 for a single sigmoid output).

    Example:
        >>> multilabel_targets([[1, 0, 1], [0, 0, 0]], num_labels=3).tolist()
        [[1, 0, 1], [0, 0, 0]]
    """
    y = _numeric(labels, name=name)
    if y.ndim == 1 and num_labels == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != num_labels:
        raise DataError(f"`{name}` labels of a multi-label model must be multi-hot rows of {num_labels} "
                        f"labels; got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"`{name}` labels of a multi-label model must be 0 or 1; got values in "
                        f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def keras_reference(model, images: np.ndarray, reference_outputs=None, *, num_classes: int,
                    batch_size: int = 32) -> np.ndarray:
    """The Keras model's outputs on ``images`` that a converted file is judged against: ``reference_outputs``
    when given (checked to be ``(len(images), num_classes)``), else one ``model.predict``.

    Example:
        >>> keras_reference(None, np.zeros((2, 4, 4, 3)), np.ones((2, 3)), num_classes=3).shape
        (2, 3)
    """
    if reference_outputs is None:
        reference = np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float32)
    else:
        reference = np.asarray(reference_outputs, dtype=np.float32)
        if reference.shape != (len(images), num_classes):
            raise ArgumentError("reference_outputs", reference.shape, f"must have shape {(len(images), num_classes)}")
    if not np.all(np.isfinite(reference)):
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(reference))[0])
        raise ModelError(f"The Keras model gives a non-finite output ({reference[first]}) at {first} on finite "
                         "images, so no exported file can be judged against it (check its weights)")
    return reference


def sample_images(data, *, num_samples: int, seed: int = 0, name: str = "representative_data") -> np.ndarray:
    """Up to ``num_samples`` images drawn at random (seeded) from ``data``, for calibration; only those
    are converted to float32 and checked (a NaN elsewhere is not read), and a dataset is read for at
    most ``4 * num_samples`` images."""
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ArgumentError("num_calibration", num_samples, "must be an int >= 1")
    x, _ = as_arrays(data, name=name, limit=None if not _is_dataset(data) else num_samples * 4,
                     sample=(num_samples, seed))
    return x
