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

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError

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


def _tensor_entry(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail["shape_signature"]],
        "dtype": getattr(detail["dtype"], "__name__", str(detail["dtype"])),
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def build_sidecar(*, content: bytes, variant: str, class_names, image_shape, extra: dict | None = None) -> dict:
    """The sidecar dictionary for a converted model (inspects its input/output tensors)."""
    import hashlib

    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
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
        "output": dict(_tensor_entry(outputs[0]), kind="probabilities"),
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
