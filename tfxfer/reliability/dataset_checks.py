"""Checks of a ``tf.data.Dataset`` given as training, validation or test data, from its element spec.

`check_dataset` reads ``dataset.element_spec`` only (no batch is pulled, nothing is iterated), so it
costs nothing on a large pipeline, and turns the forms Keras fails on deep inside ``fit`` (a raw
``ValueError in user code``, ``len() of unsized object``, a graph-execution error) into a `DataError`
naming the argument, what it yields and what to do:

* an infinite pipeline (``.repeat()``: one pass is one epoch);
* elements that are not ``(x, y)`` or ``(x, y, sample_weight)`` tuples (a dict, ``x`` alone);
* an unbatched pipeline (images of rank 3, texts of rank 0);
* images whose size or channels are not the model's input;
* string labels, or one-hot rows whose width is not the head's;
* (`check_same_labels`) validation labels in another format than the training labels.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfxfer.models import build_model
    >>> from tfxfer.reliability.dataset_checks import check_dataset
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> x = np.zeros((4, 32, 32, 3), "float32"); y = np.array([0, 1, 0, 1])
    >>> check_dataset(model, tf.data.Dataset.from_tensor_slices((x, y)), name="train")
    Traceback (most recent call last):
    ...
    tfxfer.errors.DataError: `train` is an unbatched tf.data.Dataset (its images have shape (32, 32, 3)): call .batch(batch_size) on it
"""

from __future__ import annotations

import tensorflow as tf

from tfxfer.errors import DataError


def check_dataset(model, dataset, *, name: str = "train") -> None:
    """Raise `DataError` when ``dataset``'s element spec cannot train or evaluate ``model``."""
    spec = dataset.element_spec
    if isinstance(spec, dict):
        raise DataError(f"`{name}` yields dicts with keys {sorted(spec)}; tfxfer takes (x, y) or "
                        f"(x, y, sample_weight) tuples: map it, e.g. ds.map(lambda d: (d['image'], d['label']))")
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        what = f"tuples of {len(spec)}" if isinstance(spec, tuple) else "single tensors (inputs without labels)"
        raise DataError(f"`{name}` yields {what}; tfxfer takes (x, y) or (x, y, sample_weight) tuples")
    if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
        raise DataError(f"`{name}` is an infinite tf.data.Dataset (it repeats); tfxfer reads one pass of it per "
                        "epoch: drop the .repeat()")
    x, y = spec[0], spec[1]
    from tfxfer.reliability.inputs import takes_strings

    if takes_strings(model):
        _check_texts(x, name)
    elif not isinstance(x, dict):
        _check_images(model, x, name)
    _check_labels(model, y, name)


def _shape(spec) -> tuple | None:
    shape = getattr(spec, "shape", None)
    return None if shape is None or shape.rank is None else tuple(shape)


def _check_texts(x, name: str) -> None:
    shape = _shape(x)
    if shape is not None and len(shape) == 0:
        raise DataError(f"`{name}` is an unbatched tf.data.Dataset (one text per element): call "
                        ".batch(batch_size) on it")


def _check_images(model, x, name: str) -> None:
    shape, expected = _shape(x), getattr(model, "input_shape", None)
    if shape is None or not isinstance(expected, tuple) or len(expected) != 4:
        return
    if len(shape) == 3:
        raise DataError(f"`{name}` is an unbatched tf.data.Dataset (its images have shape {shape}): call "
                        ".batch(batch_size) on it")
    if len(shape) != 4 or any(e is not None and a is not None and e != a for e, a in zip(expected[1:], shape[1:])):
        raise DataError(f"`{name}` yields images of shape {shape[1:]} but the model takes {tuple(expected[1:])}; "
                        "resize them in the pipeline (tf.image.resize) or build the model with that input_size")
    dtype = getattr(x, "dtype", None)
    if dtype is not None and not (dtype.is_floating or dtype.is_integer):
        raise DataError(f"`{name}` yields images of dtype {dtype.name}; tfxfer takes raw 0-255 pixel numbers")


def _check_labels(model, y, name: str) -> None:
    if isinstance(y, dict) or len(getattr(model, "outputs", []) or []) != 1:
        return
    dtype = getattr(y, "dtype", None)
    if dtype is not None and dtype.name == "string":
        raise DataError(f"`{name}` yields string labels; tfxfer takes integer class ids (or one-hot rows): map "
                        "the names to ids first, e.g. with a tf.lookup.StaticHashTable")
    shape, width = _shape(y), model.output_shape[-1]
    if (shape is not None and len(shape) == 2 and shape[-1] not in (None, 1) and isinstance(width, int)
            and len(model.output_shape) == 2 and shape[-1] != width):
        raise DataError(f"`{name}` yields label rows of width {shape[-1]} but the model's head has {width} outputs")


def check_same_labels(train_ds, other_ds, *, name: str = "val") -> None:
    """Raise `DataError` when ``other_ds`` (batched) has labels of another rank than ``train_ds``'s: class
    ids in one and one-hot rows in the other pick a loss that fails on the second deep inside ``fit``."""
    a, b = train_ds.element_spec, other_ds.element_spec
    if not (isinstance(a, tuple) and isinstance(b, tuple) and len(a) >= 2 and len(b) >= 2):
        return
    ya, yb = _shape(a[1]), _shape(b[1])
    rows = [s for s in (ya, yb) if s is not None and len(s) == 2 and s[-1] not in (None, 1)]  # one-hot rows
    if ya is not None and yb is not None and len(ya) != len(yb) and rows and not isinstance(a[1], dict):
        raise DataError(f"`{name}` labels have shape {yb} per batch but `train`'s have {ya}: give both as class ids "
                        "or both as one-hot rows")


def with_known_size(dataset):
    """``dataset`` with its number of batches stated (`tf.data.experimental.assert_cardinality`) when
    tf.data cannot tell it (after ``.filter``, from a generator): counted in one pass over the input.
    Keras then knows the steps per epoch, so a stage's warmup and decay span the stage (planned over
    a guessed length they ended after a few batches and left the rate at 0)."""
    if int(dataset.cardinality()) != int(tf.data.UNKNOWN_CARDINALITY):
        return dataset
    batches = int(dataset.map(lambda *parts: 0).reduce(0, lambda count, _: count + 1))
    if batches == 0:
        raise DataError("the training dataset yielded no batches")
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))
