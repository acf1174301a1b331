"""Training-input checks that turn bad data into a `DataError` before (or while) training runs.

* `check_training_arrays`: ``(x, y)`` arrays against the model — non-numeric or non-finite images,
  an image shape the model does not take; for image and text models alike (`check_class_labels`),
  labels that are not finite integer class ids, class ids outside the head, a single class.
* `finite_guard` / `data_errors`: a ``tf.data`` pipeline that yields NaN/Inf images fails with a
  `DataError` instead of training on them (on some CPUs a ReLU6 backbone silently maps NaN pixels
  to 0, so the loss alone does not reveal them; other CPUs' kernels keep the NaN).

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.reliability.inputs import check_training_arrays
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> x = np.zeros((4, 32, 32, 3), "float32"); x[0, 0, 0, 0] = np.nan
    >>> check_training_arrays(model, (x, np.array([0, 1, 0, 1])))
    Traceback (most recent call last):
    ...
    tfxfer.errors.DataError: `train` images contain NaN or Inf values (first in image 0); drop or repair them
"""

from __future__ import annotations

import contextlib

import numpy as np

from tfxfer.errors import DataError, bounded_repr

NON_FINITE = "tfxfer: non-finite image values"
LABEL_OUT_OF_RANGE = "tfxfer: a class id is outside [0, num_classes) in a label-mixing augmentation"


def check_training_arrays(model, data, *, name: str = "train", require_classes: bool = True) -> None:
    """Validate ``(x, y)`` arrays against ``model`` (no-op for other inputs).

    Images are checked here; the raw texts of a text model (string input) are checked by
    `tfxfer.text.encoders.as_texts` (`tfxfer.train.data.training_datasets` runs it). Labels are
    checked for both: for a softmax head they must be finite integer class ids within the head.

    Raises:
        DataError: non-numeric or non-finite images, images whose shape is not the model's input
            shape; labels that are not numbers (class names), NaN / Inf or fractional labels, class
            ids outside the softmax head's range, or (``require_classes``) one class.
    """
    if not (isinstance(data, tuple) and len(data) == 2):
        return
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if not takes_strings(model):
        _check_images(x, model, name)
    check_class_labels(model, y, name=name, require_classes=require_classes)


def _check_images(x, model, name: str) -> None:
    if x.dtype.kind not in "fiub":
        raise DataError(f"`{name}` images must be a real numeric array (raw 0-255 pixels); got dtype {x.dtype}")
    expected = tuple(model.input_shape[1:]) if isinstance(model.input_shape, tuple) else None
    if expected and x.ndim >= 1 and (len(x.shape[1:]) != len(expected) or any(
            e is not None and e != a for e, a in zip(expected, x.shape[1:]))):
        raise DataError(f"`{name}` images have shape {tuple(x.shape[1:])} but the model takes {expected}; "
                        "resize them (tfxfer.data loaders do) or build the model with that input_size")
    if x.dtype.kind == "f" and x.size and not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise DataError(f"`{name}` images contain NaN or Inf values (first in image {bad}); drop or repair them")


def check_class_labels(model, y, *, name: str = "train", require_classes: bool = True) -> None:
    """Class-id labels ``y`` (1-D) against ``model``'s softmax "head" layer (no-op without one).

    Example:
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax", name="head")])
        >>> check_class_labels(model, np.array(["cat", "dog"]))
        Traceback (most recent call last):
        ...
        tfxfer.errors.DataError: `train` labels must be integer class ids in [0, 1] for this 2-class head; got ...
    """
    y = np.asarray(y)
    try:
        head = model.get_layer("head")
    except ValueError:
        return
    activation = getattr(getattr(head, "activation", None), "__name__", "")
    if activation == "sigmoid":
        _check_sigmoid_labels(model, y, name)
        return
    if y.ndim == 2 and y.shape[1] == 1:  # (N, 1) class ids train as (N,): checked as such
        y = y[:, 0]
    if y.ndim != 1 or not y.size or activation != "softmax":
        return
    outputs = int(model.output_shape[-1])
    ids = f"integer class ids in [0, {outputs - 1}] for this {outputs}-class head"
    if y.dtype.kind not in "iufb":
        raise DataError(f"`{name}` labels must be {ids}; got dtype {y.dtype} (such as {bounded_repr(y[:3].tolist())}). "
                        "Map class names to ids first, e.g. names, ids = np.unique(labels, return_inverse=True)")
    if y.dtype.kind == "f":
        finite = np.isfinite(y)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise DataError(f"`{name}` labels contain NaN or Inf (first at example {bad}: {y[bad]}); they must be "
                            f"{ids}")
        fractional = np.mod(y, 1) != 0
        if fractional.any():
            bad = int(np.flatnonzero(fractional)[0])
            raise DataError(f"`{name}` labels must be {ids}; found {y[bad]} at example {bad}")
    if y.min() < 0 or y.max() >= outputs:
        raise DataError(f"`{name}` labels must be class ids in [0, {outputs - 1}] for this {outputs}-class head; "
                        f"found {int(y.min())}..{int(y.max())}")
    if require_classes and len(np.unique(y)) < 2:
        raise DataError(f"`{name}` holds a single class ({int(y[0])}): a classifier needs examples of at least "
                        "2 classes")


def _check_sigmoid_labels(model, y, name: str) -> None:
    """Targets of a sigmoid head: multi-hot rows of its width (one 0/1 column for a binary head), in [0, 1]."""
    outputs = model.output_shape[-1] if len(getattr(model, "outputs", []) or []) == 1 else None
    if not isinstance(outputs, int) or not y.size or y.dtype.kind not in "iufb":
        return
    if outputs > 1 and (y.ndim != 2 or y.shape[1] != outputs):
        raise DataError(f"`{name}` labels of this {outputs}-label (sigmoid) head must be multi-hot rows of width "
                        f"{outputs}; got shape {tuple(y.shape)}. For one class id per example use np.eye({outputs})[ids], "
                        "or build a softmax head (task='multiclass')")
    values = y.astype("float64")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise DataError(f"`{name}` labels of a sigmoid head must be targets in [0, 1] (0/1 per label); found values "
                        f"in {np.nanmin(values):g}..{np.nanmax(values):g}" + ("" if np.isfinite(values).all() else
                                                                              " and NaN/Inf"))


def takes_strings(model) -> bool:
    """Does ``model`` take raw strings (one string input: a text model)?"""
    inputs = getattr(model, "inputs", None) or []
    return len(inputs) == 1 and "string" in str(getattr(inputs[0], "dtype", ""))


def finite_guard(dataset):
    """``dataset`` whose float images are checked for NaN/Inf as they stream (use `data_errors`)."""
    import tensorflow as tf

    spec = dataset.element_spec
    if not isinstance(spec, tuple) or not getattr(getattr(spec[0], "dtype", None), "is_floating", False):
        return dataset

    def check(x, *rest):
        return (tf.debugging.assert_all_finite(x, NON_FINITE), *rest)

    return dataset.map(check)


@contextlib.contextmanager
def data_errors():
    """Re-raise the failure of a `finite_guard` as a `DataError`."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.InvalidArgumentError as exc:
        if NON_FINITE in str(exc):
            raise DataError("The training or validation dataset yielded NaN or Inf image values; repair or drop "
                            "those images (tfxfer.data loaders check arrays before training)") from None
        if LABEL_OUT_OF_RANGE in str(exc):
            raise DataError("The training data holds a class id outside the head's classes (met by a label-mixing "
                            "augmentation, MixUp / CutMix): fix the labels or num_classes") from None
        raise
