"""Image loaders over in-memory data: numpy arrays, or an existing ``tf.data.Dataset``.

Example:
    >>> import numpy as np
    >>> from tfxfer.data import image_dataset_from_arrays
    >>> x = np.random.default_rng(0).integers(0, 255, (20, 28, 28), dtype="uint8")  # grayscale
    >>> y = np.array(["cat", "dog"] * 10)
    >>> data = image_dataset_from_arrays(x, y, image_size=(32, 32), batch_size=5, test_split=0.2)
    >>> data.class_names, tuple(next(iter(data.test))[0].shape)
    (['cat', 'dog'], (4, 32, 32, 3))
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf

from tfxfer.data.hygiene import (
    DataSummary,
    check_class_counts,
    class_weights,
    count_by_class,
    find_duplicates,
    handle_leakage,
    imbalance_report,
    sort_class_names,
)
from tfxfer.data.tfdata import (
    array_pipeline,
    check_batch_size,
    check_image_size,
    check_interpolation,
    prepare_array_images,
)
from tfxfer.data.result import ImageData, encode_labels
from tfxfer.data.splits import check_fractions, stratified_split
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, bounded_repr
from tfxfer.utils.validate import check_int, check_unique_names


def _label_strings(y):
    """Class-name labels as str: bytes decoded as UTF-8 (``b"cat"`` is "cat", not "b'cat'"); a missing
    label (None, NaN) or a non-UTF-8 one is a `DataError` naming its index (it would become a class)."""
    out = []
    for i, v in enumerate(y.tolist()):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"`y[{i}]` is bytes that are not UTF-8 ({bounded_repr(v)})") from None
        if v is None or (isinstance(v, float) and v != v):
            raise DataError(f"`y[{i}]` is a missing label ({v!r}); drop that image or give it a class")
        out.append(str(v))
    return np.asarray(out, dtype=object)


def _labels_to_ids(y, class_names, multi_label):
    if class_names is not None:
        class_names = check_unique_names("class_names", class_names)
    y = np.asarray(y)
    if multi_label:
        if y.ndim != 2:
            raise ArgumentError("y", y.shape, "must be a (n, num_labels) multi-hot matrix when multi_label=True")
        if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.isfinite(y).all()):
            raise DataError("`y` multi-hot rows must be finite 0/1 numbers; found "
                            + ("NaN or Inf" if y.dtype.kind == "f" else f"dtype {y.dtype}"))
        names = list(class_names) if class_names is not None else [str(i) for i in range(y.shape[1])]
        if len(names) != y.shape[1]:
            raise ArgumentError("class_names", names, f"must have {y.shape[1]} names (columns of y)")
        return (y > 0.5).astype(np.float32), names
    if y.ndim == 2 and y.shape[1] == 1 and y.dtype.kind in "biuUSO":  # a column of class ids or names
        y = y[:, 0]
    if y.ndim == 2:
        if not np.all((y == 0) | (y == 1)) or not np.all(y.sum(axis=1) == 1):
            raise ArgumentError("y", "a 2-D array that is not one-hot",
                                "must be class ids, class names, or one-hot rows (pass multi_label=True for multi-hot)")
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise ArgumentError("y", y.shape, "must be 1-D (one label per image)")
    if y.dtype.kind in "USO":
        y = _label_strings(y)
        names = sort_class_names({str(v) for v in y}) if class_names is None else list(class_names)
        lookup = {n: i for i, n in enumerate(names)}
        unknown = sorted({str(v) for v in y} - set(lookup))
        if unknown:
            raise DataError(f"Labels {unknown} are not in class_names {names}")
        return np.array([lookup[str(v)] for v in y], np.int64), names
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ArgumentError("y", "non-integer floats", "must be integer class ids")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ArgumentError("y", int(y.min()), "must hold class ids >= 0")
    k = int(y.max()) + 1 if y.size else 0
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    if k > len(names):
        raise ArgumentError("class_names", names, f"must name every class id up to {k - 1}")
    return y, names


def image_dataset_from_arrays(
    x,
    y,
    *,
    image_size=None,
    class_names=None,
    multi_label: bool = False,
    batch_size: int = 32,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = 0,
    label_mode: str | None = None,
    color_mode: str = "rgb",
    augment=None,
    cache="auto",
    shuffle: bool = True,
    interpolation: str = "bilinear",
    on_leakage: str = "warn",
    min_per_class: int | None = None,
    drop_remainder: bool = False,
    source: str = "arrays",
) -> ImageData:
    """Train/val/test datasets from an image array and labels.

    Args:
        x: ``(n, h, w)`` grayscale or ``(n, h, w, 1|3|4)`` images in 0-255 (any numeric dtype;
            alpha is dropped, grayscale is repeated to RGB when ``color_mode="rgb"``).
        y: class ids, class names (strings), one-hot rows, or multi-hot rows with
            ``multi_label=True``.
        image_size: output (height, width); default: the arrays' own size.
        class_names: names for the class ids / columns (default "0", "1", ...; for string labels
            the sorted labels, numerically if all are numbers: "2" before "10").
        Other arguments: as in `tfxfer.data.image_dataset_from_folder`. Exact duplicate images
            are found by hashing pixels, kept in one split, and reported.

    Returns:
        `ImageData` (``files`` is None).
    """
    images = np.asarray(x)
    if images.ndim not in (3, 4):
        raise ArgumentError("x", images.shape, "must have shape (n, height, width[, channels])")
    if not len(images):
        raise DataError("`x` holds no images (an empty array); there is nothing to split or train on")
    if 0 in images.shape[1:]:
        raise ArgumentError("x", images.shape, "must hold images of at least 1x1 pixels (one of its sides is 0)")
    if images.dtype.kind not in "buif":  # complex would silently lose its imaginary part, objects fail later
        raise ArgumentError("x", f"an array of dtype {images.dtype}",
                            "must hold real numbers (uint8 or float pixels in 0-255)")
    image_size = check_image_size(image_size if image_size is not None else images.shape[1:3])
    batch_size = check_batch_size(batch_size)
    check_fractions(validation_split, test_split)
    check_interpolation(interpolation)
    check_int("seed", seed, low=None)
    if len(images) != len(np.asarray(y)):
        raise ArgumentError("y", f"{len(np.asarray(y))} labels", f"must have one label per image ({len(images)})")
    if color_mode not in ("rgb", "grayscale"):
        raise ArgumentError("color_mode", color_mode, 'must be "rgb" or "grayscale"')
    channels = 3 if color_mode == "rgb" else 1
    ids, names = _labels_to_ids(y, class_names, multi_label)
    label_mode = "multi_hot" if multi_label else (label_mode or "int")
    if not multi_label and label_mode not in ("int", "categorical"):
        raise ArgumentError("label_mode", label_mode, 'must be "int" or "categorical"')
    images = prepare_array_images(images, channels=channels)
    summary = DataSummary(source=source, scanned=len(images))
    hashes = [hashlib.sha256(img.tobytes()).hexdigest() for img in images]
    n_splits = 1 + (validation_split > 0) + (test_split > 0)
    check_class_counts({"all": count_by_class(ids, names)}, names,
                       min_per_class=max(int(min_per_class or 0), n_splits))
    parts = stratified_split(ids, validation_split=validation_split, test_split=test_split, seed=seed,
                             groups=hashes, class_names=names)
    split_of = np.empty(len(images), dtype=object)
    for name, idx in parts.items():
        split_of[idx] = name
    summary.duplicates, summary.leakage = find_duplicates(hashes, list(split_of),
                                                          [f"#{i}" for i in range(len(images))])
    handle_leakage(summary.leakage, on_leakage, summary)
    summary.class_counts = {s: count_by_class(ids[idx], names) for s, idx in parts.items()}
    check_class_counts(summary.class_counts, names, min_per_class=max(int(min_per_class or 0), 1))
    summary.imbalance = imbalance_report(summary.class_counts["train"])
    summary.class_weights = None if multi_label else class_weights(summary.class_counts["train"], names)
    datasets, labels = {}, {}
    for s, idx in parts.items():
        labels[s] = encode_labels(ids[idx], label_mode=label_mode, num_classes=len(names))
        datasets[s] = array_pipeline(
            images[idx], labels[s], image_size=image_size, batch_size=batch_size,
            training=(s == "train"), seed=seed, cache=cache, shuffle=shuffle,
            augment=augment if s == "train" else None, num_classes=len(names), channels=channels,
            interpolation=interpolation, drop_remainder=drop_remainder and s == "train")
    return ImageData(train=datasets["train"], val=datasets.get("val"), test=datasets.get("test"),
                     class_names=names, summary=summary, image_size=image_size, label_mode=label_mode,
                     files=None, labels=labels)


def image_dataset_from_dataset(
    dataset: tf.data.Dataset,
    *,
    image_size,
    class_names=None,
    multi_label: bool = False,
    **kwargs,
) -> ImageData:
    """Re-split and re-pipeline an existing ``tf.data.Dataset`` of ``(image, label)`` pairs.

    The dataset (batched or not) is read once, each image resized to ``image_size`` as uint8,
    and then handled exactly like `image_dataset_from_arrays` (splits, duplicate detection,
    caching, augmentation). For data that does not fit in memory, use the folder or CSV loaders,
    which stream from files.

    Args:
        dataset: yields ``(image, label)``; images in 0-255, any size (resized here).
        image_size: (height, width) every image is resized to.
        class_names, multi_label: as in `image_dataset_from_arrays`.
        **kwargs: the remaining keyword arguments of `image_dataset_from_arrays`
            (batch_size, validation_split, test_split, seed, augment, ...).

    Example:
        >>> import numpy as np, tensorflow as tf
        >>> from tfxfer.data import image_dataset_from_dataset
        >>> ds = tf.data.Dataset.from_tensor_slices((np.zeros((6, 10, 10, 3), "uint8"), [0, 1] * 3))
        >>> data = image_dataset_from_dataset(ds.batch(2), image_size=(8, 8), batch_size=3)
        >>> tuple(next(iter(data.train))[0].shape)
        (3, 8, 8, 3)
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ArgumentTypeError("dataset", dataset, "a tf.data.Dataset")
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ArgumentError("dataset", spec, "must yield (image, label) pairs")
    image_size = check_image_size(image_size)
    if spec[0].shape.rank == 4:
        dataset = dataset.unbatch()
    elif spec[0].shape.rank not in (2, 3):
        raise ArgumentError("dataset", spec[0].shape, "images must have rank 2, 3 or 4 (batched)")

    def resize(image, label):
        if image.shape.rank == 2:
            image = image[..., None]
        image = tf.image.resize(tf.cast(image, tf.float32), image_size)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8), label

    images, labels = [], []
    for image, label in dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE).as_numpy_iterator():
        images.append(image)
        labels.append(label.decode() if isinstance(label, bytes) else label)
    if not images:
        raise DataError("The dataset is empty")
    return image_dataset_from_arrays(np.stack(images), np.array(labels), image_size=image_size,
                                     class_names=class_names, multi_label=multi_label,
                                     source="tf.data.Dataset", **kwargs)
