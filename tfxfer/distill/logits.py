"""Logits views of softmax classifiers, sharing every weight with the original model.

tfxfer models end in ``Dense(num_classes, activation="softmax")``; temperature-scaled
distillation needs the logits before that softmax. `logits_model` builds a model from the same
inputs to ``head.input @ head.kernel + head.bias`` through `DenseLogits`, a layer that owns the
original head as a sublayer: training the view trains the original model in place, and the
original (with its softmax) is what gets exported.

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.distill import logits_model
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax", name="head")])
    >>> view = logits_model(model)
    >>> x = np.ones((2, 4), "float32")
    >>> np.allclose(keras.ops.softmax(view(x)), model(x), atol=1e-6)
    True
"""

from __future__ import annotations

import keras
from keras import ops

from tfxfer.errors import ArgumentTypeError, ModelError

_LOGIT_ACTIVATIONS = ("softmax",)
_LINEAR = ("linear", None)


@keras.saving.register_keras_serializable(package="tfxfer")
class DenseLogits(keras.layers.Layer):
    """``x @ dense.kernel + dense.bias``: the pre-activation output of a Dense layer, weights shared.

    Args:
        dense: the `keras.layers.Dense` layer whose logits to compute (tracked as a sublayer).
    """

    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        if isinstance(dense, dict):
            dense = keras.saving.deserialize_keras_object(dense)
        if not isinstance(dense, keras.layers.Dense):
            raise ArgumentTypeError("dense", dense, "a keras.layers.Dense layer")
        self.dense = dense

    def build(self, input_shape):
        if not self.dense.built:
            self.dense.build(input_shape)

    def call(self, inputs):
        x = ops.matmul(ops.cast(inputs, self.dense.compute_dtype), self.dense.kernel)
        if self.dense.use_bias:
            x = x + self.dense.bias
        return ops.cast(x, "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dense.units,)

    def get_config(self):
        config = super().get_config()
        config.update({"dense": keras.saving.serialize_keras_object(self.dense)})
        return config


def final_dense(model: keras.Model) -> keras.layers.Dense:
    """The model's last layer if it is a Dense layer (the classification head)."""
    if not isinstance(model, keras.Model) or not model.inputs:
        raise ArgumentTypeError("model", model, "a functional or Sequential keras.Model")
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense):
        raise ModelError(f"Model {model.name!r} must end in a Dense layer to distil its logits; "
                         f"its last layer is {head.name!r} ({type(head).__name__})")
    return head


def outputs_logits(model: keras.Model) -> bool:
    """True when the model's head is linear (already outputs logits)."""
    activation = getattr(final_dense(model).activation, "__name__", None)
    return activation in _LINEAR


def logits_model(model: keras.Model) -> keras.Model:
    """A model from ``model.inputs`` to the logits of its softmax head (the model itself if already linear).

    Raises:
        ModelError: the model does not end in a Dense layer with a softmax or linear activation.
    """
    head = final_dense(model)
    activation = getattr(head.activation, "__name__", None)
    if activation in _LINEAR:
        return model
    if activation not in _LOGIT_ACTIVATIONS:
        raise ModelError(f"Model {model.name!r}: logit distillation needs a softmax (or linear) head; "
                         f"{head.name!r} uses {activation!r}")
    logits = DenseLogits(head, name=f"{head.name}_logits")(head.input)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, logits, name=f"{model.name}_logits")
