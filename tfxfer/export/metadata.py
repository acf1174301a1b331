"""The sidecar JSON that travels with every tfxfer .tflite file.

``model.tflite`` gets ``model.json`` beside it: class names, the input the model expects (size,
channels, dtype, quantization; raw 0-255 RGB pixels, preprocessing is inside the graph), the output
(dtype, quantization) and how it was made. ``export/litert_runner.py`` reads it on the device
with nothing but the standard library.

Example:
    >>> from tfxfer.export.metadata import sidecar_path
    >>> sidecar_path("out/model_int8.tflite")
    'out/model_int8.json'
"""

from __future__ import annotations

import json
import os

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError

FORMAT = "tfxfer-tflite-sidecar"
FORMAT_VERSION = 1
#: How images are brought to the input size everywhere (tfxfer.data.decode: training, predict, serving, device).
RESIZE_NOTE = "bilinear, half-pixel centres, no antialiasing, rounded (tfxfer.data.decode.resize_pixels)"


def sidecar_path(tflite_path) -> str:
    """``<stem>.json`` beside ``<stem>.tflite``."""
    path = os.fspath(tflite_path)
    stem, ext = os.path.splitext(path)
    return (stem if ext == ".tflite" else path) + ".json"


def check_class_names(class_names, num_classes: int) -> list[str] | None:
    """Validate ``class_names`` against the model's number of outputs."""
    if class_names is None:
        return None
    if isinstance(class_names, (str, bytes)) or not hasattr(class_names, "__iter__"):
        raise ArgumentTypeError("class_names", class_names, "a list of strings")
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ArgumentError(
            "class_names", class_names, f"must have one name per model output ({num_classes})"
        )
    if len(set(names)) != len(names):
        raise ArgumentError("class_names", class_names, "must not contain duplicates")
    return names


#: The sidecar's ``output.kind`` for each task `model_task` tells apart.
OUTPUT_KINDS = {
    "multiclass": "probabilities",        # softmax: rows sum to 1, the argmax is the class
    "logits": "logits",                   # linear outputs of a classifier: the argmax is the class
    "multilabel": "label_probabilities",  # sigmoid: one independent probability per label (threshold 0.5)
    "regression": "values",               # linear outputs that are the prediction itself
    "scores": "scores",                   # another output layer: the argmax is read as the class
}


def _output_layer(model):
    """The layer that makes ``model``'s output, looking inside nested models."""
    layer = model
    for _ in range(32):
        outputs = getattr(layer, "outputs", None)
        history = getattr(outputs[0], "_keras_history", None) if outputs else None
        inner = history[0] if history else None
        if inner is None or inner is layer:
            return layer
        layer = inner
    return layer


def model_task(model) -> str:
    """What an image model's output is, from its output layer (the way `tfxfer.models.build_model`
    marks a task: ``TASKS``): "multiclass" (softmax), "multilabel" (sigmoid), "regression" (linear
    with one output, or tfxfer's linear ``head``), "logits" (another linear classifier: the argmax is
    the class) or "scores" (any other output layer, read as class scores).

    Example:
        >>> import keras
        >>> model_task(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="sigmoid")]))
        'multilabel'
    """
    layer = _output_layer(model)
    if type(layer).__name__ == "Softmax":
        return "multiclass"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None) if activation is not None else None
    if name == "softmax":
        return "multiclass"
    if name == "sigmoid":
        return "multilabel"
    if name == "linear" or (activation is None and type(layer).__name__ == "Dense"):
        outputs = int(model.outputs[0].shape[-1])
        return "regression" if outputs == 1 or layer.name == "head" else "logits"
    return "scores"


def check_gateable(model) -> str:
    """How the gate judges ``model``'s outputs: "multilabel" (sigmoid: each label decision at 0.5) or
    "multiclass" (softmax, logits, scores: the argmax); `ModelError` naming the task for a regression
    model, which has no class to agree on and no documented limit for its quantized files."""
    task = model_task(model)
    if task == "regression":
        raise ModelError(
            f"Model {model.name!r} is a regression model (task='regression': a linear output "
            f"{tuple(model.outputs[0].shape)}); the export gate judges classifiers (softmax, logits) and "
            "multi-label models (sigmoid) only, so nothing was exported or verified. Write an ungated file "
            "with tfxfer.export.export_tflite and check its outputs against Keras yourself"
        )
    return "multilabel" if task == "multilabel" else "multiclass"


def _tensor_entry(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape_signature"]],
        "dtype": getattr(detail["dtype"], "__name__", str(detail["dtype"])),
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def build_sidecar(*, content: bytes, variant: str, class_names, image_shape, extra: dict | None = None,
                  task: str = "multiclass") -> dict:
    """The sidecar dictionary for a converted model (inspects its input/output tensors); ``output.kind``
    says what the output is (`OUTPUT_KINDS` of the model's `model_task`)."""
    import hashlib

    from tfxfer.export.litert import new_interpreter

    interpreter = new_interpreter(model_content=content)
    inputs = interpreter.get_input_details()
    outputs = interpreter.get_output_details()
    height, width, channels = image_shape
    entry = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "variant": variant,
        "class_names": class_names,
        "input": dict(
            _tensor_entry(inputs[0]),
            height=int(height), width=int(width), channels=int(channels),
            layout="NHWC", color="RGB" if channels == 3 else "grayscale",
            pixel_range=[0, 255], resize=RESIZE_NOTE,
            note="raw pixels; preprocessing is inside the model. Integer inputs: q = round(x / scale) + zero_point",
        ),
        "output": dict(_tensor_entry(outputs[0]), kind=OUTPUT_KINDS[task], task=task),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    if extra:
        entry.update(extra)
    return entry


def embedded_metadata(*, variant: str, class_names, image_shape, model_name: str = "") -> dict:
    """What travels inside the .tflite file itself (`tfxfer.export.flatbuffer.embed_metadata`), so a
    file separated from its sidecar still names its classes and says what input it takes. The device
    runner reads it without TensorFlow.

    Example:
        >>> embedded_metadata(variant="int8", class_names=["cat", "dog"], image_shape=(32, 32, 1))["input"]["color"]
        'grayscale'
    """
    height, width, channels = image_shape
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "variant": variant, "model_name": model_name,
        "class_names": class_names,
        "input": {"height": int(height), "width": int(width), "channels": int(channels), "layout": "NHWC",
                  "color": "RGB" if channels == 3 else "grayscale", "pixel_range": [0, 255],
                  "resize": RESIZE_NOTE},
    }


def read_sidecar(tflite_path) -> dict | None:
    """The sidecar of ``tflite_path`` or None if there is none; raises `DataError` if malformed."""
    path = sidecar_path(tflite_path)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"Sidecar {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DataError(f"Sidecar {path!r} is not a {FORMAT} file")
    return data
