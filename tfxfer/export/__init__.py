"""Verified edge export and serving.

* `export_tflite` / `convert_tflite`: float32, float16, dynamic-range and full-integer int8 TFLite
  files (builtins only, preprocessing inside), with a sidecar JSON of labels and input details.
* `preflight`: lists TFLite ops; fails early, naming the layers, on augmentation layers, random
  ops, or ops that would need Flex.
* `verify`: the gate; every file runs in LiteRT on held-out data and is compared with Keras.
* `benchmark_tflite`: size, LiteRT latency (1 and N threads, median and p90), peak memory.
* `export_all`: all of the above in one call, returning a table.
* `export_saved_model`: a versioned TF Serving SavedModel (bytes and tensor signatures,
  warm-up requests, models.config).

The device side (no TensorFlow needed) is ``export/litert_runner.py`` at the repository root.

Example:
    >>> import numpy as np, keras, tempfile
    >>> import tfxfer.export as tx
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> x = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 3)).astype("float32")
    >>> y = model.predict(x, verbose=0).argmax(1)
    >>> table = tx.export_all(model, tempfile.mkdtemp(), variants=("float32", "int8"),
    ...                       representative_data=x, eval_data=(x, y), benchmark=False,
    ...                       thresholds={"int8": {"max_accuracy_drop": 100.0}})
    >>> [row["variant"] for row in table.rows]
    ['float32', 'int8']
"""

from tfxfer.export.bench import BenchmarkResult, benchmark_many, benchmark_tflite
from tfxfer.export.gate import DEFAULT_THRESHOLDS, GateReport, Thresholds, VariantResult, verify
from tfxfer.export.metadata import read_sidecar, sidecar_path
from tfxfer.export.preflight import PreflightReport, preflight
from tfxfer.export.savedmodel import SavedModelExport, check_saved_model, export_saved_model
from tfxfer.export.serving import models_config, read_warmup, write_models_config
from tfxfer.export.tflite import VARIANTS, TFLiteExport, convert_tflite, export_tflite
from tfxfer.export.workflow import ExportTable, export_all

__all__ = [
    "BenchmarkResult", "DEFAULT_THRESHOLDS", "ExportTable", "GateReport", "PreflightReport",
    "SavedModelExport", "TFLiteExport", "Thresholds", "VARIANTS", "VariantResult", "benchmark_many",
    "benchmark_tflite",
    "check_saved_model", "convert_tflite", "export_all", "export_saved_model", "export_tflite",
    "models_config", "preflight", "read_sidecar", "read_warmup", "sidecar_path", "verify",
    "write_models_config",
]
