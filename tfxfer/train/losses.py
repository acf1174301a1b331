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

Used by `fine_tune` (images and text), the head step, `tfxfer.train.ner.fit_token_classifier` and the
tf_keras QAT / pruning runs (`tfxfer.quantize`). With sample weights (NER masks) the metrics are
weighted, so padding never counts.

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.train.losses import default_loss
    >>> model = build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    >>> default_loss(model, np.array([0, 2, 1]))
    'sparse_categorical_crossentropy'
"""

from __future__ import annotations

import numpy as np


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


def compile_args(model, labels, *, loss=None, metrics=None, weighted: bool = False) -> dict:
    """``{"loss": ..., "metrics" or "weighted_metrics": ...}`` for ``model.compile``: ``loss`` and
    ``metrics`` as given, else the defaults for ``labels``; ``weighted`` (sample weights present)
    puts the metrics under ``weighted_metrics``."""
    loss = loss or default_loss(model, labels)
    metrics = default_metrics(model, loss) if metrics is None else list(metrics)
    return {"loss": loss, ("weighted_metrics" if weighted else "metrics"): metrics}
