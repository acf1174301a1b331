"""Trace a Keras image model into a clean inference function and map graph nodes back to layers.

Every exporter in `tfxfer.export` goes through `inference_function`: the model is called with
``training=False`` inside a ``tf.function`` whose input is a float32 batch of raw 0-255 pixels, so
dropout and augmentation layers are inactive in the exported graph.
"""

from __future__ import annotations

import re

import keras
import tensorflow as tf

from tfxfer.errors import ArgumentTypeError, ModelError

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


def check_image_model(model) -> tuple[int, int, int]:
    """Return ``(height, width, channels)`` of a single-input, single-output image model."""
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model")
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(
            f"Model {model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "tfxfer.export needs one image input and one output"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ModelError(
            f"Model {model.name!r} input shape is {shape}; tfxfer.export needs a fixed "
            "(batch, height, width, channels) image input"
        )
    if len(model.outputs[0].shape) != 2:
        raise ModelError(
            f"Model {model.name!r} output shape is {tuple(model.outputs[0].shape)}; "
            "tfxfer.export needs (batch, classes)"
        )
    return int(shape[1]), int(shape[2]), int(shape[3])


def num_outputs(model) -> int:
    return int(model.outputs[0].shape[-1])


def model_call(model):
    """``fn(float32 pixels) -> float32 outputs`` in inference mode (casts to the model's input dtype)."""
    input_dtype = model.inputs[0].dtype
    input_dtype = getattr(input_dtype, "name", input_dtype)

    def call(images):
        x = images if input_dtype in (None, "float32") else tf.cast(images, input_dtype)
        return tf.cast(model(x, training=False), tf.float32)

    return call


def exact_pixels(images):
    """Pin the input's quantization range to [0, 255] in 256 steps (a FakeQuant node).

    The TFLite converter otherwise picks a full-int8 file's uint8 input scale from the range it sees
    during calibration, after folding the first subtract/multiply (and a grayscale model's
    concatenation) into it: 0.78-1.5 grey levels per step, clipping or rounding real pixels
    (DESIGN.md item 13). With this node the file's input is uint8 with scale 1 and zero point 0,
    i.e. the raw pixel bytes, exactly. Identity on integer pixels in [0, 255].
    """
    return tf.quantization.fake_quant_with_min_max_args(images, min=0.0, max=255.0, num_bits=8)


def inference_function(model, *, batch_size: int | None = None, exact_uint8_input: bool = False):
    """A concrete ``tf.function`` ``image (float32, raw pixels) -> {"probabilities": ...}``.

    ``exact_uint8_input``: for full-int8 files, pin the input quantization to the raw pixel bytes
    (`exact_pixels`)."""
    height, width, channels = check_image_model(model)
    call = model_call(model)
    spec = tf.TensorSpec([batch_size, height, width, channels], tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec], autograph=False)
    def serve(image):
        return {OUTPUT_NAME: call(exact_pixels(image) if exact_uint8_input else image)}

    return serve.get_concrete_function()


class Traces:
    """The inference functions of one model, traced once per ``(batch_size, exact_uint8_input)``, and the
    float32 file a pre-flight converted from the dynamic-batch one: shared by the steps of one export
    (pre-flight, then every variant), which would otherwise trace the same graph and convert the
    float32 file twice (about 2 s of a 2.5 s float32 export of EfficientNet-Lite0 on 2 cores).

    Only for the span of one export: a concrete function reads the model's variables when it is
    converted, but the cached float32 file holds the weights of the moment it was made.
    """

    def __init__(self, model):
        self.model = model
        self.float32 = None  # bytes of the float32 file of `function()`, once a pre-flight converted it
        self._functions = {}

    def function(self, *, batch_size: int | None = None, exact_uint8_input: bool = False):
        key = (batch_size, bool(exact_uint8_input))
        if key not in self._functions:
            self._functions[key] = inference_function(self.model, batch_size=batch_size,
                                                      exact_uint8_input=exact_uint8_input)
        return self._functions[key]


def iter_layers(model, prefix: str = ""):
    """Yield ``(path, layer)`` for every layer, recursing into nested models (``backbone/conv1``)."""
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        yield path, layer
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer, prefix=path + "/")


def graph_nodes(concrete_function):
    """``(op_type, node_name)`` of every node of the traced graph and of its function library."""
    graph_def = concrete_function.graph.as_graph_def()
    nodes = [(node.op, node.name) for node in graph_def.node]
    for function in graph_def.library.function:
        nodes.extend((node.op, f"{function.signature.name}/{node.name}") for node in function.node_def)
    return nodes


def layers_for_nodes(model, node_names) -> list[str]:
    """Layer paths whose name scopes appear in ``node_names`` (deepest match per node), in order."""
    paths: dict[str, str] = {}
    for path, layer in iter_layers(model):
        paths.setdefault(layer.name, path)
    found: list[str] = []
    for node in node_names:
        match = None
        for part in node.split("/"):
            for candidate in (part, re.sub(r"_\d+$", "", part)):
                if candidate in paths:
                    match = paths[candidate]
                    break
        if match is not None and match not in found and match != model.name:
            found.append(match)
    return found
