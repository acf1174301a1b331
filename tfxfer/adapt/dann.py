"""DANN: domain-adversarial training through a gradient-reversal layer.

Ganin et al. (2016), "Domain-Adversarial Training of Neural Networks". A small domain classifier
learns to tell source features from target features; between it and the features sits
`GradientReversal`, the identity on the way forward that multiplies the gradient by ``-scale`` on
the way back, so the feature layers learn to make the domains indistinguishable while the label
head keeps classifying the source. The reversal strength ramps from 0 to 1 with the paper's
schedule ``2 / (1 + exp(-10 p)) - 1`` over ``ramp_steps`` optimizer steps.

The domain classifier lives only in the `DANN` wrapper: ``dann.model`` is the plain classifier,
to save and export alone (as ``keras.distillation.Distiller``'s student is).

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt import DANN, adaptation_dataset
    >>> from tfxfer.models import build_model
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None, hidden_units=8)
    >>> dann = DANN(model, domain_units=16, ramp_steps=10)
    >>> dann.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> xs = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    >>> history = dann.fit(adaptation_dataset((xs, np.arange(8) % 2), xs[::-1], batch_size=4), verbose=0)
    >>> sorted(history.history)
    ['class_loss', 'domain_accuracy', 'domain_loss', 'loss']
    >>> dann.model.save("/tmp/adapted.keras")  # doctest: +SKIP
"""

from __future__ import annotations

import keras
from keras import ops

from tfxfer.adapt.trainer import FeatureAlignment
from tfxfer.utils.validate import check_float, check_int


@keras.saving.register_keras_serializable(package="tfxfer")
class GradientReversal(keras.layers.Layer):
    """Identity forward; gradient times ``-scale`` backward (``scale`` may be passed per call)."""

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_float("scale", scale, low=0.0)

    def call(self, inputs, scale=None):
        scale = self.scale if scale is None else scale
        frozen = ops.stop_gradient(inputs)
        # Forward: frozen + 0 == inputs exactly. Backward: d/dx = -scale.
        return frozen - ops.cast(scale, inputs.dtype) * (inputs - frozen)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="tfxfer")
class DANN(FeatureAlignment):
    """Domain-adversarial training of ``model`` (source labelled, target unlabelled).

    Args:
        model: a functional classifier (tfxfer image or text model); trained in place.
        feature_layer: the features the domain classifier sees (default "head_hidden" if present,
            else "pool"); the layers below it must have trainable weights.
        domain_weight: weight of the domain loss beside the classification loss.
        domain_units: width of the domain classifier's hidden layer.
        ramp_steps: optimizer steps over which the reversal strength ramps from 0 to 1
            (0: full strength from the first step).

    Compile with the model's ``optimizer`` / ``loss`` / ``metrics`` and ``fit`` on
    `adaptation_dataset` batches; the logs add ``domain_loss`` and ``domain_accuracy`` (near 0.5
    when the features no longer tell the domains apart).
    """

    alignment_name = "domain_loss"

    def __init__(self, model, *, feature_layer: str | None = None, domain_weight: float = 1.0,
                 domain_units: int = 64, ramp_steps: int = 0, name: str | None = None):
        super().__init__(model, feature_layer=feature_layer, alignment_weight=domain_weight, name=name)
        self.domain_units = check_int("domain_units", domain_units, low=1)
        self.ramp_steps = check_int("ramp_steps", ramp_steps, low=0)
        self.reversal = GradientReversal(name="gradient_reversal")
        self.domain_classifier = keras.Sequential([
            keras.Input(shape=(self.feature_dim,)),
            keras.layers.Dense(self.domain_units, activation="relu", name="domain_hidden"),
            keras.layers.Dense(1, dtype="float32", name="domain_logit"),
        ], name="domain_classifier")
        self.domain_accuracy_tracker = keras.metrics.BinaryAccuracy(name="domain_accuracy", threshold=0.0)

    @property
    def domain_weight(self) -> float:
        return self.alignment_weight

    @property
    def metrics(self):
        return [*super().metrics, self.domain_accuracy_tracker]

    def reversal_scale(self):
        """The reversal strength at the optimizer's current step (1.0 without a ramp)."""
        if not self.ramp_steps:
            return ops.convert_to_tensor(1.0)
        progress = ops.minimum(ops.cast(self.optimizer.iterations, "float32") / float(self.ramp_steps), 1.0)
        return 2.0 / (1.0 + ops.exp(-10.0 * progress)) - 1.0

    def alignment_loss(self, source_features, target_features):
        features = ops.concatenate([ops.cast(source_features, "float32"), ops.cast(target_features, "float32")], 0)
        features = ops.reshape(features, (-1, self.feature_dim))
        logits = self.domain_classifier(self.reversal(features, scale=self.reversal_scale()), training=True)
        domains = ops.concatenate([ops.zeros((ops.shape(source_features)[0], 1)),
                                   ops.ones((ops.shape(target_features)[0], 1))], 0)
        self.domain_accuracy_tracker.update_state(domains, logits)
        return ops.mean(keras.losses.binary_crossentropy(domains, logits, from_logits=True))

    def alignment_metrics(self) -> dict:
        return {"domain_accuracy": self.domain_accuracy_tracker.result()}

    def _alignment_log_names(self):
        return {*super()._alignment_log_names(), "domain_accuracy"}

    def get_config(self):
        config = super().get_config()
        config["domain_weight"] = config.pop("alignment_weight")
        config.update(domain_units=self.domain_units, ramp_steps=self.ramp_steps)
        return config
