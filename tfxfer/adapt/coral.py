"""Deep CORAL: align the second-order statistics (covariances) of source and target features.

`CoralMap` is the closed-form counterpart (a fixed linear map on the head's input), fitted by
`tfxfer.adapt.fit_coral_map`; it lives here so that every saved CORAL piece loads from one module.

Sun & Saenko (2016), "Deep CORAL: Correlation Alignment for Deep Domain Adaptation". The loss is
``||C_source - C_target||_F^2 / (4 d^2)`` over the ``d``-dimensional features of a batch; it is
zero when both batches have the same covariance. `DeepCORAL` adds it (times ``coral_weight``) to
the source classification loss; ``.model`` stays a plain classifier that exports as before.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt import DeepCORAL, adaptation_dataset, coral_loss
    >>> x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    >>> round(float(coral_loss(x, x + 3.0)), 6)  # a shift of the mean leaves the covariance alone
    0.0
    >>> from tfxfer.models import build_model
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None, hidden_units=8)
    >>> trainer = DeepCORAL(model, coral_weight=1.0)  # aligns "head_hidden" features
    >>> trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> xs = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    >>> history = trainer.fit(adaptation_dataset((xs, np.arange(8) % 2), xs[::-1], batch_size=4), verbose=0)
    >>> sorted(history.history)
    ['class_loss', 'coral_loss', 'loss']
"""

from __future__ import annotations

import keras
from keras import ops

from tfxfer.adapt.trainer import FeatureAlignment
from tfxfer.errors import ArgumentError
from tfxfer.utils.validate import check_int


def _covariance(x):
    x = ops.cast(ops.reshape(x, (ops.shape(x)[0], -1)), "float32")
    n = ops.cast(ops.shape(x)[0], "float32")
    centred = x - ops.mean(x, axis=0, keepdims=True)
    return ops.matmul(ops.transpose(centred), centred) / ops.maximum(n - 1.0, 1.0)


def coral_loss(source_features, target_features):
    """``||cov(source) - cov(target)||_F^2 / (4 d^2)`` for ``(batch, d)`` feature tensors."""
    d = ops.cast(ops.shape(source_features)[-1], "float32")
    diff = _covariance(source_features) - _covariance(target_features)
    return ops.sum(ops.square(diff)) / (4.0 * d * d)


@keras.saving.register_keras_serializable(package="tfxfer")
class DeepCORAL(FeatureAlignment):
    """Train ``model`` on labelled source batches while aligning feature covariances with the target.

    Args:
        model: a functional classifier (tfxfer image or text model); trained in place.
        feature_layer: the layer whose output is aligned (default "head_hidden" if the model has
            one, else "pool"). The layers below it must have trainable weights.
        coral_weight: weight of the CORAL loss beside the classification loss (the paper balances
            the two so they are of the same size at the end of training).

    Compile it like the model (``optimizer``, ``loss``, ``metrics``) and ``fit`` it on
    `adaptation_dataset` batches; evaluate / predict on plain ``(x, y)`` data; export ``.model``.
    """

    alignment_name = "coral_loss"

    def __init__(self, model, *, feature_layer: str | None = None, coral_weight: float = 1.0, name: str | None = None):
        super().__init__(model, feature_layer=feature_layer, alignment_weight=coral_weight, name=name)

    @property
    def coral_weight(self) -> float:
        return self.alignment_weight

    def alignment_loss(self, source_features, target_features):
        return coral_loss(source_features, target_features)

    def get_config(self):
        config = super().get_config()
        config["coral_weight"] = config.pop("alignment_weight")
        return config


@keras.saving.register_keras_serializable(package="tfxfer")
class CoralMap(keras.layers.Layer):
    """``y = (x - from_mean) @ matrix + to_mean`` with fixed (non-trainable) weights.

    Build it with `fit_coral_map`; on its own it starts as the identity map. The weights are saved
    with the model, so a reloaded model maps exactly as before.

    Args:
        dim: the feature dimension (input and output).
    """

    def __init__(self, dim: int, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        self.dim = check_int("dim", dim, low=1)
        self.from_mean = self.add_weight(name="from_mean", shape=(self.dim,), initializer="zeros", trainable=False)
        self.to_mean = self.add_weight(name="to_mean", shape=(self.dim,), initializer="zeros", trainable=False)
        self.matrix = self.add_weight(name="matrix", shape=(self.dim, self.dim), initializer="identity",
                                      trainable=False)
        self.built = True  # the weights exist, so Keras never calls build(): the shape check is in __call__

    def __call__(self, inputs, *args, **kwargs):
        # Checked before Keras's own __call__: an error raised inside call() reaches the caller
        # re-typed as RuntimeError (Keras re-creates it with one message argument), and a
        # symbolic call (building a functional model) never runs call() at all.
        try:
            last = tuple(inputs.shape)[-1]  # the static last dimension (None: unknown, not checked)
        except (AttributeError, TypeError, ValueError, IndexError):  # no shape, unknown rank, a scalar
            last = None
        if last is not None and int(last) != self.dim:
            raise ArgumentError("inputs", f"features of dimension {last}",
                                f"must have the dimension the CORAL map was fitted on ({self.dim})")
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return ops.matmul(x - self.from_mean, self.matrix) + self.to_mean

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}
