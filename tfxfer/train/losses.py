"""THE one place that picks the default loss and metrics for a task, from the head and the labels.

=========================================  =====================================  ==================
head / labels                               loss                                   metrics
=========================================  =====================================  ==================
softmax, class ids (images, texts)         sparse_categorical_crossentropy        accuracy
softmax, one-hot / soft rows               categorical_crossentropy               accuracy
softmax per token, tag ids (NER)            sparse_categorical_crossentropy        accuracy (weighted)
sigmoid, multi-hot rows (multi-label)       binary_crossentropy                    binary_accuracy
anything else (regression)                  mse                                    none
=========================================  =====================================  ==================

``label_smoothing`` (0 = off, the default) replaces each one-hot target by ``(1 - s) * one_hot + s / K``
for the classification losses (`SparseCrossentropy` carries it for class ids, which Keras's sparse loss
cannot); it is an error for regression or a loss you pass yourself.

Used by `fine_tune` (images and text), the head step, `tfxfer.train.ner.fit_token_classifier` and the
tf_keras QAT / pruning runs (`tfxfer.quantize`). With sample weights (NER masks) the metrics are
weighted, so padding never counts.

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.train.losses import compile_args, default_loss
    >>> model = build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    >>> default_loss(model, np.array([0, 2, 1]))
    'sparse_categorical_crossentropy'
    >>> compile_args(model, np.array([0, 2, 1]), label_smoothing=0.1)["loss"].label_smoothing
    0.1
"""

from __future__ import annotations

import keras
import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.utils.validate import check_float


@keras.saving.register_keras_serializable(package="tfxfer")
class SparseCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy from class ids (``[..., ]`` or ``[..., 1]``) with label smoothing.

    Equal to ``sparse_categorical_crossentropy`` at ``label_smoothing=0``; works per example and per
    token (``y_pred`` of shape ``[..., K]``).

    Example:
        >>> import numpy as np
        >>> loss = SparseCrossentropy(label_smoothing=0.2)
        >>> p = np.array([[0.9, 0.1]], "float32")
        >>> round(float(loss(np.array([0]), p)), 4)  # targets (0.9, 0.1): -(0.9 ln 0.9 + 0.1 ln 0.1)
        0.3251
    """

    def __init__(self, label_smoothing: float = 0.0, *, from_logits: bool = False,
                 name: str = "sparse_categorical_crossentropy", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = check_float("label_smoothing", label_smoothing, low=0, high=1, high_open=True)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        ops = keras.ops
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        one_hot = ops.one_hot(ops.cast(y_true, "int32"), ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(one_hot, y_pred, from_logits=self.from_logits,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "from_logits": self.from_logits}


def _activation(model) -> str:
    activation = getattr(model.layers[-1], "activation", None)
    return getattr(activation, "__name__", str(activation))


def default_loss(model, labels) -> str:
    """The loss that fits ``model``'s output activation and the label format (see the table above)."""
    name = _activation(model)
    labels = np.asarray(labels)
    if name == "softmax":
        output_rank = len(model.outputs[0].shape)
        one_hot = labels.ndim == output_rank and labels.ndim >= 2 and labels.shape[-1] > 1
        return "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
    if name == "sigmoid":
        return "binary_crossentropy"
    return "mse"


def default_metrics(model, loss) -> list:
    """``["accuracy"]`` for softmax classifiers, ``["binary_accuracy"]`` under a sigmoid head, ``[]``
    for regression (names, so they work in Keras 3 and in tf_keras alike)."""
    if _activation(model) == "sigmoid":
        return ["binary_accuracy"]
    return [] if loss == "mse" else ["accuracy"]


def smoothed_loss(name: str, label_smoothing: float):
    """The Keras loss object for a default loss ``name`` with ``label_smoothing`` (> 0)."""
    if name == "sparse_categorical_crossentropy":
        return SparseCrossentropy(label_smoothing)
    if name == "categorical_crossentropy":
        return keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)
    if name == "binary_crossentropy":
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    raise ArgumentError("label_smoothing", label_smoothing, f"applies to classification losses only, not {name!r}",
                        hint="Pass label_smoothing=0 for regression")


def compile_args(model, labels, *, loss=None, metrics=None, weighted: bool = False,
                 label_smoothing: float = 0.0) -> dict:
    """``{"loss": ..., "metrics" or "weighted_metrics": ...}`` for ``model.compile``: ``loss`` and
    ``metrics`` as given, else the defaults for ``labels``; ``weighted`` (sample weights present)
    puts the metrics under ``weighted_metrics``. ``label_smoothing`` > 0 smooths the default loss
    (an error with an explicit ``loss``: smooth that one yourself)."""
    label_smoothing = check_float("label_smoothing", label_smoothing, low=0, high=1, high_open=True)
    if label_smoothing and loss is not None:
        raise ArgumentError("label_smoothing", label_smoothing, "cannot be combined with an explicit `loss`",
                            hint="Give the loss its own label_smoothing, or leave loss=None")
    name = loss or default_loss(model, labels)
    metrics = default_metrics(model, name) if metrics is None else list(metrics)
    loss = smoothed_loss(name, label_smoothing) if label_smoothing else name
    return {"loss": loss, ("weighted_metrics" if weighted else "metrics"): metrics}
