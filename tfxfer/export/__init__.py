"""Verified edge export and serving, for image and text models.

* `export_tflite` / `convert_tflite`: float32, float16, dynamic-range and full-integer int8 TFLite
  files (builtins only, preprocessing inside), with a sidecar JSON of labels and input details.
* `preflight`: lists TFLite ops; fails early, naming the layers, on augmentation layers, random
  ops, or ops that would need Flex.
* `export_text_tflite` / `convert_text_tflite`: token-id TFLite files of tfxfer text models, with the
  tokenizer files and a sidecar beside them; `export_text_saved_model`: a SavedModel on raw strings.
* `verify`: the gate; every file runs in LiteRT on held-out data (images, or texts) and is
  compared with Keras.
* `benchmark_tflite`: size, LiteRT latency (1 and N threads, median and p90), peak memory.
* `export_all`: THE workflow, all of the above in one call for an image or a text model, returning
  a table; its steps (`convert_variants`, `gate_variants`, `benchmark_variants`, `export_serving`,
  `export_rows`, `write_verdicts`) are what the recipe stages call.
* `convert_decoder_tflite` / `save_decoder` / `decoder_gate`: a causal LM (`tfxfer.causal_lm`) as one
  TFLite decoder (builtin ops, explicit KV cache) gated on next-token agreement and perplexity;
  `int8_weights` rewrites a converted decoder's float weights to int8 (weight-only or hybrid).
* `export_saved_model`: a versioned TF Serving SavedModel (bytes and tensor signatures,
  warm-up requests, models.config).
* `export_onnx` / `verify_onnx` / `predict_onnx` / `benchmark_onnx`: an ONNX file (Keras 3
  ``export(format="onnx")``) run in onnxruntime and judged by the same gate (the ``onnx`` extra;
  loaded on first use).

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
from tfxfer.export.decoder_runner import TFLiteDecoder
from tfxfer.export.decoder_tflite import convert_decoder_tflite, save_decoder
from tfxfer.export.decoder_verification import DecoderGateReport, decoder_agreement, decoder_gate
from tfxfer.export.gate import DEFAULT_THRESHOLDS, GateReport, Thresholds, VariantResult
from tfxfer.export.int8_per_row import int8_weights
from tfxfer.export.metadata import read_sidecar, sidecar_path
from tfxfer.export.preflight import PreflightReport, preflight
from tfxfer.export.savedmodel import SavedModelExport, check_saved_model, export_saved_model
from tfxfer.export.serving import models_config, read_warmup, write_models_config
from tfxfer.export.table import ExportTable, export_rows, write_verdicts
from tfxfer.export.text_gate import predict_text_tflite
from tfxfer.export.text_savedmodel import export_text_saved_model
from tfxfer.export.text_tflite import TEXT_VARIANTS, TextTFLiteExport, convert_text_tflite, export_text_tflite
from tfxfer.export.tflite import VARIANTS, TFLiteExport, convert_tflite, export_tflite
from tfxfer.export.verification import verify
from tfxfer.export.workflow import (
    benchmark_variants,
    convert_variants,
    export_all,
    export_serving,
    gate_variants,
    model_kind,
    remove_failed,
)

__all__ = [
    "BenchmarkResult", "DEFAULT_THRESHOLDS", "DecoderGateReport", "TFLiteDecoder", "convert_decoder_tflite",
    "decoder_agreement", "decoder_gate", "int8_weights", "save_decoder", "ExportTable", "GateReport", "PreflightReport",
    "SavedModelExport", "TEXT_VARIANTS", "TFLiteExport", "TextTFLiteExport", "Thresholds", "VARIANTS",
    "VariantResult", "benchmark_many", "benchmark_tflite", "benchmark_variants", "check_saved_model",
    "convert_text_tflite", "convert_tflite", "convert_variants", "export_all", "export_rows", "export_saved_model",
    "export_serving", "export_text_saved_model", "export_text_tflite", "export_tflite", "gate_variants",
    "model_kind", "models_config", "predict_text_tflite", "preflight", "read_sidecar", "read_warmup", "remove_failed",
    "sidecar_path", "verify", "write_models_config", "write_verdicts",
]

from tfxfer.utils.lazy import lazy_exports as _lazy_exports  # noqa: E402

#: Served on first use (tfxfer.export.onnx needs the optional tf2onnx / onnx / onnxruntime).
_EXPORTS = {
    "ONNX_THRESHOLDS": "tfxfer.export.onnx", "OnnxExport": "tfxfer.export.onnx", "benchmark_onnx": "tfxfer.export.onnx",
    "export_onnx": "tfxfer.export.onnx", "predict_onnx": "tfxfer.export.onnx", "verify_onnx": "tfxfer.export.onnx",
}
__getattr__, _lazy_dir = _lazy_exports("tfxfer.export", _EXPORTS)


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
