"""Sequence classification on a pretrained text encoder: raw strings in, probabilities out.

`build_text_classifier` makes a functional model ``text -> tokenize -> encoder -> pool ->
head_dropout -> [head_hidden] -> head``: softmax over classes ("multiclass") or one sigmoid per
label ("multilabel"), on the pooler output, the [CLS] token or the masked mean of the tokens.
Train it with ``model.fit(texts, labels)`` or `tfxfer.train.fine_tune.fine_tune`; imbalance is handled by
`text_class_weights` (``class_weight=`` for single-label, `WeightedBinaryCrossentropy` for
multi-label).

Example:
    >>> import numpy as np
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> model = build_text_classifier(encoder, 2, pooling="mean")
    >>> model.predict(np.array(["good film", "bad film"], dtype=object), verbose=0).shape
    (2, 2)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.text.encoders import TextEncoder, as_texts, pool_outputs
from tfxfer.utils.validate import check_float, check_int

TASKS = ("multiclass", "multilabel")


def _check_encoder(encoder):
    if not isinstance(encoder, TextEncoder):
        raise ArgumentTypeError("encoder", encoder, "a tfxfer.text.TextEncoder (see load_encoder)")


def build_text_classifier(
    encoder: TextEncoder,
    num_classes: int,
    *,
    task: str = "multiclass",
    pooling: str = "mean",
    dropout: float = 0.1,
    hidden_units: int | None = None,
    name: str = "text_classifier",
) -> keras.Model:
    """A sequence classifier over ``encoder`` that takes raw strings.

    Args:
        encoder: a `TextEncoder` (`load_encoder`, `build_bert_encoder`).
        num_classes: classes (multiclass, >= 2) or labels (multilabel, >= 1); numpy ints are fine.
        task: "multiclass" (softmax) or "multilabel" (sigmoid per label).
        pooling: "mean" (masked mean of the tokens; right for sentence-embedding encoders such as
            MiniLM), "cls" (first token) or "pooled" (the encoder's pretrained pooler).
        dropout: dropout before the head.
        hidden_units: optional hidden dense layer (GELU) before the head.
        name: model name.

    Returns:
        A functional ``keras.Model``: input "text" (string ``[batch]``), output probabilities.
    """
    _check_encoder(encoder)
    if task not in TASKS:
        raise ArgumentError("task", task, "must be one of " + ", ".join(TASKS))
    num_classes = check_int("num_classes", num_classes, low=2 if task == "multiclass" else 1)
    dropout = check_float("dropout", dropout, low=0, high=1, high_open=True)
    if pooling == "tokens":
        raise ArgumentError("pooling", pooling, "must be 'mean', 'cls' or 'pooled' for a sequence classifier")
    hidden_units = check_int("hidden_units", hidden_units, low=1, allow_none=True)
    text = keras.Input(shape=(), dtype="string", name="text")
    x = pool_outputs(encoder.backbone, encoder.tokenizer_layer()(text), pooling=pooling)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    if hidden_units:
        x = keras.layers.Dense(hidden_units, activation="gelu", name="head_hidden")(x)
    activation = "softmax" if task == "multiclass" else "sigmoid"
    outputs = keras.layers.Dense(num_classes, activation=activation, dtype="float32", name="head")(x)
    return keras.Model(text, outputs, name=name)


def text_class_weights(labels, *, num_classes: int | None = None, multi_label: bool | None = None):
    """Balanced weights against class imbalance.

    Single-label (class ids): ``{class: n / (num_classes * count)}`` for ``fit(class_weight=...)``.
    Multi-label (multi-hot rows): per-label positive weights ``negatives / positives`` (float32
    array) for `WeightedBinaryCrossentropy`.
    """
    y = np.asarray(labels)
    if y.size == 0:
        raise DataError("`labels` is empty")
    if multi_label is None:
        multi_label = y.ndim == 2 and y.shape[1] > 1
    if multi_label:
        if y.ndim != 2 or not np.isin(y, (0, 1)).all():
            raise DataError("multi-label `labels` must be a 2-D array of 0/1")
        positives = y.sum(axis=0).astype(np.float64)
        if (positives == 0).any():
            raise DataError(f"labels {np.flatnonzero(positives == 0).tolist()} have no positive example")
        return ((len(y) - positives) / positives).astype(np.float32)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError("single-label `labels` must be a 1-D array of class ids")
    if y.min() < 0:
        raise DataError(f"`labels` must be class ids >= 0; found {int(y.min())}")
    k = int(num_classes or y.max() + 1)
    if y.max() >= k:  # a class beyond num_classes would silently get no weight
        raise DataError(f"`labels` holds class {int(y.max())} but `num_classes` is {k} (ids 0..{k - 1})")
    counts = np.bincount(y, minlength=k)
    if (counts == 0).any():
        raise DataError(f"classes {np.flatnonzero(counts == 0).tolist()} have no example")
    return {int(c): float(len(y) / (k * counts[c])) for c in range(k)}


@keras.saving.register_keras_serializable(package="tfxfer")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Multi-label binary cross-entropy with a weight on each label's positive term.

    Args:
        positive_weights: one weight per label (e.g. `text_class_weights` of multi-hot labels).
    """

    def __init__(self, positive_weights, name: str = "weighted_binary_crossentropy", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        weights = np.asarray(positive_weights, dtype=np.float32).reshape(-1)
        if weights.size == 0 or (weights <= 0).any():
            raise ArgumentError("positive_weights", positive_weights, "must be a non-empty list of numbers > 0")
        self.positive_weights = [float(w) for w in weights]

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        p = ops.clip(y_pred, 1e-7, 1.0 - 1e-7)
        w = ops.convert_to_tensor(self.positive_weights, dtype=y_pred.dtype)
        per_label = -(w * y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
        return ops.mean(per_label, axis=-1)

    def get_config(self):
        return {"positive_weights": list(self.positive_weights), "name": self.name, "reduction": self.reduction}


def predict_texts(model: keras.Model, texts, *, batch_size: int = 32) -> np.ndarray:
    """Probabilities ``[n, classes]`` of a text classifier for raw ``texts`` (str or list of str).

    An empty list gives an empty ``[0, classes]`` array.

    Raises:
        ArgumentTypeError / ArgumentError: an item that is not a str (or UTF-8 bytes), a lone
            surrogate (`tfxfer.text.encoders.as_texts` names ``texts[i]``); ``batch_size`` < 1.
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    texts = as_texts(texts)
    if not len(texts):
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    return np.asarray(model.predict(texts, batch_size=batch_size, verbose=0), dtype=np.float32)
