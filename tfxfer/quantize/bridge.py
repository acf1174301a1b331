"""The tf_keras bridge: a Keras 3 transfer model rebuilt as a flat tf_keras functional model.

TensorFlow Model Optimization (QAT, pruning, clustering) only accepts tf_keras (Keras 2) models and
refuses a backbone nested inside a model -- exactly the shape of a transfer model. `to_tf_keras`
replays the Keras 3 graph layer by layer into tf_keras, inlining nested models (the backbone built
by `tfxfer.build_model`), keeping every layer name, copying every weight, and checking that both
models give the same outputs (max absolute difference <= ``atol``, 1e-4 by default).
`weights_to_keras` carries trained weights back into the Keras 3 model by layer name (after
pruning or clustering, so the normal `tfxfer.export` path and its gate apply).

Layers without a tf_keras class get a tf_keras twin (`tfxfer.preprocess.Preprocess`, the hard-swish
activation, raw Keras 3 operations such as ``x + 3.0``); they are listed in ``custom_layers``.
Initializers are not carried (the weights are); regularizers and constraints are dropped and
listed in ``dropped``. The rebuilt model is float32 whatever the source's dtype policy.

Example:
    >>> import tfxfer
    >>> from tfxfer.quantize import to_tf_keras
    >>> model = tfxfer.build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    >>> bridged = to_tf_keras(model)
    >>> bridged.max_abs_diff <= 1e-4, "preprocess" in bridged.custom_layers
    (True, True)
    >>> bridged.names["mobilenet_v2/Conv1"], len(bridged.model.layers) > len(model.layers)
    ('Conv1', True)
"""

from __future__ import annotations

import dataclasses
import inspect

import keras
import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.preprocess import Preprocess
from tfxfer.quantize._deps import tf_keras
from tfxfer.quantize._tfk_layers import tfk_layers

_HARD_SWISH = ("hard_silu", "hard_swish")
_DROPPED_KWARGS = ("training", "mask")


@dataclasses.dataclass
class BridgedModel:
    """A tf_keras copy of a Keras 3 model.

    Attributes:
        model: the flat tf_keras functional model.
        source: the Keras 3 model it was built from.
        names: Keras 3 layer path (``"backbone/conv1"``) -> tf_keras layer name.
        custom_layers: tf_keras layer names that are tfxfer twins (no tf_keras class exists).
        dropped: ``"layer.attribute"`` of regularizers/constraints that were not carried over.
        max_abs_diff: largest output difference on the check data (None if not checked).
    """

    model: object
    source: keras.Model
    names: dict
    custom_layers: list
    dropped: list
    max_abs_diff: float | None


class _Converter:
    def __init__(self):
        self.tfk = tf_keras()
        self.twins = tfk_layers()
        self.layers: dict[int, object] = {}
        self.names: dict[str, str] = {}
        self.used: set[str] = set()
        self.custom: list[str] = []
        self.dropped: list[str] = []

    def unique(self, name: str, prefix: str) -> str:
        candidate = name
        if candidate in self.used:
            candidate = f"{prefix.rstrip('/').replace('/', '_')}_{name}" if prefix else name
        index = 1
        while candidate in self.used:
            candidate, index = f"{name}_{index}", index + 1
        self.used.add(candidate)
        return candidate

    def run(self, model, inputs, prefix: str):
        def operation_fn(operation):
            return self.callable_for(operation, prefix)

        return model._run_through_graph(inputs, operation_fn=operation_fn)

    def callable_for(self, operation, prefix):
        if isinstance(operation, keras.Sequential):
            return lambda x, **kw: self.run_sequential(operation, x, prefix + operation.name + "/")
        if isinstance(operation, keras.Model):
            if not hasattr(operation, "_run_through_graph"):
                raise ModelError(
                    f"Layer {prefix + operation.name!r} is a subclassed model; the tf_keras bridge needs "
                    "functional or Sequential models"
                )
            return lambda x, **kw: self.run(operation, x, prefix + operation.name + "/")
        if not isinstance(operation, keras.layers.Layer):
            return lambda *args, **kwargs: self.apply_op(operation, args, kwargs, prefix)
        return lambda *args, **kwargs: self.apply_layer(operation, args, kwargs, prefix)

    def run_sequential(self, model, x, prefix):
        for layer in model.layers:
            x = self.callable_for(layer, prefix)(x)
        return x

    def apply_layer(self, layer, args, kwargs, prefix):
        kwargs = {k: v for k, v in kwargs.items() if k not in _DROPPED_KWARGS and v is not None}
        if kwargs:
            raise ModelError(f"Layer {prefix + layer.name!r} is called with {sorted(kwargs)}; the bridge "
                             "supports plain layer calls only")
        tfk_layer = self.layers.get(id(layer))
        fresh = tfk_layer is None
        if fresh:
            tfk_layer = self.convert(layer, prefix)
            self.layers[id(layer)] = tfk_layer
        outputs = tfk_layer(*args)
        if fresh:
            self.copy_weights(layer, tfk_layer, prefix)
        return outputs

    def apply_op(self, operation, args, kwargs, prefix):
        import tensorflow as tf

        from tf_keras.src.engine.keras_tensor import KerasTensor

        leaves = tf.nest.flatten((args, kwargs))
        positions = [i for i, leaf in enumerate(leaves) if isinstance(leaf, KerasTensor)]
        tensors = [leaves[i] for i in positions]
        name = self.unique(getattr(operation, "name", None) or type(operation).__name__.lower(), prefix)
        self.custom.append(name)
        layer = self.twins.KerasOp(operation, args, kwargs, positions, name=name)
        return layer(tensors if len(tensors) != 1 else tensors[0])

    def convert(self, layer, prefix):
        path = prefix + layer.name
        name = self.unique(layer.name, prefix)
        self.names[path] = name
        if isinstance(layer, Preprocess):
            self.custom.append(name)
            return self.twins.Preprocess(mode=layer.mode, expand_grayscale=layer.expand_grayscale, name=name)
        class_name = type(layer).__name__
        if class_name == "Activation" and _activation_name(layer.activation) in _HARD_SWISH:
            self.custom.append(name)
            return self.twins.HardSwish(name=name)
        module = type(layer).__module__
        tfk_cls = getattr(self.tfk.layers, class_name, None)
        if tfk_cls is None or not module.startswith("keras."):
            raise ModelError(
                f"Layer {path!r} ({module}.{class_name}) has no tf_keras counterpart; the bridge supports "
                "Keras built-in layers and tfxfer.preprocess.Preprocess"
            )
        config = self.config_for(layer, tfk_cls, path)
        config["name"] = name
        if class_name == "BatchNormalization":
            # The unfused kernel computes x * rsqrt(var + eps) * gamma + (beta - mean * ...) exactly as
            # Keras 3 does; the fused one differs by ~1e-6 per layer, which deep nets amplify to 1e-3.
            config["fused"] = False
        try:
            return tfk_cls.from_config(config)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"Layer {path!r} ({class_name}) could not be rebuilt in tf_keras: {exc}") from exc

    def config_for(self, layer, tfk_cls, path):
        accepted = set(inspect.signature(tfk_cls.__init__).parameters)
        config = {}
        for key, value in layer.get_config().items():
            if key == "dtype":
                config[key] = "float32"
            elif key.endswith("_initializer"):
                continue
            elif key.endswith(("_regularizer", "_constraint")):
                if value is not None:
                    self.dropped.append(f"{path}.{key}")
            elif key == "activation" and isinstance(value, str):
                try:
                    self.tfk.activations.get(value)
                except ValueError as exc:
                    raise ModelError(f"Layer {path!r} uses activation {value!r}, which tf_keras lacks") from exc
                config[key] = value
            elif key in ("name", "trainable") or key in accepted:
                config[key] = value
        return config

    @staticmethod
    def copy_weights(layer, tfk_layer, prefix):
        source = [np.asarray(w.numpy()) for w in layer.weights]
        target = tfk_layer.weights
        if [s.shape for s in source] != [tuple(t.shape) for t in target]:
            raise ModelError(
                f"Layer {prefix + layer.name!r}: Keras 3 weights {[s.shape for s in source]} do not match "
                f"tf_keras weights {[tuple(t.shape) for t in target]}"
            )
        if source:
            tfk_layer.set_weights(source)
        tfk_layer.trainable = layer.trainable


def _activation_name(activation) -> str:
    return getattr(activation, "__name__", str(activation))


def check_data_for(model, check_data, *, num_check: int = 8, seed: int = 0) -> np.ndarray:
    """Images to compare both models on: ``check_data`` (array or ``(images, labels)``) or random 0-255 pixels."""
    if check_data is None:
        shape = tuple(model.inputs[0].shape[1:])
        if any(d is None for d in shape):
            raise ModelError(f"Model {model.name!r} has input shape {shape}; pass check_data")
        return np.random.default_rng(seed).uniform(0, 255, (num_check, *shape)).astype("float32")
    if isinstance(check_data, tuple):
        check_data = check_data[0]
    if not isinstance(check_data, np.ndarray):
        raise ArgumentTypeError("check_data", check_data, "a numpy array of images or (images, labels)")
    return check_data[:64].astype("float32")


def to_tf_keras(model, *, check_data=None, atol: float | None = 1e-4, num_check: int = 8) -> BridgedModel:
    """Rebuild a Keras 3 functional model (nested backbones inlined) as a flat tf_keras model.

    Args:
        model: a functional ``keras.Model`` (e.g. from `tfxfer.build_model`).
        check_data: images to compare outputs on (default: ``num_check`` random 0-255 images).
        atol: largest allowed absolute output difference; None skips the check.
        num_check: how many random images to check with when ``check_data`` is None.

    Returns:
        A `BridgedModel` (``.model`` is the tf_keras model).

    Raises:
        ModelError: a layer has no tf_keras counterpart, or outputs differ by more than ``atol``.
    """
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model (Keras 3)")
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    if graph is None or not hasattr(graph, "_run_through_graph") or not graph.inputs:
        raise ModelError(f"Model {model.name!r} is not functional (or a built Sequential); build it with "
                         "keras.Model(inputs, outputs)")
    if atol is not None and not float(atol) > 0:
        raise ArgumentError("atol", atol, "must be None or > 0")
    converter = _Converter()
    tfk = converter.tfk
    inputs = []
    for tensor in graph.inputs:
        name = converter.unique(tensor.name.split(":")[0] or "input", "")
        inputs.append(tfk.Input(shape=tuple(tensor.shape[1:]), name=name, dtype="float32"))
    outputs = converter.run(graph, inputs if len(inputs) > 1 else inputs[0], "")
    tfk_model = tfk.Model(inputs if len(inputs) > 1 else inputs[0], outputs, name=model.name)
    diff = None
    if atol is not None:
        x = check_data_for(model, check_data, num_check=num_check)
        expected = np.asarray(keras.ops.convert_to_numpy(model(x, training=False)), dtype=np.float64)
        got = np.asarray(tfk_model(x, training=False), dtype=np.float64)
        diff = float(np.max(np.abs(expected - got)))
        if not diff <= float(atol):
            raise ModelError(f"The tf_keras rebuild of {model.name!r} differs from the Keras 3 model by "
                             f"{diff:.3g} (> atol={atol})")
    return BridgedModel(model=tfk_model, source=model, names=converter.names, custom_layers=converter.custom,
                        dropped=converter.dropped, max_abs_diff=diff)


def weights_to_keras(bridged: BridgedModel, tfk_model=None, *, target: keras.Model | None = None) -> keras.Model:
    """Copy weights from a tf_keras model (default ``bridged.model``) back into a Keras 3 model, by layer name.

    Args:
        bridged: the `BridgedModel` that maps Keras 3 layer paths to tf_keras names.
        tfk_model: the tf_keras model holding the new weights (e.g. stripped after pruning); its
            layers must keep the bridged names.
        target: the Keras 3 model to write into (default: a fresh copy of ``bridged.source``).

    Returns:
        The Keras 3 model with the new weights.
    """
    if not isinstance(bridged, BridgedModel):
        raise ArgumentTypeError("bridged", bridged, "a BridgedModel from to_tf_keras")
    tfk_model = bridged.model if tfk_model is None else tfk_model
    if target is None:
        target = clone_keras_model(bridged.source)
    by_name = {layer.name: layer for layer in tfk_model.layers}
    for path, layer in _iter_layers(target):
        if not layer.weights or isinstance(layer, keras.Model):
            continue
        name = bridged.names.get(path)
        if name is None or name not in by_name:
            raise ModelError(f"Layer {path!r} has no counterpart in the tf_keras model {tfk_model.name!r}")
        values = [np.asarray(w) for w in by_name[name].get_weights()]
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            raise ModelError(f"Layer {path!r}: tf_keras weights {[v.shape for v in values]} do not fit "
                             f"{[tuple(w.shape) for w in layer.weights]} (strip TFMOT wrappers first)")
        layer.set_weights(values)
    return target


def clone_keras_model(model: keras.Model) -> keras.Model:
    """An independent copy of a functional Keras 3 model (same config, same weights, same trainable flags)."""
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    for (_, a), (_, b) in zip(_iter_layers(model), _iter_layers(copy)):
        b.trainable = a.trainable
    return copy


def _iter_layers(model, prefix: str = ""):
    for layer in model.layers:
        yield prefix + layer.name, layer
        if isinstance(layer, keras.Model):
            yield from _iter_layers(layer, prefix + layer.name + "/")
