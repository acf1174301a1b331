"""``tfxfer export MODEL DATA``: a .keras model to verified TFLite variants (and a SavedModel); text
classifiers and NER models to token-id TFLite files with their tokenizer beside. ``--format onnx``
(or ``tflite,onnx``) also writes ``<out>/model.onnx``, run in onnxruntime and judged by the same gate
on the same images (`tfxfer.export.export_onnx`; image models, the ``onnx`` extra).

Example:
    >>> from tfxfer.cli import main
    >>> main(["export", "runs/quick", "animal_mnist", "--variants", "float32,int8"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import os
import sys

from tfxfer.cli.common import (EXIT_GATE, EXIT_OK, add_json, add_verbosity, check_data_argument, check_model_path, emit_json,
                               import_tensorflow, show, verbosity)
from tfxfer.errors import ArgumentError, UnknownNameError
from tfxfer.utils.validate import check_safe_name


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a .keras model to verified TFLite variants (and a SavedModel)")
    p.add_argument("model", help="a .keras file or a run directory")
    p.add_argument("data", help="held-out labelled data for the gate: packaged name, folder or CSV; for text "
                   "models a text set / table (wnut16 or a CoNLL file for NER)")
    p.add_argument("--variants", help="comma-separated: float32,float16,dynamic,int8 (default float32,int8; "
                   "float32,dynamic for text models, which may also ask for weight_only: int8 weights, float "
                   "arithmetic)")
    p.add_argument("--format", default="tflite", help="tflite (default), onnx, or tflite,onnx: ONNX is gated "
                   "in onnxruntime on the same images (image models; pip install 'tfxfer[onnx]')")
    p.add_argument("--out", default="export", help="output folder (default ./export)")
    p.add_argument("--split", default="test", help="split of a packaged data set (default test)")
    p.add_argument("--limit", type=int, default=1000, help="images (texts) the gate checks (default 1000)")
    p.add_argument("--calibration", metavar="DATA", help="training images for int8 calibration (default: the "
                   "packaged set's train split; for a folder or CSV give one: the gate's data is never used)")
    p.add_argument("--num-calibration", type=int, default=500, help="calibration images (default 500)")
    p.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                   help="int8 gate: largest accuracy drop in points (default 1.0)")
    p.add_argument("--min-agreement", type=float, metavar="FRACTION",
                   help="float16/dynamic (and onnx) gate: smallest top-1 agreement with Keras (default 0.99)")
    p.add_argument("--text-column", default="text", help="text column / JSONL field of a table (default text)")
    p.add_argument("--label-column", default="label", help="label column / JSONL field of a table (default label)")
    p.add_argument("--no-benchmark", action="store_true", help="skip the LiteRT latency benchmark")
    p.add_argument("--saved-model", metavar="NAME", help="also write a TF Serving SavedModel under this name")
    p.add_argument("--keep-failed", action="store_true", help="keep files that fail the gate (marked FAIL in "
                   "their sidecar; the device runner refuses them without --allow-failed)")
    add_verbosity(p)
    add_json(p)


def _variants(text: str | None, default: str) -> tuple:
    return tuple(v.strip() for v in (text or default).split(",") if v.strip())


def check_arguments(args) -> None:
    """Every option ``tfxfer export`` can check without TensorFlow, before any work (and any file):
    counts >= 1, gate limits finite and in range, variant names, the SavedModel name.

    Example:
        >>> import argparse
        >>> check_arguments(argparse.Namespace(limit=0, num_calibration=500, min_agreement=None,
        ...                                    max_accuracy_drop=None, variants=None, saved_model=None))
        Traceback (most recent call last):
        ...
        tfxfer.errors.ArgumentError: `--limit` must be an int >= 1. Received: --limit=0
    """
    from tfxfer.recipes.config import THRESHOLD_RANGES, THRESHOLD_VARIANTS  # no TensorFlow
    from tfxfer.utils.validate import check_float, check_int

    check_int("--limit", args.limit, low=1)
    check_int("--num-calibration", args.num_calibration, low=1)
    for flag, key in (("--min-agreement", "min_top1_agreement"), ("--max-accuracy-drop", "max_accuracy_drop")):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:  # the same ranges as a recipe's export.thresholds and the gate's own check
            low, high = THRESHOLD_RANGES[key]
            check_float(flag, value, low=low, high=high)
    if args.variants is not None:
        asked = _variants(args.variants, "")
        if not asked:
            raise ArgumentError("--variants", args.variants, "must name at least one of "
                                + ", ".join(THRESHOLD_VARIANTS))
        for name in asked:
            if name not in THRESHOLD_VARIANTS:
                raise UnknownNameError("--variants entry", name, THRESHOLD_VARIANTS)
        if len(set(asked)) != len(asked):
            raise ArgumentError("--variants", args.variants, "must name each variant once")
    if args.saved_model is not None:
        check_safe_name("--saved-model", args.saved_model, use="it names the folder <out>/serving/<name>")


def _formats(text: str) -> tuple:
    """``("tflite",)``, ``("onnx",)`` or both, from ``--format`` (checked before TensorFlow)."""
    asked = tuple(f.strip().lower() for f in str(text).split(",") if f.strip())
    for name in asked:
        if name not in ("tflite", "onnx"):
            raise UnknownNameError("format", name, ("tflite", "onnx"))
    if not asked or len(set(asked)) != len(asked):
        raise ArgumentError("--format", text, "must be tflite, onnx or tflite,onnx")
    return asked


def _emit(args, rows, report, failed) -> None:
    """``--json``: one row per exported file (schema tfxfer/1, `tfxfer.cli.json_output`); a failed gate
    is exit code 3 with a GateError error object."""
    error = {"type": "GateError", "message": f"gate failed for {', '.join(failed)}"} if failed else None
    emit_json(args, exit_code=EXIT_GATE if failed else EXIT_OK, error=error, model=os.path.abspath(args.model),
              out=os.path.abspath(args.out), report=report, variants=rows)


def _thresholds(args) -> dict:
    out = {}
    if args.max_accuracy_drop is not None:
        out["int8"] = {"max_accuracy_drop": args.max_accuracy_drop}
    if args.min_agreement is not None:
        out.update({v: {"min_top1_agreement": args.min_agreement} for v in ("float16", "dynamic", "weight_only")})
    return out


def _finish(args, table, *, files_note: str, onnx=None) -> int:
    """Print (or ``--json``) the table; failed files are removed unless ``--keep-failed``; exit 3 if any failed.
    ``table`` is the TFLite `ExportTable` (or None); ``onnx`` the `OnnxExport` (or None)."""
    from tfxfer.export import remove_failed
    from tfxfer.export.table import export_rows

    failed = list(table.gate.failed) if table is not None else []
    removed = remove_failed(table) if failed and not args.keep_failed else []
    rows = list(table.rows) if table is not None else []
    reasons = {v: table.gate[v].failures for v in failed}
    if onnx is not None:
        rows += export_rows({"onnx": (onnx.path, onnx.size_bytes)}, {"onnx": onnx.gate}, {}, threads=(1, 2))
        if not onnx.gate.passed:
            failed.append("onnx")
            reasons["onnx"] = onnx.gate.failures
            if not args.keep_failed:
                removed += [p for p in (onnx.path, onnx.sidecar_path) if os.path.exists(p)]
                for path in (onnx.path, onnx.sidecar_path):
                    os.remove(path)
    report = table.report_path if table is not None else (onnx.sidecar_path if onnx is not None else None)
    if args.json:
        _emit(args, rows, report, failed)
    else:
        if table is not None:
            print(table.format())
        if onnx is not None:
            g = onnx.gate
            print(f"onnx (onnxruntime) {onnx.size_bytes / 1024:.1f} KiB  top-1 agreement {g.top1_agreement:.4f}  "
                  f"accuracy {g.tflite_accuracy:.4f}  drop {g.accuracy_drop:.2f} pts  max abs error "
                  f"{g.max_abs_error:.2e}  {'pass' if g.passed else 'FAIL'}")
        print(f"Files in {show(os.path.abspath(args.out))} ({files_note}; report: {show(report) if report else '-'})")
    if failed:
        kept = "kept, marked FAIL in their sidecars" if args.keep_failed else (
            f"removed ({len(removed)} files; --keep-failed keeps them)")
        print(f"Gate failed for {', '.join(failed)}: {kept}. The files that passed are written.", file=sys.stderr)
        for variant in failed:
            for reason in reasons[variant]:
                print(f"  {variant}: {reason}", file=sys.stderr)
        return EXIT_GATE
    return EXIT_OK


def calibration_data(args, model):
    """Training images for int8 calibration, never the gate's data; the record says where they came from.
    (``tfxfer benchmark`` calibrates by the same rule.)"""
    from tfxfer.recipes.inference import evaluation_data

    source = args.calibration
    if source is None:
        from tfxfer.data import list_datasets

        if args.data.strip().lower().replace("-", "_") not in list_datasets():
            raise ArgumentError("calibration", None, "is required for int8 when DATA is a folder or CSV table",
                                hint="Pass --calibration TRAINING_DATA (the gate's own images would calibrate "
                                     "the file it then checks), or --variants without int8")
        source, split = args.data, "train"
    else:
        split = "train"
    same_files = os.path.exists(source) and os.path.abspath(source) == os.path.abspath(args.data)
    if same_files or (source == args.data and split == args.split):
        raise ArgumentError("calibration", source, "is the gate's own data: calibrate on training images",
                            hint="Pass --calibration TRAINING_FOLDER (or CSV)")
    x, _, _ = evaluation_data(source, image_size=model.image_size, channels=model.channels, split=split,
                              limit=args.num_calibration)
    return x, {"source": source, "split": split if not os.path.exists(source) else None, "images": int(len(x))}


def cmd_export(args) -> int:
    formats = _formats(args.format)
    check_arguments(args)
    if check_model_path(args.model).endswith(".tflite"):  # a wrong model or data set fails before TensorFlow
        raise ArgumentError("model", args.model, "must be a .keras model (or a run directory) to export")
    check_data_argument(args.data)
    import_tensorflow(args)
    # these import TensorFlow: loaded after import_tensorflow hid its start-up logs
    from tfxfer.export import export_all
    from tfxfer.recipes.inference import evaluation_data, open_model

    model = open_model(args.model)
    if model.kind != "keras":
        raise ArgumentError("model", args.model, "must be a .keras model (or a run directory) to export")
    if model.image_size is None:  # a text classifier or NER model
        if "onnx" in formats:
            raise ArgumentError("--format", args.format, "onnx is for image models; text models export to TFLite")
        return _export_text(args, model)
    x, y, names = evaluation_data(args.data, image_size=model.image_size, channels=model.channels, split=args.split,
                                  class_names=model.class_names, limit=args.limit)
    table = onnx = None
    if "tflite" in formats:
        variants = _variants(args.variants, "float32,int8")
        calibration, record = calibration_data(args, model) if "int8" in variants else (None, None)
        table = export_all(model.model, args.out, variants=variants, representative_data=calibration,
                           num_calibration=args.num_calibration, eval_data=(x, y), class_names=names,
                           benchmark=not args.no_benchmark, keep_failed=True, serving_name=args.saved_model,
                           thresholds=_thresholds(args), calibration_record=record)
    if "onnx" in formats:
        from tfxfer.export import export_onnx

        limits = {"onnx": {"min_top1_agreement": args.min_agreement}} if args.min_agreement is not None else None
        onnx = export_onnx(model.model, os.path.join(args.out, "model.onnx"), eval_data=(x, y), class_names=names,
                           thresholds=limits, keep_failed=True)
    notes = " and ".join(n for f, n in (("tflite", "each .tflite with its .json sidecar"),
                                        ("onnx", "model.onnx with model.json")) if f in formats)
    return _finish(args, table, files_note=notes, onnx=onnx)


def _export_text(args, model) -> int:
    # loaded here, not at `tfxfer --help` (tfxfer.recipes imports numpy; tfxfer.export imports TensorFlow)
    from tfxfer.export import export_all
    from tfxfer.recipes.console import Console
    from tfxfer.recipes.text_eval import gate_data

    bars = []  # created when the benchmark starts, so errors before it stay one line

    def progress(done, total):
        if not bars:
            bars.append(Console(verbosity=verbosity(args), stream=sys.stderr).counter(
                desc="benchmark (LiteRT)", unit="block"))
        bars[0].update(done, total)

    eval_data = gate_data(model, args.data, split=args.split, limit=args.limit, text_column=args.text_column,
                          label_column=args.label_column)
    try:
        table = export_all(model.model, args.out, variants=_variants(args.variants, "float32,dynamic"),
                           eval_data=eval_data, class_names=model.class_names, name=model.model.name,
                           benchmark=not args.no_benchmark, threads=(1,), bench_runs=30, bench_memory=False,
                           keep_failed=True, serving_name=args.saved_model, progress=progress,
                           thresholds=_thresholds(args))
    finally:
        for bar in bars:
            bar.close()
    return _finish(args, table, files_note="each .tflite with its .json sidecar and tokenizer files")
