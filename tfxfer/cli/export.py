"""``tfxfer export MODEL DATA``: a .keras model to verified TFLite variants (and a SavedModel); text
classifiers and NER models to token-id TFLite files with their tokenizer beside.

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
from tfxfer.errors import ArgumentError


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a .keras model to verified TFLite variants (and a SavedModel)")
    p.add_argument("model", help="a .keras file or a run directory")
    p.add_argument("data", help="held-out labelled data for the gate: packaged name, folder or CSV; for text "
                   "models a text set / table (wnut16 or a CoNLL file for NER)")
    p.add_argument("--variants", help="comma-separated: float32,float16,dynamic,int8 (default float32,int8; "
                   "float32,dynamic for text models)")
    p.add_argument("--out", default="export", help="output folder (default ./export)")
    p.add_argument("--split", default="test", help="split of a packaged data set (default test)")
    p.add_argument("--limit", type=int, default=1000, help="images (texts) the gate checks (default 1000)")
    p.add_argument("--calibration", metavar="DATA", help="training images for int8 calibration (default: the "
                   "packaged set's train split; for a folder or CSV give one: the gate's data is never used)")
    p.add_argument("--num-calibration", type=int, default=500, help="calibration images (default 500)")
    p.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                   help="int8 gate: largest accuracy drop in points (default 1.0)")
    p.add_argument("--min-agreement", type=float, metavar="FRACTION",
                   help="float16/dynamic gate: smallest top-1 agreement with Keras (default 0.99)")
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


def _emit(args, table) -> None:
    """``--json``: the export table's rows (schema tfxfer/1, `tfxfer.cli.json_output`)."""
    emit_json(args, model=os.path.abspath(args.model), out=os.path.abspath(args.out), report=table.report_path,
              variants=table.rows)


def _thresholds(args) -> dict:
    out = {}
    if args.max_accuracy_drop is not None:
        out["int8"] = {"max_accuracy_drop": args.max_accuracy_drop}
    if args.min_agreement is not None:
        out.update({v: {"min_top1_agreement": args.min_agreement} for v in ("float16", "dynamic")})
    return out


def _finish(args, table, *, files_note: str) -> int:
    """Print (or ``--json``) the table; failed files are removed unless ``--keep-failed``; exit 3 if any failed."""
    from tfxfer.export import remove_failed

    failed = table.gate.failed
    removed = remove_failed(table) if failed and not args.keep_failed else []
    if args.json:
        _emit(args, table)
    else:
        print(table.format())
        print(f"Files in {show(os.path.abspath(args.out))} ({files_note}; report: {show(table.report_path)})")
    if failed:
        kept = "kept, marked FAIL in their sidecars" if args.keep_failed else (
            f"removed ({len(removed)} files; --keep-failed keeps them)")
        print(f"Gate failed for {', '.join(failed)}: {kept}. The files that passed are written.", file=sys.stderr)
        for variant in failed:
            for reason in table.gate[variant].failures:
                print(f"  {variant}: {reason}", file=sys.stderr)
        return EXIT_GATE
    return EXIT_OK


def _calibration(args, model, gate_images):
    """Training images for int8 calibration, never the gate's data; the record says where they came from."""
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
        return _export_text(args, model)
    x, y, names = evaluation_data(args.data, image_size=model.image_size, channels=model.channels, split=args.split,
                                  class_names=model.class_names, limit=args.limit)
    variants = _variants(args.variants, "float32,int8")
    calibration, record = _calibration(args, model, x) if "int8" in variants else (None, None)
    table = export_all(model.model, args.out, variants=variants, representative_data=calibration,
                       num_calibration=args.num_calibration, eval_data=(x, y), class_names=names,
                       benchmark=not args.no_benchmark, keep_failed=True, serving_name=args.saved_model,
                       thresholds=_thresholds(args), calibration_record=record)
    return _finish(args, table, files_note="each .tflite with its .json sidecar")


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
