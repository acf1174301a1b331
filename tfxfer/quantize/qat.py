"""Quantization-aware training of a Keras 3 transfer model through the tf_keras bridge (TFMOT).

`quantize_model` rebuilds the model flat in tf_keras (`to_tf_keras`), annotates every layer and
applies TFMOT's default 8-bit scheme. Layers TFMOT has no config for (tfxfer's ``Preprocess``,
hard-swish, raw Keras ops, exotic activations) are not silently dropped: with
``unsupported="annotate"`` (default) their output gets a learned int8 range and their math is left
to the converter; with ``unsupported="float"`` they carry no fake-quant at all. The plan lists
every decision. Quantizer ranges start from the float model's statistics (TFMOT's defaults of
[-6, 6] move only 0.1% per step): weight ranges from one forward pass, activation ranges from the
float activations' min / max on ``calibration_data``.

`train_qat` does the whole job: quantize, fine-tune briefly, convert to a full-integer TFLite file,
and run it through the `tfxfer.export` gate against the original float Keras 3 model.

Example:
    >>> import os, tempfile, numpy as np, tfxfer
    >>> from tfxfer.quantize import quantize_model
    >>> model = tfxfer.build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    >>> qat = quantize_model(model, calibration_data=x)
    >>> qat.plan["preprocess"][0], qat.plan["Conv1"][0]
    ('annotate', 'int8')
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from tfxfer.errors import ArgumentError, UnknownNameError
from tfxfer.quantize._deps import tf_keras, tfmot
from tfxfer.quantize._tfk_layers import tfk_layers
from tfxfer.quantize.bridge import BridgedModel, to_tf_keras

UNSUPPORTED_MODES = ("annotate", "float")
_TFMOT_ACTIVATIONS = {"relu", "swish", "gelu", "relu6", "linear", "softmax", "sigmoid", "tanh"}


@dataclasses.dataclass
class QATModel:
    """A TFMOT quantization-aware tf_keras model and how each layer was treated.

    Attributes:
        model: the QAT tf_keras model (``quant_<name>`` wrappers).
        bridged: the `BridgedModel` it was built from.
        plan: ``{layer name: (treatment, reason)}``; treatment is "int8" (TFMOT default 8-bit),
            "annotate" (output range learned, math quantized by the converter) or "float" (no
            fake-quant in the QAT graph).
        ranges_initialised: activation ranges set from float statistics.
    """

    model: object
    bridged: BridgedModel
    plan: dict
    ranges_initialised: int

    def layers_with(self, treatment: str) -> list[str]:
        return [name for name, (t, _) in self.plan.items() if t == treatment]


@functools.lru_cache(maxsize=1)
def _configs():
    """QuantizeConfig classes: output-only (learned output range) and no-op."""
    qk = tfmot().quantization.keras

    class OutputRangeConfig(qk.QuantizeConfig):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [qk.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                         narrow_range=False)]

        def get_config(self):
            return {}

    class FloatConfig(OutputRangeConfig):
        def get_output_quantizers(self, layer):
            return []

    return OutputRangeConfig, FloatConfig


def _registry():
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )

    return registry.Default8BitQuantizeRegistry()


def plan_layers(bridged: BridgedModel, *, unsupported: str = "annotate", float_layers=()) -> dict:
    """``{layer: (treatment, reason)}`` for every non-input layer of the bridged model."""
    if unsupported not in UNSUPPORTED_MODES:
        raise ArgumentError("unsupported", unsupported, "must be 'annotate' or 'float'")
    tfk = tf_keras()
    twins = tfk_layers()
    registry = _registry()
    names = {layer.name for layer in bridged.model.layers}
    unknown = [n for n in float_layers if n not in names]
    if unknown:
        raise UnknownNameError("layer", unknown[0], names)
    plan = {}
    for layer in bridged.model.layers:
        if isinstance(layer, tfk.layers.InputLayer):
            continue
        activation = getattr(getattr(layer, "activation", None), "__name__", None)
        if layer.name in float_layers:
            plan[layer.name] = ("float", "requested in float_layers")
        elif isinstance(layer, twins.Preprocess):
            plan[layer.name] = (unsupported, "tfxfer Preprocess (input scaling) has no TFMOT quantize config")
        elif isinstance(layer, twins.HardSwish):
            plan[layer.name] = (unsupported, "hard-swish activation has no TFMOT quantize config")
        elif isinstance(layer, twins.KerasOp):
            plan[layer.name] = (unsupported, f"raw Keras op {type(layer.operation).__name__} has no TFMOT config")
        elif isinstance(layer, tfk.layers.Activation) and activation not in _TFMOT_ACTIVATIONS:
            plan[layer.name] = (unsupported, f"activation {activation!r} is not supported by TFMOT")
        elif registry.supports(layer):
            plan[layer.name] = ("int8", "TFMOT default 8-bit")
        elif isinstance(layer, tfk.layers.BatchNormalization):
            plan[layer.name] = ("int8", "TFMOT default 8-bit (BatchNorm handled by its Conv/Dense+BN transforms)")
        else:
            plan[layer.name] = (unsupported, f"{type(layer).__name__} is not in TFMOT's default 8-bit registry")
    return plan


def quantize_model(model, *, calibration_data=None, unsupported: str = "annotate", float_layers=(),
                   train_bn: bool = False, num_calibration: int = 256, atol: float | None = 1e-4) -> QATModel:
    """Apply TFMOT quantization-aware training to a Keras 3 model (or a `BridgedModel`).

    Args:
        model: a functional Keras 3 model (backbone nested or not) or a `BridgedModel`.
        calibration_data: images (array, ``(images, labels)`` or dataset) whose float statistics
            initialise the quantizer ranges; None keeps TFMOT's initial ranges.
        unsupported: "annotate" or "float" for layers TFMOT cannot quantize (see module doc).
        float_layers: layer names to keep without fake-quant in the QAT graph.
        train_bn: let BatchNormalization layers train during QAT (default: frozen).
        num_calibration: at most this many calibration images.
        atol: bridge output check (see `to_tf_keras`).

    Returns:
        A `QATModel` (compile and fit ``.model``, or use `train_qat`).
    """
    if isinstance(model, BridgedModel):
        bridged = model
    else:
        bridged = to_tf_keras(model, atol=atol)
    tfk = tf_keras()
    qk = tfmot().quantization.keras
    twins = tfk_layers()
    output_config, float_config = _configs()
    plan = plan_layers(bridged, unsupported=unsupported, float_layers=tuple(float_layers))

    def annotate(layer):
        if layer.name not in plan:
            return layer.__class__.from_config(layer.get_config())
        treatment = plan[layer.name][0]
        if treatment == "int8":
            return qk.quantize_annotate_layer(layer)
        config = output_config() if treatment == "annotate" else float_config()
        return qk.quantize_annotate_layer(layer, quantize_config=config)

    annotated = tfk.models.clone_model(bridged.model, clone_function=annotate)
    scope = {"Preprocess": twins.Preprocess, "HardSwish": twins.HardSwish, "KerasOp": twins.KerasOp,
             "OutputRangeConfig": output_config, "FloatConfig": float_config}
    with qk.quantize_scope(scope):
        qat_model = qk.quantize_apply(annotated)
    for layer in qat_model.layers:
        inner = getattr(layer, "layer", None)
        if inner is None:
            continue
        layer.trainable = True
        inner.trainable = bool(train_bn) or not isinstance(inner, tfk.layers.BatchNormalization)
    initialised = 0
    if calibration_data is not None:
        from tfxfer.quantize._training import images_of

        images = images_of(calibration_data, name="calibration_data", limit=num_calibration)
        initialised = init_ranges(qat_model, bridged.model, images)
    return QATModel(model=qat_model, bridged=bridged, plan=plan, ranges_initialised=initialised)


def _range_vars(layer):
    found = {}
    for v in layer.weights:
        short = v.name.split("/")[-1].split(":")[0]
        for kind in ("output", "post_activation", "pre_activation", "quantize_layer"):
            for end in ("min", "max"):
                if short == f"{kind}_{end}":
                    found.setdefault(kind, {})[end] = v
    return found


def init_ranges(qat_model, float_model, images: np.ndarray, *, batch_size: int = 32) -> int:
    """Initialise QAT quantizer ranges from the float model; returns how many activation ranges were set.

    One forward pass in training mode on a few images sets the weight ranges (last-value
    quantizers), with BatchNorm frozen for that pass; activation ranges are then set to the min /
    max of the float model's activations (zero included) over ``images``.
    """
    tfk = tf_keras()
    bns = [layer.layer for layer in qat_model.layers
           if isinstance(getattr(layer, "layer", None), tfk.layers.BatchNormalization)]
    flags = [bn.trainable for bn in bns]
    for bn in bns:
        bn.trainable = False
    try:
        qat_model(images[: min(len(images), 8)], training=True)
    finally:
        for bn, flag in zip(bns, flags):
            bn.trainable = flag
    float_layers = {layer.name: layer for layer in float_model.layers}
    targets, pre = [], []
    for layer in qat_model.layers:
        ranges = _range_vars(layer)
        if "quantize_layer" in ranges:
            targets.append((None, ranges["quantize_layer"]))
        inner = getattr(layer, "layer", None)
        if inner is None or inner.name not in float_layers:
            continue
        for kind in ("output", "post_activation"):
            if kind in ranges:
                targets.append((inner.name, ranges[kind]))
        if "pre_activation" in ranges and isinstance(float_layers[inner.name], tfk.layers.Dense):
            pre.append((inner.name, ranges["pre_activation"]))
    names = sorted({n for n, _ in targets if n is not None} | {n for n, _ in pre})
    outputs = [float_layers[n].output for n in names] + [float_layers[n].input for n, _ in pre]
    stats_model = tfk.Model(float_model.inputs, outputs)
    low = np.full(len(outputs), np.inf)
    high = np.full(len(outputs), -np.inf)
    for start in range(0, len(images), batch_size):
        values = stats_model(images[start: start + batch_size], training=False)
        values = values if isinstance(values, (list, tuple)) else [values]
        for i, value in enumerate(values):
            value = np.asarray(value)
            if i >= len(names):  # pre-activation of a Dense layer: x @ W + b
                layer = float_layers[pre[i - len(names)][0]]
                value = value @ layer.kernel.numpy() + (layer.bias.numpy() if layer.use_bias else 0.0)
            low[i], high[i] = min(low[i], float(value.min())), max(high[i], float(value.max()))
    index = {n: i for i, n in enumerate(names)}
    count = 0
    for name, pair in targets:
        if name is None:
            lo, hi = float(images.min()), float(images.max())
        else:
            lo, hi = low[index[name]], high[index[name]]
        pair["min"].assign(min(0.0, lo))
        pair["max"].assign(max(0.0, hi, min(0.0, lo) + 1e-6))
        count += 1
    for i, (_, pair) in enumerate(pre):
        lo, hi = low[len(names) + i], high[len(names) + i]
        pair["min"].assign(min(0.0, lo))
        pair["max"].assign(max(0.0, hi, min(0.0, lo) + 1e-6))
        count += 1
    return count

