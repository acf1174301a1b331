"""THE export workflow, for image and text models: pre-flight -> convert every variant -> verify each
on held-out data (the gate) -> benchmark side by side in LiteRT -> optional SavedModel.

`export_all` runs it in one call. Its steps are public for callers that run them apart (the recipe
runner converts in one stage and gates in the next, so either can be resumed): `convert_variants`,
`gate_variants`, `benchmark_variants`, `export_serving`, and `tfxfer.export.table`'s `export_rows` /
`write_verdicts`.

Image models (raw 0-255 pixels in): float32, float16, dynamic and full-integer int8 (calibrated on
``representative_data``). Text models (tfxfer text classifiers and token classifiers): token-id
files (float32, float16, dynamic) with a sidecar and their own tokenizer files beside them
(``<name>_<variant>.vocab.txt``, ...: models of several names share a folder; `tfxfer.export.text_tflite`);
``eval_data`` is texts or ``(texts, labels)``; the SavedModel takes raw strings (sequence classifiers only).

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

import dataclasses
import os
import shutil

from tfxfer.errors import ArgumentError, ArgumentTypeError, GateError
from tfxfer.export import _trace
from tfxfer.export.bench import benchmark_many
from tfxfer.export.data import check_image_shape, keras_reference, sample_images
from tfxfer.export.gate import resolve_thresholds
from tfxfer.export.metadata import check_class_names, check_gateable
from tfxfer.export.preflight import preflight_traced
from tfxfer.export.savedmodel import check_folder, export_saved_model
from tfxfer.export.staging import make_staging, remove_stale_staging
from tfxfer.export.table import ExportTable, export_rows, write_verdicts
from tfxfer.export.text_gate import check_text_eval_data, is_text_model, split_text_data
from tfxfer.export.text_savedmodel import export_text_saved_model
from tfxfer.export.text_tflite import TEXT_VARIANTS, export_text_tflite, tokenizer_file_names
from tfxfer.export.tflite import VARIANTS, _check_options, export_tflite_traced
from tfxfer.export.verification import image_eval_data, verify
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
    if isinstance(variants, str):  # "float32" is one variant, not the characters f, l, o, ...
        variants = (variants,)
    if isinstance(variants, bytes) or not hasattr(variants, "__iter__"):
        raise ArgumentTypeError("variants", variants, "a variant name or a list of them")
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
    return _convert_variants(model, out_dir, variants=variants, representative_data=representative_data,
                             class_names=class_names, name=name, num_calibration=num_calibration,
                             input_type=input_type, output_type=output_type, seed=seed, run_preflight=run_preflight,
                             progress=progress, calibration_record=calibration_record, traces=None)


def _convert_variants(model, out_dir, *, variants, representative_data, class_names, name, num_calibration,
                      input_type, output_type, seed, run_preflight, progress, calibration_record, traces):
    """`convert_variants` through ``traces`` (`_trace.Traces`: export_all's, which its pre-flight filled;
    None: a new one), so the pre-flight and the variants trace the model once and the float32 file is
    the pre-flight's trial conversion."""
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
    traces = traces or _trace.Traces(model)
    if run_preflight:
        preflight_traced(traces)
    for i, variant in enumerate(variants):
        is_int8 = variant == "int8"
        exports[variant] = export_tflite_traced(
            traces, os.path.join(out_dir, f"{name}_{variant}.tflite"), variant=variant,
            representative_data=representative_data if is_int8 else None, num_calibration=num_calibration,
            input_type=input_type if is_int8 else None, output_type=output_type if is_int8 else None,
            class_names=names, batch_size=None, run_preflight=False, sidecar=True, seed=seed,
            calibration_record=calibration_record if is_int8 else None)
        if progress:
            progress(i + 1, len(variants))
    return exports


def gate_variants(model, paths: dict, *, eval_data, class_names=None, thresholds=None, reference_outputs=None):
    """`tfxfer.export.verify` of ``{variant: path}`` against ``model`` on ``eval_data`` without raising
    (the Keras outputs computed once, after ``eval_data`` is checked: size, channels, finite pixels,
    labels; or ``reference_outputs`` when given); returns the `GateReport`."""
    if model_kind(model) == "text":
        return verify(model, paths, eval_data, thresholds=thresholds, class_names=class_names,
                      raise_on_failure=False)
    image_shape = _trace.check_image_model(model)
    num_classes = _trace.num_outputs(model)
    images, labels = image_eval_data(eval_data, image_shape=image_shape, num_classes=num_classes,
                                     task=check_gateable(model), name="eval_data")
    reference = keras_reference(model, images, reference_outputs, num_classes=num_classes, batch_size=64)
    return verify(model, paths, (images, labels), thresholds=thresholds, class_names=class_names,
                  raise_on_failure=False, reference_outputs=reference)


def benchmark_variants(paths: dict, *, threads=(1, 2), runs: int = 50, memory: bool = True, progress=None) -> dict:
    """``{variant: BenchmarkResult}``: every file timed side by side in one LiteRT process
    (`tfxfer.export.benchmark_many`, interleaved rounds, so latency ratios are fair)."""
    measured = benchmark_many(list(paths.values()), threads=threads, runs=runs, memory=memory, progress=progress)
    return {variant: measured[path] for variant, path in paths.items()}


def export_serving(model, base_dir, *, name: str, class_names=None, eval_data=None,
                   serving_base_path: str | None = None):
    """A TF Serving SavedModel under ``<base_dir>/<name>/<version>/``: image bytes / pixels in for an
    image model (`export_saved_model`), raw strings in for a text classifier
    (`export_text_saved_model`, gated on the first 32 texts of ``eval_data``). ``serving_base_path``:
    the folder ``models.config`` names (default: ``base_dir``'s absolute path; give the final folder
    when ``base_dir`` is a staging folder moved into place afterwards)."""
    if model_kind(model) == "text":
        texts = split_text_data(eval_data)[0][:32] if eval_data is not None else None
        return export_text_saved_model(model, base_dir, name=name, class_names=class_names, eval_data=texts,
                                       serving_base_path=serving_base_path)[0]
    return export_saved_model(model, base_dir, name=name, class_names=class_names,
                              serving_base_path=serving_base_path)


def _export_files(export) -> list[str]:
    """The files one export wrote: the model file, its sidecar and (text files) its tokenizer files."""
    return [p for p in (export.files() if hasattr(export, "files") else (export.path, export.sidecar_path)) if p]


def remove_failed(table) -> list[str]:
    """Delete the files (sidecars and tokenizer files too) of the variants of ``table`` that failed the gate;
    returns the paths removed. The files that passed, the report and the SavedModel stay."""
    removed = []
    for variant in table.gate.failed:
        export = table.exports[variant]
        for path in _export_files(export):
            if os.path.exists(path):
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
    also record the gate result; text files also get their own tokenizer files,
    ``<name>_<variant>.vocab.txt`` or ``.vocab.json`` + ``.merges.txt``, named in the sidecar with their
    sha256: models of several names share a folder, each with its own vocabulary),
    ``<out_dir>/<name>_export_report.json``, and with ``serving_name`` a SavedModel under
    ``<out_dir>/serving/<serving_name>/<version>/`` (written when asked, whatever the TFLite files did).

    Every argument and the data are checked before any work (typed errors naming the argument). The
    files are written to a staging folder and moved into ``out_dir`` only when the run completes, so a
    failure leaves ``out_dir`` as it was (a staging folder that a killed run left behind is removed by the
    next run: `tfxfer.export.staging`); a completed run replaces this ``name``'s files of an earlier
    run, and removes those it did not produce (`variant_files`): ``out_dir`` then holds exactly what the
    report describes.

    Args:
        model: a single-input image ``keras.Model`` taking raw 0-255 pixels, or a tfxfer text
            model (raw strings in).
        out_dir: output folder.
        variants: a variant name or a list of them. Image: any of "float32", "float16", "dynamic", "int8"
            (default all four); text: any of "float32", "float16", "dynamic" (default float32 and dynamic).
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
            per-class details; the failing files are removed, the report lists them under "removed").
        ArgumentError: ``out_dir`` is a file, a bad ``name``, ``variants``, ``thresholds``...
        DataError: ``eval_data`` / ``representative_data`` of the wrong size or channels, with a NaN or
            infinite pixel (its position named), or labels of the wrong form.
        ModelError: a regression model (the gate judges classifiers and multi-label sigmoid models).
    """
    kind = model_kind(model)
    check_safe_name("name", name, use="it prefixes the file names in out_dir")
    out_dir = check_folder("out_dir", out_dir, inside="serving" if serving_name else None)
    if serving_name is not None:
        check_safe_name("serving_name", serving_name)
    resolve_thresholds(thresholds)  # every limit a finite number, before any work
    pre = reference = traces = None
    if kind == "text":  # check the data before converting anything
        variants = _check_variants(variants or TEXT_DEFAULT_VARIANTS, kind)
        eval_data = check_text_eval_data(model, eval_data)  # labels checked against the model too
        if serving_name and text_parts(model).pool.mode == "tokens":
            raise ArgumentError("serving_name", serving_name, "is for text classifiers: token classifiers (NER) "
                                "ship as TFLite, the word alignment runs on the client")
    else:
        image_shape = _trace.check_image_model(model)
        task = check_gateable(model)  # a regression model: ModelError naming its task
        num_classes = _trace.num_outputs(model)
        check_class_names(class_names, num_classes)
        variants = _check_variants(variants or IMAGE_DEFAULT_VARIANTS, kind)
        eval_data = image_eval_data(eval_data, image_shape=image_shape, num_classes=num_classes, task=task,
                                    name="eval_data")
        if "int8" in variants:
            _check_options("int8", input_type, output_type, representative_data)
            # the calibration subset, drawn once (export_tflite draws the same one: seeded) and checked
            representative_data = sample_images(representative_data, num_samples=num_calibration, seed=seed)
            check_image_shape(representative_data, image_shape, name="representative_data")
        traces = _trace.Traces(model)  # one trace per graph for the pre-flight and every variant
        pre = preflight_traced(traces)
        reference = keras_reference(model, eval_data[0], num_classes=num_classes, batch_size=64)
    os.makedirs(out_dir, exist_ok=True)
    # Every file is written to a staging folder and moved in only when the run got that far: a failure
    # before leaves out_dir (files, sidecars, report) as the previous run left it.
    # A staging folder that a run killed outright (SIGKILL, a power cut) left here is removed first.
    remove_stale_staging(out_dir)
    staging = make_staging(out_dir, name)
    try:
        exports = _convert_variants(model, staging, variants=variants, representative_data=representative_data,
                                    class_names=class_names, name=name, num_calibration=num_calibration,
                                    input_type=input_type, output_type=output_type, seed=seed, run_preflight=False,
                                    progress=None, calibration_record=calibration_record, traces=traces)
        paths = {v: e.path for v, e in exports.items()}
        gate = gate_variants(model, paths, eval_data=eval_data, class_names=class_names, thresholds=thresholds,
                             reference_outputs=reference)
        benches = benchmark_variants(paths, threads=threads, runs=bench_runs, memory=bench_memory,
                                     progress=progress) if benchmark else {}
        write_verdicts({v: e.sidecar_path for v, e in exports.items()}, gate.results)
        saved = None
        if serving_name:  # asked for: written even when a quantized file failed (it checks itself against Keras)
            saved = export_serving(model, os.path.join(out_dir, "serving"), name=serving_name,
                                   class_names=class_names, eval_data=eval_data)
        removed = [] if keep_failed else list(gate.failed)
        exports, gate, benches = _move_in(staging, out_dir, name, exports, gate, benches, drop=removed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    rows = export_rows({v: (e.path, e.size_bytes) for v, e in exports.items()}, gate.results, benches, threads=threads)
    report_path = report_file(out_dir, name)
    table = ExportTable(rows=rows, exports=exports, gate=gate, preflight=pre, benchmarks=benches,
                        report_path=report_path, saved_model=saved, kind=kind, removed=removed)
    atomic_write_json(report_path, table.to_dict())
    if removed:
        raise GateError(
            f"Verification gate failed for {gate.failed}; their files were removed "
            f"(pass keep_failed=True to keep them). Report: {report_path}\n{gate.format()}",
            report=gate,
        )
    return table


def report_file(out_dir, name: str) -> str:
    """``<out_dir>/<name>_export_report.json``: the report `export_all` writes."""
    return os.path.join(os.fspath(out_dir), f"{name}_export_report.json")


def variant_files(name: str) -> list[str]:
    """The file names `export_all` owns in its folder for ``name``: ``<name>_<variant>.tflite``, its
    ``.json`` sidecar and its tokenizer files (`tfxfer.export.text_tflite.tokenizer_file_names`) for every
    variant it can make (image and text). A run removes those it did not produce, so a file of an earlier
    run never sits beside the new ones as if current."""
    files = []
    for variant in sorted(set(VARIANTS) | set(TEXT_VARIANTS)):
        stem = f"{name}_{variant}"
        files += [stem + ".tflite", stem + ".json", *tokenizer_file_names(stem)]
    return files


def _move_in(staging: str, out_dir: str, name: str, exports: dict, gate, benches: dict, *, drop):
    """Move the files of a finished run from ``staging`` into ``out_dir`` (but the variants in ``drop``,
    which failed their gate), after removing the old report and this name's files of earlier runs;
    returns ``exports``, ``gate`` and ``benches`` with their paths in ``out_dir``."""
    dropped = {os.path.basename(p) for v in drop for p in _export_files(exports[v])}
    incoming = sorted(f for f in os.listdir(staging) if f not in dropped)
    old_report = report_file(out_dir, name)
    if os.path.exists(old_report):  # first: an interruption below leaves no report rather than a wrong one
        os.remove(old_report)
    for stale in variant_files(name):
        path = os.path.join(out_dir, stale)
        if stale not in incoming and os.path.isfile(path):
            os.remove(path)
    for file in incoming:
        os.replace(os.path.join(staging, file), os.path.join(out_dir, file))

    def moved(path):
        if isinstance(path, str) and os.path.dirname(os.path.abspath(path)) == staging:
            return os.path.join(out_dir, os.path.basename(path))
        return path

    def relocate(item):
        fields = {f.name for f in dataclasses.fields(item)}
        changes = {k: moved(getattr(item, k)) for k in ("path", "sidecar_path", "vocab_path") if k in fields}
        if "tokenizer_paths" in fields:
            changes["tokenizer_paths"] = [moved(p) for p in item.tokenizer_paths]
        return dataclasses.replace(item, **changes)

    gate = dataclasses.replace(gate, results={v: relocate(r) for v, r in gate.results.items()})
    return ({v: relocate(e) for v, e in exports.items()}, gate, {v: relocate(b) for v, b in benches.items()})
