"""The train data adaptor: what `fine_tune`, the head step and the unfreezing step accept, as batches.

Training data comes in one of these forms, for images and text alike:

* ``(x, y)`` arrays: images (``[n, h, w, c]`` raw pixels), raw texts (``n`` strings) or token
  tensors (``{"token_ids": [n, length], ...}``), with class ids, one-hot / multi-hot rows, targets
  or per-token tag ids;
* ``(x, y, sample_weight)``: the same with one weight per example (or per token: NER masks);
* a batched ``tf.data.Dataset`` of such tuples (used as it is).

`as_dataset` turns any of them into a batched dataset; `training_datasets` also checks arrays
against the model, guards streamed images against NaN/Inf, and shards for ``tf.distribute``.

Example:
    >>> import numpy as np
    >>> from tfxfer.train.data import as_dataset
    >>> texts = np.array(["good film", "bad film", "great plot"], dtype=object)
    >>> [tuple(t.shape) for t in next(iter(as_dataset((texts, np.array([1, 0, 1])), batch_size=2)))]
    [(2,), (2,)]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfxfer.errors import ArgumentTypeError, DataError


def _rows(x) -> int:
    if isinstance(x, dict):
        lengths = {len(v) for v in x.values()}
        if len(lengths) != 1:
            raise DataError(f"token tensors of different lengths: { {k: len(v) for k, v in x.items()} }")
        return lengths.pop()
    return len(x)


def _arrays(x, name: str = "x"):
    if isinstance(x, dict):
        return {k: np.asarray(v) for k, v in x.items()}
    x = np.asarray(x)
    if x.dtype.kind in "USO":  # texts: tf.data wants an object array of str
        from tfxfer.text.encoders import as_texts

        return as_texts(x, name=name)  # the check predict_texts makes: None, numbers, bad UTF-8 refused
    return x


def _label_arrays(y):
    """Labels or weights as arrays; class names stay strings (the model's checks name them)."""
    if isinstance(y, dict):
        return {k: np.asarray(v) for k, v in y.items()}
    y = np.asarray(y)
    if y.dtype.kind in "US":
        return y.astype(object)
    return y


def num_examples(data) -> int | None:
    """Examples in ``(x, y[, w])`` arrays; None for a dataset."""
    if isinstance(data, tuple) and len(data) in (2, 3) and not isinstance(data[0], tf.data.Dataset):
        return _rows(data[0])
    return None


def as_dataset(data, *, batch_size: int = 32, shuffle: bool = False, seed: int = 0, name: str = "data",
               epoch_shuffle=None):
    """``(x, y)`` / ``(x, y, sample_weight)`` arrays, ``x`` alone, or a batched ``tf.data.Dataset``
    -> a batched dataset.

    With ``epoch_shuffle`` (a `tfxfer.reliability.EpochShuffle`), arrays are shuffled in an order
    that depends only on its seed and the epoch (resumable, identical on every worker).
    """
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, tuple) and len(data) in (2, 3):
        parts = (_arrays(data[0], f"{name}[0]"), *(_label_arrays(p) for p in data[1:]))
        n = _rows(parts[0])
        for part, what in zip(parts[1:], ("labels", "sample weights")):
            if len(part) != n:
                raise DataError(f"`{name}` has {n} inputs but {len(part)} {what}")
        if n == 0:
            raise DataError(f"`{name}` is empty")
        ds = tf.data.Dataset.from_tensor_slices(parts)
        if shuffle and epoch_shuffle is not None:
            ds = epoch_shuffle.apply(ds, buffer_size=n)
        elif shuffle:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if isinstance(data, (np.ndarray, dict)):
        x = _arrays(data, name)
        if _rows(x) == 0:
            raise DataError(f"`{name}` is empty")
        return tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    raise ArgumentTypeError(name, data, "a tf.data.Dataset of (x, y) batches or an (x, y) tuple of arrays")


def training_datasets(model, train, val=None, *, batch_size: int, epoch_shuffle):
    """Checked, batched, sharded ``(train_ds, val_ds)`` for ``model`` (``val_ds`` None without ``val``).

    Raises:
        DataError: arrays with NaN/Inf pixels, a wrong image shape, labels that are not integer class
            ids (names, NaN, fractions), class ids outside the head, a single class; empty or
            mismatched data.
        ArgumentTypeError / ArgumentError: a text model's texts holding an item that is not a str
            (None, a number; ``train[0][i]`` names it) or bytes that are not UTF-8.
    """
    from tfxfer.reliability.distribute import shard_dataset
    from tfxfer.reliability.inputs import check_training_arrays, finite_guard, takes_strings

    from tfxfer.reliability.dataset_checks import check_dataset, check_same_labels, with_known_size

    checked = []
    for data, name in ((train, "train"), (val, "val")):
        if isinstance(data, tf.data.Dataset):
            check_dataset(model, data, name=name)
        if isinstance(data, tuple) and len(data) in (2, 3) and not isinstance(data[0], (dict, tf.data.Dataset)):
            if takes_strings(model):  # raw texts: the check predict_texts makes (any dtype: ints are no texts)
                from tfxfer.text.encoders import as_texts

                data = (as_texts(data[0], name=f"{name}[0]"), *data[1:])
            check_training_arrays(model, data[:2], name=name, require_classes=name == "train")
        checked.append(data)
    train, val = checked
    train_ds = as_dataset(train, batch_size=batch_size, shuffle=True, name="train", epoch_shuffle=epoch_shuffle)
    val_ds = as_dataset(val, batch_size=batch_size, name="val") if val is not None else None
    if val_ds is not None:
        check_same_labels(train_ds, val_ds, name="val")
    if isinstance(train, tf.data.Dataset):
        train_ds = finite_guard(with_known_size(train_ds))
    if isinstance(val, tf.data.Dataset):
        val_ds = finite_guard(val_ds)
    return shard_dataset(train_ds), (shard_dataset(val_ds) if val_ds is not None else None)


def with_class_ids(model, data):
    """``(x, y[, w])`` arrays whose labels are ``(N, 1)`` class ids for a multi-output head, with ``y``
    as ``(N,)`` (what the loss, the checks and TTA read); anything else is returned as it is."""
    if not (isinstance(data, tuple) and len(data) in (2, 3)) or isinstance(data[0], tf.data.Dataset):
        return data
    y = data[1]
    width = getattr(model, "output_shape", (None,))[-1] if len(getattr(model, "outputs", [])) == 1 else None
    if isinstance(width, int) and width > 1 and getattr(y, "ndim", 0) == 2 and y.shape[1] == 1:
        return (data[0], np.asarray(y).reshape(-1), *data[2:])
    return data


def check_test_data(model, test) -> None:
    """``test`` arrays checked as ``val`` is (`training_datasets`), before any training: a wrong image
    shape, NaN pixels or labels outside the head failed only after every epoch had run."""
    from tfxfer.reliability.dataset_checks import check_dataset
    from tfxfer.reliability.inputs import check_training_arrays, takes_strings

    if isinstance(test, tf.data.Dataset):
        check_dataset(model, test, name="test")
    if isinstance(test, tuple) and len(test) in (2, 3) and not isinstance(test[0], (dict, tf.data.Dataset)):
        if takes_strings(model):
            from tfxfer.text.encoders import as_texts

            test = (as_texts(test[0], name="test[0]"), *test[1:])
        check_training_arrays(model, test[:2], name="test", require_classes=False)


def first_labels(dataset) -> np.ndarray:
    """The labels of the first batch of ``dataset`` (what the loss picker looks at)."""
    for batch in dataset.take(1):
        return np.asarray(batch[1])
    raise DataError("the training data yielded no batches")


def with_channels(model, data):
    """Gray image arrays ``[n, h, w]`` (or ``[n, h, w, 1]`` for a 3-channel model) shaped as the
    model takes them: the channel axis added, repeated to 3 channels where the model wants RGB.
    Anything else is returned as it is."""
    if not (isinstance(data, tuple) and len(data) in (2, 3)) or isinstance(data[0], (dict, tf.data.Dataset)):
        return data
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple) or len(shape) != 4:  # not an image model: texts stay as given (a
        return data                                        # list mixing str and bytes is no numpy array)
    x = np.asarray(data[0]) if not isinstance(data[0], np.ndarray) else data[0]
    if x.dtype.kind not in "iuf":
        return data
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim == 4 and x.shape[-1] == 1 and shape[-1] == 3:
        x = np.repeat(x, 3, axis=-1)
    return (x, *data[1:]) if x is not data[0] else data


def balanced_class_weight(train) -> dict:
    """``{class: n / (classes * count)}`` from the class ids of ``(x, y)`` array input."""
    from tfxfer.errors import ArgumentError
    from tfxfer.metrics import class_ids

    if not (isinstance(train, tuple) and len(train) >= 2):
        raise ArgumentError("class_weight", "balanced", "needs (x, y) array input to count the classes",
                            hint="Pass a {class index: weight} dict for a tf.data input")
    y = np.asarray(train[1])
    if y.ndim == 2 and y.shape[-1] > 1:
        y = y.argmax(-1)
    y = class_ids(y.reshape(-1), name="train[1]")  # class names, NaN, fractions: a typed error
    classes, counts = np.unique(y, return_counts=True)
    return {int(c): float(len(y) / (len(classes) * k)) for c, k in zip(classes, counts)}


def check_class_weight(model, class_weight: dict) -> dict:
    """A ``{class index: weight}`` dict checked against ``model``'s head: integer keys for every class of
    the head (2 for a one-output sigmoid head) and no other, finite weights >= 0, not all 0. Returns it
    with plain ``int`` keys and ``float`` values.

    Raises:
        ArgumentError: a key that is not a class id of the head, a class of the head without a weight
            (Keras fails deep in the graph on it), a negative, NaN or infinite weight, or all zeros.
    """
    from tfxfer.errors import ArgumentError

    width = model.output_shape[-1] if len(getattr(model, "outputs", []) or []) == 1 else None
    if not isinstance(width, int):
        return class_weight
    classes = 2 if width == 1 else width
    bad = [k for k in class_weight if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < classes]
    if bad:
        raise ArgumentError("class_weight", class_weight, f"must have class ids in [0, {classes - 1}] as keys for this "
                            f"{classes}-class head; found {bad[:5]}")
    missing = sorted(set(range(classes)) - {int(k) for k in class_weight})
    if missing:
        raise ArgumentError("class_weight", class_weight, f"must give a weight to every class of the {classes}-class "
                            f"head; missing {missing[:10]}", hint="Give them 1.0 to leave them as they are")
    weights = {int(k): v for k, v in class_weight.items()}
    for k, v in weights.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v < 0:
            raise ArgumentError("class_weight", class_weight, f"must map classes to finite weights >= 0; class {k} "
                                f"has {v!r}")
    if not any(v > 0 for v in weights.values()):
        raise ArgumentError("class_weight", class_weight, "must give at least one class a weight above 0")
    return {k: float(v) for k, v in sorted(weights.items())}
