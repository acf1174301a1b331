"""THE export workflow, for image and text models: pre-flight -> convert every variant -> verify each
on held-out data (the gate) -> benchmark side by side in LiteRT -> optional SavedModel.

`export_all` runs it in one call. Its steps are public for callers that run them apart (the recipe
runner converts in one stage and gates in the next, so either can be resumed): `convert_variants`,
`gate_variants`, `benchmark_variants`, `export_serving`, and `tfxfer.export.table`'s `export_rows` /
`write_verdicts`.

Image models (raw 0-255 pixels in): float32, float16, dynamic and full-integer int8 (calibrated on
``representative_data``). Text models (tfxfer text classifiers and token classifiers): token-id
files (float32, float16, dynamic) with the tokenizer files and a sidecar beside them
(`tfxfer.export.text_tflite`); ``eval_data`` is texts or ``(texts, labels)``; the SavedModel takes
raw strings (sequence classifiers only).

Example:
    >>> import numpy as np, keras, tempfile
    >>> from tfxfer.export import export_all
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> x = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 3)).astype("float32")
    >>> y = model.predict(x, verbose=0).argmax(1)
    >>> table = export_all(model, tempfile.mkdtemp(), variants=("float32", "float16"),
    ...                    eval_data=(x, y), benchmark=False)
    >>> [row["variant"] for row in table.rows], table.passed
    (['float32', 'float16'], True)
"""

from __future__ import annotations

import os

import numpy as np

from tfxfer.errors import ArgumentError, GateError
from tfxfer.export import _trace
from tfxfer.export.bench import benchmark_many
from tfxfer.export.data import as_arrays
from tfxfer.export.metadata import check_class_names
from tfxfer.export.preflight import preflight
from tfxfer.export.savedmodel import export_saved_model
from tfxfer.export.table import ExportTable, export_rows, write_verdicts
from tfxfer.export.text_gate import is_text_model, split_text_data
from tfxfer.export.text_savedmodel import export_text_saved_model
from tfxfer.export.text_tflite import TEXT_VARIANTS, export_text_tflite
from tfxfer.export.tflite import VARIANTS, export_tflite
from tfxfer.export.verification import verify
from tfxfer.text.graph import text_parts
from tfxfer.utils.atomic import atomic_write_json
from tfxfer.utils.validate import check_safe_name

IMAGE_DEFAULT_VARIANTS = ("float32", "float16", "dynamic", "int8")
TEXT_DEFAULT_VARIANTS = ("float32", "dynamic")


def model_kind(model) -> str:
    """``"text"`` for a tfxfer text model, else ``"image"`` (checked when it is used)."""
    return "text" if is_text_model(model) else "image"


def _check_variants(variants, kind) -> tuple:
    allowed = TEXT_VARIANTS if kind == "text" else VARIANTS
    variants = tuple(variants)
    if not variants or len(set(variants)) != len(variants):
        raise ArgumentError("variants", variants, "must list distinct variants")
    if any(v not in allowed for v in variants):
        if kind == "text":
            raise ArgumentError("variants", list(variants), "must be some of " + ", ".join(allowed)
                                + " for a text model (full int8 is for image models)")
        raise ArgumentError("variants", variants, "may only contain " + ", ".join(allowed))
    return variants


def convert_variants(model, out_dir, *, variants=None, representative_data=None, class_names=None,
                     name: str = "model", num_calibration: int = 200, input_type: str = "uint8",
                     output_type: str = "float32", seed: int = 0, run_preflight: bool = True,
                     progress=None, calibration_record: dict | None = None) -> dict:
    """Pre-flight (image models; `ExportError` naming the layers), then write
    ``<out_dir>/<name>_<variant>.tflite`` and its sidecar for every variant; returns
    ``{variant: TFLiteExport | TextTFLiteExport}``.

    ``progress(done, total)``, if given, is called after each file. Other arguments: see `export_all`.
    """
    kind = model_kind(model)
    check_safe_name("name", name, use="it prefixes the file names in out_dir")
    variants = _check_variants(variants or (TEXT_DEFAULT_VARIANTS if kind == "text" else IMAGE_DEFAULT_VARIANTS), kind)
    out_dir = os.fspath(out_dir)
    exports = {}
    if kind == "text":
        os.makedirs(out_dir, exist_ok=True)
        for i, variant in enumerate(variants):
            exports[variant] = export_text_tflite(model, os.path.join(out_dir, f"{name}_{variant}.tflite"),
                                                  variant=variant, class_names=class_names)
            if progress:
                progress(i + 1, len(variants))
        return exports
    if "int8" in variants and representative_data is None:
        raise ArgumentError("representative_data", None, "is required when variants include 'int8'")
    _trace.check_image_model(model)
    names = check_class_names(class_names, _trace.num_outputs(model))
    os.makedirs(out_dir, exist_ok=True)
    if run_preflight:
        preflight(model)
    for i, variant in enumerate(variants):
        is_int8 = variant == "int8"
        exports[variant] = export_tflite(
            model, os.path.join(out_dir, f"{name}_{variant}.tflite"), variant=variant,
            representative_data=representative_data if is_int8 else None, num_calibration=num_calibration,
            input_type=input_type if is_int8 else None, output_type=output_type if is_int8 else None,
            class_names=names, run_preflight=False, seed=seed,
            calibration_record=calibration_record if is_int8 else None)
        if progress:
            progress(i + 1, len(variants))
    return exports


def gate_variants(model, paths: dict, *, eval_data, class_names=None, thresholds=None):
    """`tfxfer.export.verify` of ``{variant: path}`` against ``model`` on ``eval_data`` without raising
    (the Keras outputs computed once); returns the `GateReport`."""
    if model_kind(model) == "text":
        return verify(model, paths, eval_data, thresholds=thresholds, class_names=class_names,
                      raise_on_failure=False)
    images, labels = as_arrays(eval_data, name="eval_data")
    if labels is None:
        raise ArgumentError("eval_data", "images without labels", "must carry labels: (images, labels)")
    reference = np.asarray(model.predict(images, batch_size=64, verbose=0), dtype=np.float32)
    return verify(model, paths, (images, labels), thresholds=thresholds, class_names=class_names,
                  raise_on_failure=False, reference_outputs=reference)


def benchmark_variants(paths: dict, *, threads=(1, 2), runs: int = 50, memory: bool = True, progress=None) -> dict:
    """``{variant: BenchmarkResult}``: every file timed side by side in one LiteRT process
    (`tfxfer.export.benchmark_many`, interleaved rounds, so latency ratios are fair)."""
    measured = benchmark_many(list(paths.values()), threads=threads, runs=runs, memory=memory, progress=progress)
    return {variant: measured[path] for variant, path in paths.items()}


def export_serving(model, base_dir, *, name: str, class_names=None, eval_data=None):
    """A TF Serving SavedModel under ``<base_dir>/<name>/<version>/``: image bytes / pixels in for an
    image model (`export_saved_model`), raw strings in for a text classifier
    (`export_text_saved_model`, gated on the first 32 texts of ``eval_data``)."""
    if model_kind(model) == "text":
        texts = split_text_data(eval_data)[0][:32] if eval_data is not None else None
        return export_text_saved_model(model, base_dir, name=name, class_names=class_names, eval_data=texts)[0]
    return export_saved_model(model, base_dir, name=name, class_names=class_names)


def remove_failed(table) -> list[str]:
    """Delete the files (and sidecars) of the variants of ``table`` that failed the gate; returns the
    paths removed. The files that passed, the report and the SavedModel stay."""
    removed = []
    for variant in table.gate.failed:
        export = table.exports[variant]
        for path in (export.path, export.sidecar_path):
            if path and os.path.exists(path):
                os.remove(path)
                removed.append(path)
    return removed


def export_all(
    model,
    out_dir,
    *,
    variants=None,
    representative_data=None,
    eval_data,
    class_names=None,
    name: str = "model",
    num_calibration: int = 200,
    input_type: str = "uint8",
    output_type: str = "float32",
    thresholds=None,
    benchmark: bool = True,
    threads=(1, 2),
    bench_runs: int = 50,
    bench_memory: bool = True,
    keep_failed: bool = False,
    serving_name: str | None = None,
    seed: int = 0,
    progress=None,
    calibration_record: dict | None = None,
) -> ExportTable:
    """Export ``model`` to every TFLite variant, verify and benchmark each, and write a report.

    Files: ``<out_dir>/<name>_<variant>.tflite`` with ``<name>_<variant>.json`` sidecars (which
    also record the gate result; text files also get their tokenizer files),
    ``<out_dir>/<name>_export_report.json``, and with ``serving_name`` a SavedModel under
    ``<out_dir>/serving/<serving_name>/<version>/`` (written when asked, whatever the TFLite files did).

    Args:
        model: a single-input image ``keras.Model`` taking raw 0-255 pixels, or a tfxfer text
            model (raw strings in).
        out_dir: output folder.
        variants: image: any of "float32", "float16", "dynamic", "int8" (default all four); text:
            any of "float32", "float16", "dynamic" (default float32 and dynamic).
        representative_data: training images for int8 calibration (needed if "int8" is listed).
        eval_data: held-out ``(images, labels)`` (or a dataset) for the verification gate; for a
            text model texts or ``(texts, labels)``.
        class_names: one name per output (sidecars, reports, SavedModel).
        name: file name prefix.
        num_calibration: representative images used for int8 calibration.
        input_type / output_type: int8 variant's input and output types ("uint8", "int8", "float32").
        thresholds: ``{variant: Thresholds | dict}`` overriding the gate defaults.
        benchmark: time the files side by side in LiteRT (``threads``, ``bench_runs`` runs,
            ``bench_memory``: also peak memory per file).
        keep_failed: keep files that fail the gate (marked "FAIL") and return the table, instead of
            deleting them (`remove_failed`) and raising `GateError` (the passing files stay).
        serving_name: also write a TF Serving SavedModel under this name (text: classifiers only).
        seed: seed of the int8 calibration subset.
        calibration_record: where ``representative_data`` came from (``{"source", "split"}``), recorded
            in the int8 sidecar with the number of images and the seed. Calibrate on training data only,
            never on ``eval_data``.
        progress: ``progress(done, total)`` during the benchmark.

    Returns:
        An `ExportTable` (``.rows``, ``.format()``, ``.gate``, ``.benchmarks``).

    Raises:
        GateError: a variant failed the gate and ``keep_failed`` is False (``.report`` has the
            per-class details; the failing files are removed).
    """
    kind = model_kind(model)
    pre = None
    if kind == "text":  # check the data before converting anything
        eval_data = split_text_data(eval_data)
        if serving_name and text_parts(model).pool.mode == "tokens":
            raise ArgumentError("serving_name", serving_name, "is for text classifiers: token classifiers (NER) "
                                "ship as TFLite, the word alignment runs on the client")
    else:
        _trace.check_image_model(model)
        check_class_names(class_names, _trace.num_outputs(model))
        eval_data = as_arrays(eval_data, name="eval_data")
        if eval_data[1] is None:
            raise ArgumentError("eval_data", "images without labels", "must carry labels: (images, labels)")
        _check_variants(variants or IMAGE_DEFAULT_VARIANTS, kind)
        if "int8" in (variants or IMAGE_DEFAULT_VARIANTS) and representative_data is None:
            raise ArgumentError("representative_data", None, "is required when variants include 'int8'")
        pre = preflight(model)
    exports = convert_variants(model, out_dir, variants=variants, representative_data=representative_data,
                               class_names=class_names, name=name, num_calibration=num_calibration,
                               input_type=input_type, output_type=output_type, seed=seed, run_preflight=False,
                               calibration_record=calibration_record)
    paths = {v: e.path for v, e in exports.items()}
    gate = gate_variants(model, paths, eval_data=eval_data, class_names=class_names, thresholds=thresholds)
    benches = benchmark_variants(paths, threads=threads, runs=bench_runs, memory=bench_memory,
                                 progress=progress) if benchmark else {}
    rows = export_rows({v: (e.path, e.size_bytes) for v, e in exports.items()}, gate.results, benches, threads=threads)
    write_verdicts({v: e.sidecar_path for v, e in exports.items()}, gate.results)
    saved = None
    if serving_name:  # asked for: written even when a quantized file failed (it checks itself against Keras)
        saved = export_serving(model, os.path.join(os.fspath(out_dir), "serving"), name=serving_name,
                               class_names=class_names, eval_data=eval_data)
    report_path = os.path.join(os.fspath(out_dir), f"{name}_export_report.json")
    table = ExportTable(rows=rows, exports=exports, gate=gate, preflight=pre, benchmarks=benches,
                        report_path=report_path, saved_model=saved, kind=kind)
    atomic_write_json(report_path, table.to_dict())
    if not gate.passed and not keep_failed:
        remove_failed(table)
        raise GateError(
            f"Verification gate failed for {gate.failed}; their files were removed "
            f"(pass keep_failed=True to keep them). Report: {report_path}\n{gate.format()}",
            report=gate,
        )
    return table
