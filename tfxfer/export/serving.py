"""TF Serving companions of a SavedModel: warm-up requests and a ``models.config`` snippet.

Warm-up records are ``tensorflow_serving.apis.prediction_log_pb2.PredictionLog`` protos in a
TFRecord file at ``<version>/assets.extra/tf_serving_warmup_requests``; TF Serving replays them
when it loads the version, so the first real request does not pay for graph initialisation.

Example:
    >>> from tfxfer.export.serving import models_config
    >>> print(models_config({"animals": "/models/animals"}))
    model_config_list {
      config {
        name: "animals"
        base_path: "/models/animals"
        model_platform: "tensorflow"
      }
    }
    <BLANKLINE>
"""

from __future__ import annotations

import os
import re

import numpy as np

from tfxfer.errors import MissingDependencyError

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


def _apis():
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise MissingDependencyError("tensorflow-serving-api", "pip install tensorflow-serving-api",
                                     "TF Serving warm-up requests") from exc
    return predict_pb2, prediction_log_pb2


def warmup_requests(*, model_name: str, requests: list[tuple[str, dict]]) -> list:
    """``PredictionLog`` protos for ``[(signature_name, {input_name: array})]``."""
    import tensorflow as tf

    predict_pb2, prediction_log_pb2 = _apis()
    logs = []
    for signature, inputs in requests:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(version_dir, logs) -> str:
    """Write ``logs`` to ``<version_dir>/assets.extra/tf_serving_warmup_requests``; return the path."""
    import tensorflow as tf

    directory = os.path.join(os.fspath(version_dir), WARMUP_DIR)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, WARMUP_FILE)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path


def read_warmup(path) -> list:
    """Parse a warm-up file back into ``PredictionLog`` protos (raises on a malformed record)."""
    import tensorflow as tf

    _, prediction_log_pb2 = _apis()
    logs = []
    for record in tf.data.TFRecordDataset(os.fspath(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record)
        logs.append(log)
    return logs


def request_inputs(log) -> dict[str, np.ndarray]:
    """The inputs of a warm-up ``PredictionLog`` as numpy arrays."""
    import tensorflow as tf

    return {k: tf.make_ndarray(v) for k, v in log.predict_log.request.inputs.items()}


def models_config(models: dict[str, str]) -> str:
    """A TF Serving ``--model_config_file`` text proto for ``{name: base_path}``."""
    lines = ["model_config_list {"]
    for name, base_path in sorted(models.items()):
        lines += ["  config {", f'    name: "{name}"', f'    base_path: "{base_path}"',
                  '    model_platform: "tensorflow"', "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def served_models(base_dir) -> list[str]:
    """Names of ``<base_dir>/<name>/`` folders holding at least one ``<int>/saved_model.pb``."""
    base_dir = os.fspath(base_dir)
    names = []
    if not os.path.isdir(base_dir):
        return names
    for name in sorted(os.listdir(base_dir)):
        folder = os.path.join(base_dir, name)
        if not os.path.isdir(folder):
            continue
        if any(re.fullmatch(r"\d+", v) and os.path.isfile(os.path.join(folder, v, "saved_model.pb"))
               for v in os.listdir(folder)):
            names.append(name)
    return names


def write_models_config(base_dir, *, serving_base_path: str | None = None) -> str:
    """Write ``<base_dir>/models.config`` listing every served model found in ``base_dir``.

    Args:
        base_dir: the folder holding ``<name>/<version>/`` SavedModels.
        serving_base_path: the folder as the server sees it (e.g. ``"/models"`` inside the
            ``tensorflow/serving`` container); default: the absolute local path.
    """
    from tfxfer.utils.atomic import atomic_write_text

    base_dir = os.fspath(base_dir)
    root = serving_base_path or os.path.abspath(base_dir)
    entries = {name: f"{root.rstrip('/')}/{name}" for name in served_models(base_dir)}
    path = os.path.join(base_dir, "models.config")
    atomic_write_text(path, models_config(entries))
    return path
