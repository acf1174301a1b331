"""Source and target data in, checked against the model; features (and predictions) out.

Every adaptation entry point takes data the way Keras does (an ``(x, y)`` tuple, ``x`` alone, or a
batched ``tf.data.Dataset``); target labels are optional and only ever used for scoring. A target
whose inputs have a different shape or channel count than the model, or whose labels fall
outside the model's classes, is refused with a typed error naming the argument; so are NaN or
infinite input values (`split_data` refuses them, naming the first bad position, before any work)
and labels that are not class ids (strings, NaN, fractions).

`domain_features` is the one place that turns a model and data into feature vectors:

* a tfxfer image or text classifier (it has a ``pool`` layer): pooled features from
  `tfxfer.train.head.extract_features`, plus class probabilities from the model's own head;
* a `tfxfer.text.TextEncoder`: its mean-pooled sentence embeddings (`TextEncoder.embed`);
* any other ``keras.Model`` (a bare backbone): its output, globally average-pooled when spatial;
* ``None``: the data already are feature matrices.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt.domain_data import domain_features
    >>> from tfxfer.models import build_model
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    >>> out = domain_features(model, (x, np.arange(8) % 2), name="source")
    >>> out.features.shape, out.probabilities.shape
    ((8, 1280), (8, 2))
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError, bounded_repr
from tfxfer.models import head_model
from tfxfer.text.encoders import TextEncoder
from tfxfer.train.head import extract_features


@dataclasses.dataclass
class DomainFeatures:
    """Features ``(n, d)``; class ``probabilities`` ``(n, k)`` or None; ``labels`` or None."""

    features: np.ndarray
    probabilities: np.ndarray | None
    labels: np.ndarray | None


def check_finite(x: np.ndarray, *, name: str) -> None:
    """Refuse NaN or infinite values in numeric inputs, naming the first bad position.

    A NaN input turns every statistic it enters into NaN (BatchNorm moving statistics, a batch
    covariance, the weights after one gradient step), often without making a loss non-finite.
    Text (object arrays) and integer inputs have nothing to check.
    """
    if x.dtype.kind not in "fc":
        return
    finite = np.isfinite(x)
    if finite.all():
        return
    position = tuple(int(i) for i in np.unravel_index(int(np.argmin(finite.reshape(-1))), x.shape))
    bad = int(finite.size - np.count_nonzero(finite))
    raise DataError(f"`{name}` holds {bad} NaN or infinite input value(s); the first is {x[position]} at index "
                    f"{position} (example {position[0]}). Drop or repair those examples before adapting")


def split_data(data, *, name: str):
    """``(x, labels or None)`` as numpy arrays from a tuple, an array or a batched dataset.

    Raises:
        DataError: no examples, or NaN / infinite input values (`check_finite`).
    """
    if isinstance(data, tf.data.Dataset):
        xs, ys = [], []
        for batch in data:
            if isinstance(batch, (tuple, list)):
                xs.append(np.asarray(batch[0]))
                ys.append(np.asarray(batch[1]))
            else:
                xs.append(np.asarray(batch))
        if not xs:
            raise DataError(f"`{name}` yielded no batches")
        x = np.concatenate(xs)
        check_finite(x, name=name)
        return x, (np.concatenate(ys) if ys else None)
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ArgumentTypeError(name, data, "an (x, y) tuple, an array of inputs, or a tf.data.Dataset")
        x, y = np.asarray(data[0]), data[1]
        y = None if y is None else np.asarray(y)
        if y is not None and len(y) != len(x):
            raise DataError(f"`{name}` has {len(x)} inputs but {len(y)} labels")
    elif isinstance(data, (np.ndarray, list)):
        x, y = np.asarray(data), None
    else:
        raise ArgumentTypeError(name, data, "an (x, y) tuple, an array of inputs, or a tf.data.Dataset")
    if len(x) == 0:
        raise DataError(f"`{name}` is empty")
    if x.dtype.kind in "US":  # text as a plain str array: Keras string inputs want objects
        x = x.astype(object)
    check_finite(x, name=name)
    return x, y


def check_inputs(model, x: np.ndarray, *, name: str) -> None:
    """Refuse inputs whose per-example shape (or channel count) differs from ``model``'s input."""
    if not isinstance(model, keras.Model):
        return
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # a subclassed model that was never called: nothing to check
        return
    if not inputs or len(inputs) != 1:
        return
    expected = tuple(inputs[0].shape[1:])
    got = tuple(x.shape[1:])
    is_text = inputs[0].dtype == "string"
    if is_text:
        if x.dtype != object or x.ndim != 1:
            raise ArgumentError(name, f"inputs of dtype {x.dtype} and shape {x.shape}",
                                "must be a 1-D array of strings for this text model")
        return
    if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
        detail, hint = "", "Resize / convert the target data like the source data"
        if len(got) == len(expected) and got[-1] != expected[-1]:
            detail = f" ({got[-1]} channels where the model takes {expected[-1]})"
        if len(got) == len(expected) - 1:  # one axis short: single examples, not batches
            hint = ("Each example has one axis less than the model takes: batch a tf.data.Dataset first "
                    "(dataset.batch(32)), or give one example as x[None]")
        raise ArgumentError(name, f"inputs of shape {got}{detail}",
                            f"must have the model's input shape {expected}", hint=hint)


def class_count(model) -> int | None:
    """Number of output classes of a single-output classifier, else None."""
    if not isinstance(model, keras.Model) or len(model.outputs) != 1:
        return None
    width = model.output_shape[-1]
    return int(width) if isinstance(width, int) and width >= 2 else None


def sparse_labels(labels: np.ndarray, *, name: str = "labels") -> np.ndarray:
    """Class ids from sparse or one-hot labels.

    Raises:
        ArgumentError: labels that are not class ids (strings, NaN or infinite values, fractions,
            more than two dimensions); the message names ``name``.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biuf":
        shown = labels.reshape(-1)[:4].tolist() if labels.size else []
        raise ArgumentError(name, f"labels of dtype {labels.dtype}, e.g. {bounded_repr(shown)}",
                            "must be integer class ids (or one-hot rows)",
                            hint="Map class names to ids first, e.g. np.unique(labels, return_inverse=True)[1]")
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        flat = labels.reshape(-1)
        index = int(np.argmin(np.isfinite(flat)))
        raise ArgumentError(name, f"labels including {flat[index]} (at flat index {index})",
                            "must be finite class ids")
    if labels.ndim == 2 and labels.shape[1] > 1:
        return labels.argmax(axis=1)
    if labels.ndim == 0 or labels.size != len(labels):
        raise ArgumentError(name, f"labels of shape {labels.shape}",
                            "must be a 1-D array of class ids or (n, classes) one-hot rows")
    flat = labels.reshape(len(labels))
    if labels.dtype.kind == "f" and (flat != np.round(flat)).any():
        raise ArgumentError(name, f"labels including {flat[np.argmax(flat != np.round(flat))]}",
                            "must be whole-number class ids")
    return flat.astype(np.int64)


def check_labels(model, labels: np.ndarray | None, *, name: str, source_labels: np.ndarray | None = None,
                 classes: int | None = None) -> None:
    """Refuse labels that are not class ids, fall outside the model's classes (or ``classes``, when
    given), or (given ``source_labels``) outside the source's label set."""
    if labels is None:
        return
    ids = sparse_labels(labels, name=name)
    if ids.size and ids.min() < 0:
        raise ArgumentError(name, f"labels including {int(ids.min())}", "must be class ids >= 0")
    classes = class_count(model) if classes is None else classes
    if classes is not None and ids.size and ids.max() >= classes:
        raise ArgumentError(name, f"labels {sorted(set(ids.tolist()))[:8]}",
                            f"must be class ids in [0, {classes - 1}] (the model has {classes} classes)")
    if source_labels is not None:
        extra = sorted(set(ids.tolist()) - set(sparse_labels(source_labels, name="source").tolist()))
        if extra:
            raise ArgumentError(name, f"labels {extra[:8]} that the source data does not have",
                                "must use the source's label set")


def _is_text_encoder(obj) -> bool:
    return isinstance(obj, TextEncoder)


def _has_pool(model: keras.Model) -> bool:
    return any(layer.name == "pool" for layer in model.layers)


def _head_probabilities(model: keras.Model, features: np.ndarray, batch_size: int) -> np.ndarray | None:
    try:
        head = head_model(model)
    except ModelError:
        return None
    probs = head.predict(features, batch_size=batch_size, verbose=0)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 2:  # regression or a single sigmoid: no class confidences
        return None
    return probs


def domain_features(model_or_backbone, data, *, name: str, batch_size: int = 32) -> DomainFeatures:
    """Feature vectors (and, for classifiers, class probabilities) of ``data`` under ``model_or_backbone``."""
    if model_or_backbone is None:
        x, y = split_data(data, name=name)
        return DomainFeatures(np.asarray(x, dtype=np.float64).reshape(len(x), -1), None, y)
    if _is_text_encoder(model_or_backbone):
        x, y = split_data(data, name=name)
        return DomainFeatures(model_or_backbone.embed(x, batch_size=batch_size), None, y)
    if not isinstance(model_or_backbone, keras.Model):
        raise ArgumentTypeError("model_or_backbone", model_or_backbone,
                                "a keras.Model (tfxfer classifier or backbone), a tfxfer.text.TextEncoder, or None")
    model = model_or_backbone
    x, y = split_data(data, name=name)
    check_inputs(model, x, name=name)
    if _has_pool(model):
        features, _ = extract_features(model, x, batch_size=batch_size)
        return DomainFeatures(features, _head_probabilities(model, features, batch_size), y)
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if out.ndim > 2:  # spatial or sequence output of a bare backbone: average over positions
        out = out.reshape(len(out), -1, out.shape[-1]).mean(axis=1)
    return DomainFeatures(out, None, y)
