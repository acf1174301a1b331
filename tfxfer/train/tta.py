"""Test-time augmentation (TTA): average an image model's outputs over flipped views of each image.

`predict_tta` returns the mean of the model's outputs over ``views`` ("identity", "hflip", "vflip");
`evaluate_tta` scores it against labels next to the plain prediction and reports what it costs (wall
time of both: TTA runs the model once per view). ``fine_tune(test=..., tta=True)`` puts that report in
``result.test["tta"]``. Use flips only where the label survives them (cells, documents, most photos:
"hflip"; digits and text: none).

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.train.tta import evaluate_tta, predict_tta
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> x = np.random.rand(4, 32, 32, 3).astype("float32") * 255
    >>> predict_tta(model, x).shape
    (4, 2)
    >>> sorted(evaluate_tta(model, (x, np.array([0, 1, 0, 1]))))
    ['accuracy', 'cost', 'plain_accuracy', 'plain_seconds', 'seconds', 'views']
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from tfxfer.errors import ArgumentError, ModelError
from tfxfer.train.data import as_dataset
from tfxfer.utils.validate import check_int

VIEWS = ("identity", "hflip", "vflip")
DEFAULT_VIEWS = ("identity", "hflip")

_FLIPS = {"identity": lambda x: x, "hflip": lambda x: tf.reverse(x, axis=[2]), "vflip": lambda x: tf.reverse(x, axis=[1])}


def check_views(views, *, name: str = "views") -> tuple:
    """``views`` as a tuple (None: ("identity", "hflip")); an `ArgumentError` naming ``name`` unless
    it is a non-empty list of "identity", "hflip", "vflip"."""
    views = DEFAULT_VIEWS if views is None else (views,) if isinstance(views, str) else tuple(views)  # one name
    if not views or any(v not in VIEWS for v in views):
        raise ArgumentError(name, views, "must be a non-empty list of " + ", ".join(VIEWS))
    return views


def flip_images(images: np.ndarray, view: str) -> np.ndarray:
    """One view of a ``[n, h, w, c]`` (or gray ``[n, h, w]``) pixel array, in NumPy: for models that
    are not Keras models (a .tflite file), whose outputs the caller averages itself.

    Example:
        >>> flip_images(np.arange(4.0).reshape(1, 2, 2), "hflip")[0].tolist()
        [[1.0, 0.0], [3.0, 2.0]]
    """
    check_views([view], name="view")
    images = np.asarray(images)
    return images if view == "identity" else np.flip(images, axis=2 if view == "hflip" else 1)


def _check(model, views) -> tuple:
    views = check_views(views)
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise ModelError(f"Test-time flips need an image model ([n, h, w, c] input); {model.name!r} takes "
                         f"{[tuple(i.shape) for i in model.inputs]}")
    return views


def _batches(data, batch_size):
    check_int("batch_size", batch_size, low=1)
    if isinstance(data, list):
        data = tuple(data)
    return as_dataset(data, batch_size=batch_size, name="data")


def _forward(model):
    from tfxfer.train.forward import Forward

    return Forward(model)  # every view and batch size on one trace


def _predict(model, data, views, batch_size, forward=None):
    forward = forward or _forward(model)
    outputs, labels = [], []
    for batch in _batches(data, batch_size):
        x = batch[0] if isinstance(batch, tuple) else batch
        if isinstance(batch, tuple) and len(batch) > 1:
            labels.append(np.asarray(batch[1]))
        x = tf.convert_to_tensor(x)
        x = x[..., None] if x.shape.rank == 3 else x
        outputs.append(np.mean([forward(_FLIPS[v](x)).numpy() for v in views], axis=0))
    return np.concatenate(outputs), (np.concatenate(labels) if labels else None)


def predict_tta(model: keras.Model, x, *, views=None, batch_size: int = 32) -> np.ndarray:
    """The mean of ``model``'s outputs over ``views`` of every image of ``x`` (raw-pixel arrays, gray
    ``[n, h, w]`` too, or a batched dataset); ``views`` default to ("identity", "hflip")."""
    views = _check(model, views)
    return _predict(model, x, views, batch_size)[0]


def _threshold(model) -> float:
    """Where a one-score-per-label output splits yes from no: 0.5 for probabilities (a sigmoid), 0 for
    logits (a linear output layer: a model compiled ``from_logits=True``)."""
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    name = getattr(getattr(layer, "activation", None), "__name__", None)
    return 0.0 if name == "linear" else 0.5


def _accuracy(outputs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    labels = np.asarray(labels)
    if outputs.shape[-1] > 1 and labels.ndim == outputs.ndim and labels.shape[-1] == 1:  # (N, 1) class ids
        labels = labels[..., 0]
    if outputs.shape[-1] > 1 and labels.ndim < outputs.ndim:  # softmax, class ids
        return float(np.mean(outputs.argmax(-1) == labels.reshape(outputs.shape[:-1])))
    if outputs.shape[-1] > 1 and labels.shape == outputs.shape and np.allclose(labels.sum(-1), 1):  # one-hot
        return float(np.mean(outputs.argmax(-1) == labels.argmax(-1)))
    return float(np.mean((outputs > threshold) == (labels.reshape(outputs.shape) > 0.5)))  # one score per label


def evaluate_tta(model: keras.Model, data, *, views=None, batch_size: int = 32) -> dict:
    """Accuracy with and without TTA on labelled ``data`` (``(x, y)`` or a dataset of such batches).

    Returns ``{"views", "accuracy", "plain_accuracy", "seconds", "plain_seconds", "cost"}``: ``cost`` is
    the TTA wall time over the plain one (about the number of views), both timed after one untimed
    warm-up pass.
    """
    views = _check(model, views)
    forward = _forward(model)
    _predict(model, data, ("identity",), batch_size, forward)  # trace and warm the pipeline, untimed
    t0 = time.perf_counter()
    plain, labels = _predict(model, data, ("identity",), batch_size, forward)
    plain_s = time.perf_counter() - t0
    if labels is None:
        raise ArgumentError("data", type(data).__name__, "must hold labels to evaluate (x, y)")
    t0 = time.perf_counter()
    tta, tta_labels = _predict(model, data, views, batch_size, forward)  # each pass with its own labels: a
    seconds = time.perf_counter() - t0                                    # pipeline may reshuffle between them
    cut = _threshold(model)
    return {"views": list(views), "accuracy": _accuracy(tta, tta_labels, cut), "plain_accuracy": _accuracy(plain, labels, cut),
            "seconds": seconds, "plain_seconds": plain_s, "cost": seconds / max(plain_s, 1e-9)}
