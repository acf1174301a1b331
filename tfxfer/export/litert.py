"""Run a .tflite file in the LiteRT interpreter on numpy batches (quantizing inputs as the file asks).

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.export import convert_tflite
    >>> from tfxfer.export.litert import predict_tflite
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> x = np.full((3, 8, 8, 3), 100.0, dtype="float32")
    >>> predict_tflite(convert_tflite(model), x).shape
    (3, 2)
"""

from __future__ import annotations

import os

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.utils.native_logs import quiet_native_logs


def new_interpreter(interpreter_class=None, **kwargs):
    """``Interpreter(**kwargs)`` made and first allocated with file descriptor 2 silenced: LiteRT prints
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." (C++, once per process) when it first
    allocates, which ``tfxfer ... -q`` must not show. An allocation that fails here is left for the
    caller's own ``allocate_tensors`` (after any resize) to raise."""
    if interpreter_class is None:
        from ai_edge_litert.interpreter import Interpreter as interpreter_class
    with quiet_native_logs():
        interpreter = interpreter_class(**kwargs)
        try:
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError):
            pass
    return interpreter


def load_interpreter(model, *, num_threads: int | None = None):
    """A LiteRT ``Interpreter`` for a .tflite path or its bytes."""
    if isinstance(model, (bytes, bytearray)):
        kwargs, what = {"model_content": bytes(model)}, f"the {len(model)} .tflite bytes"
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise ArgumentError("model", path, "an existing .tflite file")
        kwargs, what = {"model_path": path}, path
    else:
        raise ArgumentTypeError("model", model, "a .tflite path or its bytes")
    try:
        return new_interpreter(num_threads=num_threads, **kwargs)
    except (ValueError, RuntimeError) as exc:  # LiteRT: "not a valid Flatbuffer buffer", bad ops, ...
        raise ModelError(f"{what} is not a loadable .tflite model (truncated or corrupt?): "
                         f"{str(exc).strip()[:300]}") from exc


def quantize_input(images: np.ndarray, detail: dict) -> np.ndarray:
    """Cast float pixels to the interpreter's input dtype (quantizing integer inputs)."""
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return images.astype(dtype, copy=False)
    scale, zero_point = detail["quantization"]
    if scale:
        images = np.round(images / scale) + zero_point
    info = np.iinfo(dtype)
    return np.clip(images, info.min, info.max).astype(dtype)


def dequantize_output(values: np.ndarray, detail: dict) -> np.ndarray:
    """Integer outputs back to float32 with the tensor's scale and zero point."""
    if np.dtype(detail["dtype"]).kind == "f":
        return values.astype(np.float32, copy=False)
    scale, zero_point = detail["quantization"]
    return ((values.astype(np.float32) - zero_point) * (scale or 1.0)).astype(np.float32)


def predict_tflite(model, images, *, batch_size: int = 32, num_threads: int | None = None) -> np.ndarray:
    """Float32 outputs of a .tflite model for ``images`` (raw pixels, ``(n, h, w, c)``).

    Files with a dynamic batch dimension run ``batch_size`` images per call; fixed-batch files run
    their own batch size.
    """
    if isinstance(model, interpreter_type()):
        interpreter = model
    else:
        interpreter = load_interpreter(model, num_threads=num_threads)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    images = np.asarray(images, dtype=np.float32)
    dynamic = int(inp["shape_signature"][0]) == -1
    step = batch_size if dynamic else int(inp["shape"][0])
    current = None
    results = []
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        n = len(chunk)
        if not dynamic and n < step:  # pad the last batch of a fixed-batch model
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
        if dynamic and current != len(chunk):
            interpreter.resize_tensor_input(inp["index"], [len(chunk), *inp["shape"][1:]])
            interpreter.allocate_tensors()
            current = len(chunk)
        elif current is None:
            interpreter.allocate_tensors()
            current = step
        interpreter.set_tensor(inp["index"], quantize_input(chunk, inp))
        interpreter.invoke()
        results.append(dequantize_output(interpreter.get_tensor(out["index"]), out)[:n])
    return np.concatenate(results)


def interpreter_type():
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter
