"""``tfxfer benchmark MODEL DATA``: export a .keras image model to every supported format, gate each
file on the same held-out data, time it, and print one table (format, runtime, size, accuracy,
agreement with Keras, latency, pass/fail against a floor). Exit code 3 when a format misses its floor.

Formats: the four TFLite variants (`tfxfer.export.export_all`: float32, float16, dynamic, int8;
LiteRT, timed side by side in one process), ``onnx`` (`tfxfer.export.export_onnx`, onnxruntime;
needs the ``onnx`` extra and is skipped with a note when it is missing and not asked for by name)
and ``saved_model`` (`tfxfer.export.export_serving`, its ``serving_image`` signature run in
TensorFlow). Every file is judged by `tfxfer.export.gate.compare_outputs` against the Keras outputs
on the same images; the floor of each format is the gate's default for it (float32-like files:
top-1 agreement >= 99 % and max abs error <= 1e-4; float16/dynamic: agreement >= 99 %; int8:
accuracy drop <= 1 point), and ``--min-agreement`` / ``--max-accuracy-drop`` set one floor for all.
Latency is one image per call (median of ``--runs``) at 1 thread and at ``--threads``; SavedModel
runs on TensorFlow's own thread pool (its "1 thread" column is that). The files, their sidecars and
``benchmark.json`` (the rows) stay in ``--out``. The rows come from `tfxfer.export.formats`; this module
parses the arguments and prints.

Example:
    >>> from tfxfer.cli import main
    >>> main(["benchmark", "runs/quick", "animal_mnist", "--formats", "float32,onnx"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import datetime
import os
import json
import platform
import sys
import time

from tfxfer.cli.common import (EXIT_GATE, EXIT_OK, add_json, add_verbosity, check_data_argument, check_model_path,
                               emit_json, import_tensorflow, show, verbosity)
from tfxfer.errors import ArgumentError, UnknownNameError

TFLITE_FORMATS = ("float32", "float16", "dynamic", "int8")
#: Every format ``tfxfer benchmark`` knows, in the order of its table.
FORMATS = (*TFLITE_FORMATS, "onnx", "saved_model")
#: Upper bounds of the count flags (as the recipe keys ``export.bench_runs`` / ``export.threads``).
MAX_RUNS, MAX_THREADS, MAX_EXAMPLES = 1_000_000, 1024, 2**31 - 1


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="export to every format, gate and time each file, print one table",
                       description="Export a .keras image model to every supported format (TFLite float32, float16, "
                       "dynamic, int8; ONNX; SavedModel), verify each file against the Keras model on the same "
                       "held-out data, time it, and print one table with a pass/fail floor per format.")
    p.add_argument("model", help="a .keras file or a run directory")
    p.add_argument("data", help="held-out labelled images for the gate: packaged name, folder or CSV")
    p.add_argument("--formats", help="comma-separated subset of " + ",".join(FORMATS) + " (default all)")
    p.add_argument("--out", default="benchmark", help="output folder (default ./benchmark)")
    p.add_argument("--split", default="test", help="split of a packaged data set (default test)")
    p.add_argument("--limit", type=int, default=1000, help="images the gate checks (default 1000)")
    p.add_argument("--calibration", metavar="DATA", help="training images for int8 calibration (default: the "
                   "packaged set's train split; for a folder or CSV give one: the gate's data is never used)")
    p.add_argument("--num-calibration", type=int, default=500, help="calibration images (default 500)")
    p.add_argument("--min-agreement", type=float, metavar="FRACTION",
                   help="floor for every format: smallest top-1 agreement with Keras (default: each format's gate)")
    p.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                   help="floor for every format: largest accuracy drop in points (default: each format's gate)")
    p.add_argument("--runs", type=int, default=50, help="timed single-image calls per format and thread count "
                   "(default 50; 0 skips timing)")
    p.add_argument("--threads", type=int, default=2, help="the multi-thread latency column (default 2)")
    add_verbosity(p)
    add_json(p)


def parse_formats(text: str | None) -> tuple[tuple, bool]:
    """``(formats, named)``: the formats asked for, in table order, and whether the user named them.

    Example:
        >>> parse_formats("onnx,float32")
        (('float32', 'onnx'), True)
    """
    if text is None:
        return FORMATS, False
    asked = [f.strip().lower().replace("-", "_") for f in text.split(",") if f.strip()]
    if not asked:
        raise ArgumentError("formats", text, "must name at least one of " + ", ".join(FORMATS))
    for name in asked:
        if name not in FORMATS:
            raise UnknownNameError("format", name, FORMATS)
    return tuple(f for f in FORMATS if f in asked), True


def _check_numbers(args) -> None:
    if args.min_agreement is not None and not 0.0 <= args.min_agreement <= 1.0:
        raise ArgumentError("--min-agreement", args.min_agreement, "must be a fraction between 0 and 1")
    if args.max_accuracy_drop is not None and not 0.0 <= args.max_accuracy_drop <= 100.0:
        raise ArgumentError("--max-accuracy-drop", args.max_accuracy_drop, "must be points between 0 and 100")
    # upper bounds: `--runs 99999999999999999999` would time forever; far above any real benchmark
    for flag, value, low, high in (("--runs", args.runs, 0, MAX_RUNS), ("--threads", args.threads, 1, MAX_THREADS),
                                   ("--limit", args.limit, 1, MAX_EXAMPLES),
                                   ("--num-calibration", args.num_calibration, 1, MAX_EXAMPLES)):
        if value is None:
            continue
        if value < low:
            raise ArgumentError(flag, value, f"must be >= {low}")
        if value > high:
            raise ArgumentError(flag, value, f"must be <= {high}")


def format_table(rows) -> str:
    """The printed table (`tfxfer.export.table.format_benchmark_table`)."""
    from tfxfer.export.table import format_benchmark_table

    return format_benchmark_table(rows)


def _progress(args, text: str) -> None:
    """Progress lines on stderr (unless ``-q``): stdout holds only the table (or the JSON document)."""
    if verbosity(args):
        print(text, file=sys.stderr, flush=True)


def _calibration(args, model):
    from tfxfer.cli.export import calibration_data  # the one rule: training images, never the gate's

    return calibration_data(args, model)


def cmd_benchmark(args) -> int:
    formats, named = parse_formats(args.formats)  # checks that need no TensorFlow come first
    _check_numbers(args)
    if check_model_path(args.model).endswith(".tflite"):
        raise ArgumentError("model", args.model, "must be a .keras model (or a run directory) to benchmark")
    check_data_argument(args.data)
    if "onnx" in formats:
        import importlib.util

        missing = [p for p in ("tf2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(p) is None]
        if missing and named:
            from tfxfer.errors import MissingDependencyError
            from tfxfer.export.onnx import INSTALL

            raise MissingDependencyError(missing[0], INSTALL, "the onnx format")
        if missing:
            formats = tuple(f for f in formats if f != "onnx")
            print(f"tfxfer: note: onnx skipped ({', '.join(missing)} not installed; pip install 'tfxfer[onnx]')",
                  file=sys.stderr)
    import_tensorflow(args)
    from tfxfer.recipes.inference import evaluation_data, open_model

    model = open_model(args.model)
    if model.kind != "keras" or model.image_size is None:
        raise ArgumentError("model", args.model, "must be a .keras image model (or a run directory) to benchmark",
                            hint="Text models: tfxfer export MODEL DATA prints their TFLite table")
    x, y, names = evaluation_data(args.data, image_size=model.image_size, channels=model.channels,
                                  split=args.split, class_names=model.class_names, limit=args.limit)
    calibration, record = _calibration(args, model) if "int8" in formats else (None, None)
    from tfxfer.export import formats as export_formats  # the rows are the library's; this prints them

    limits = export_formats.floors(formats, min_agreement=args.min_agreement,
                                   max_accuracy_drop=args.max_accuracy_drop)
    started = time.perf_counter()
    rows = export_formats.benchmark_formats(
        model.model, args.out, formats=formats, eval_data=(x, y), class_names=names, limits=limits,
        representative_data=calibration, calibration_record=record, num_calibration=args.num_calibration,
        runs=args.runs, threads=args.threads, model_path=model.path, progress=lambda text: _progress(args, text))
    failed = [r["format"] for r in rows if r["floor"] == "FAIL"]
    report = os.path.join(os.path.abspath(args.out), "benchmark.json")
    from tfxfer.cli.json_output import document, dumps
    from tfxfer.utils.atomic import atomic_write_json

    record_doc = document("benchmark", exit_code=EXIT_GATE if failed else EXIT_OK, model=model.path,
                          data=args.data, split=args.split, examples=int(len(y)), formats=rows,
                          machine={"platform": platform.platform(), "processor": platform.processor() or None,
                                   "cpus": os.cpu_count()},
                          date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                          wall_s=round(time.perf_counter() - started, 1))
    atomic_write_json(report, json.loads(dumps(record_doc)))
    error = {"type": "GateError", "message": f"below the floor: {', '.join(failed)}"} if failed else None
    if args.json:
        emit_json(args, exit_code=EXIT_GATE if failed else EXIT_OK, error=error, model=model.path, data=args.data,
                  split=args.split, examples=int(len(y)), out=os.path.abspath(args.out), report=report, formats=rows)
    else:
        print(format_table(rows))
        print(f"{len(y)} held-out images; files and benchmark.json in {show(os.path.abspath(args.out))}")
    if failed:
        print(f"Below the floor: {', '.join(failed)} (files kept, marked FAIL in their sidecars)", file=sys.stderr)
        return EXIT_GATE
    return EXIT_OK
