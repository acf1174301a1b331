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
``benchmark.json`` (the rows) stay in ``--out``.

Example:
    >>> from tfxfer.cli import main
    >>> main(["benchmark", "runs/quick", "animal_mnist", "--formats", "float32,onnx"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import json
import platform
import sys
import time

from tfxfer.cli.common import (EXIT_GATE, EXIT_OK, add_json, add_verbosity, check_data_argument, check_model_path,
                               emit_json, import_tensorflow, show, verbosity)
from tfxfer.errors import ArgumentError, UnknownNameError
from tfxfer.utils.native_logs import quiet_native_logs

TFLITE_FORMATS = ("float32", "float16", "dynamic", "int8")
#: Every format ``tfxfer benchmark`` knows, in the order of its table.
FORMATS = (*TFLITE_FORMATS, "onnx", "saved_model")


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


def floors(formats, *, min_agreement=None, max_accuracy_drop=None) -> dict:
    """``{format: Thresholds}``: the gate's default for each format, with the two floors replaced
    for all when given."""
    from tfxfer.export.gate import DEFAULT_THRESHOLDS
    from tfxfer.export.onnx import ONNX_THRESHOLDS

    base = {**DEFAULT_THRESHOLDS, "onnx": ONNX_THRESHOLDS, "saved_model": DEFAULT_THRESHOLDS["float32"]}
    out = {}
    for name in formats:
        limits = base[name]
        if min_agreement is not None:
            limits = dataclasses.replace(limits, min_top1_agreement=min_agreement)
        if max_accuracy_drop is not None:
            limits = dataclasses.replace(limits, max_accuracy_drop=max_accuracy_drop)
        out[name] = limits
    return out


def _check_numbers(args) -> None:
    if args.min_agreement is not None and not 0.0 <= args.min_agreement <= 1.0:
        raise ArgumentError("--min-agreement", args.min_agreement, "must be a fraction between 0 and 1")
    if args.max_accuracy_drop is not None and not 0.0 <= args.max_accuracy_drop <= 100.0:
        raise ArgumentError("--max-accuracy-drop", args.max_accuracy_drop, "must be points between 0 and 100")
    for flag, value, low in (("--runs", args.runs, 0), ("--threads", args.threads, 1), ("--limit", args.limit, 1),
                             ("--num-calibration", args.num_calibration, 1)):
        if value < low:
            raise ArgumentError(flag, value, f"must be >= {low}")


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _time_calls(call, runs: int) -> dict | None:
    """Batch-1 latency of ``call`` (`tfxfer.export.onnx.time_calls`, the ONNX rows' timer), None for no runs."""
    from tfxfer.export.onnx import time_calls

    return time_calls(call, runs=runs) if runs >= 1 else None


def _row(name, **kwargs) -> dict:
    from tfxfer.export.table import benchmark_row  # imports TensorFlow (the export face): after the checks

    return benchmark_row(name, **kwargs)


def _keras_row(model, model_path, images, labels, reference, runs, threads) -> dict:
    """The reference row: the .keras file, its accuracy, and one image through ``model(x)`` timed."""
    import numpy as np

    one = np.asarray(images[:1], dtype=np.float32)
    latency = _time_calls(lambda: model(one, training=False), runs)
    row = _row("keras", path=model_path, size=os.path.getsize(model_path), result=None, latency=latency,
               threads=(1, threads))
    row["accuracy"] = row["accuracy_keras"] = float(np.mean(reference.argmax(1) == np.asarray(labels)))
    return row


def _saved_model_row(model, out, names, images, labels, reference, limits, runs, threads) -> dict:
    import numpy as np
    import tensorflow as tf

    from tfxfer.export import export_serving
    from tfxfer.export.gate import compare_outputs

    pixels = np.clip(np.round(images), 0, 255).astype(np.uint8)
    with quiet_native_logs():  # oneDNN's note on uint8 kernels (its warm-up check runs them first)
        saved = export_serving(model, os.path.join(out, "serving"), name="model", class_names=names)
        signature = tf.saved_model.load(saved.path).signatures["serving_image"]
        outputs = np.concatenate([signature(image=tf.constant(pixels[i:i + 64]))["probabilities"].numpy()
                                  for i in range(0, len(pixels), 64)])
    result = compare_outputs("saved_model", saved.path, reference, outputs, labels, names, limits)
    one = tf.constant(pixels[:1])
    latency = _time_calls(lambda: signature(image=one), runs)
    return _row("saved_model", path=saved.path, size=_dir_size(saved.path), result=result, latency=latency,
                threads=(1, threads))


def benchmark_formats(model, out, *, formats, eval_data, class_names, limits, representative_data=None,
                      calibration_record=None, num_calibration: int = 500, runs: int = 50, threads: int = 2,
                      model_path: str | None = None, progress=None) -> list[dict]:
    """One row per format (and a ``keras`` reference row when ``model_path`` is given): every file
    exported into ``out``, gated against ``model`` on ``eval_data`` under ``limits`` (`floors`) and
    timed. Files that miss their floor are kept (marked FAIL in their sidecars)."""
    import numpy as np

    from tfxfer.export import export_all
    from tfxfer.export.table import write_verdicts

    images, labels = eval_data
    reference = np.asarray(model.predict(images, batch_size=64, verbose=0), dtype=np.float32)
    thread_counts = (1, threads) if threads != 1 else (1,)
    note = progress or (lambda text: None)
    rows = []
    if model_path:
        rows.append(_keras_row(model, model_path, images, labels, reference, runs, threads))
    tflite = [f for f in formats if f in TFLITE_FORMATS]
    if tflite:
        note(f"TFLite: {', '.join(tflite)} (convert, gate{', time in LiteRT' if runs else ''})")
        table = export_all(model, out, variants=tflite, representative_data=representative_data,
                           eval_data=(images, labels), class_names=class_names, num_calibration=num_calibration,
                           thresholds={v: limits[v] for v in tflite}, benchmark=runs > 0, threads=thread_counts,
                           bench_runs=max(runs, 1), bench_memory=False, keep_failed=True,
                           calibration_record=calibration_record)
        for variant in tflite:
            bench = table.benchmarks.get(variant)
            lat = bench.latency if bench else {}
            rows.append(_row(variant, path=table.exports[variant].path, size=table.exports[variant].size_bytes,
                             result=table.gate[variant], latency=lat.get("1"), latency_nt=lat.get(str(threads)),
                             threads=(1, threads)))
    if "onnx" in formats:
        from tfxfer.export.onnx import benchmark_onnx, export_onnx, verify_onnx

        note("ONNX (convert, gate in onnxruntime" + (", time)" if runs else ")"))
        exported = export_onnx(model, os.path.join(out, "model.onnx"), eval_data=None, class_names=class_names)
        result = verify_onnx(model, exported.path, (images, labels), thresholds={"onnx": limits["onnx"]},
                             class_names=class_names, reference_outputs=reference, raise_on_failure=False)["onnx"]
        write_verdicts({"onnx": exported.sidecar_path}, {"onnx": result})
        lat = benchmark_onnx(exported.path, threads=thread_counts, runs=runs)["latency"] if runs else {}
        rows.append(_row("onnx", path=exported.path, size=exported.size_bytes, result=result, latency=lat.get("1"),
                         latency_nt=lat.get(str(threads)), threads=(1, threads)))
    if "saved_model" in formats:
        note("SavedModel (export, gate and time its serving_image signature in TensorFlow)")
        names = list(class_names) if class_names else [str(i) for i in range(reference.shape[1])]
        rows.append(_saved_model_row(model, out, names, images, labels, reference, limits["saved_model"], runs,
                                     threads))
    return rows


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
    limits = floors(formats, min_agreement=args.min_agreement, max_accuracy_drop=args.max_accuracy_drop)
    started = time.perf_counter()
    rows = benchmark_formats(model.model, args.out, formats=formats, eval_data=(x, y), class_names=names,
                             limits=limits, representative_data=calibration, calibration_record=record,
                             num_calibration=args.num_calibration, runs=args.runs, threads=args.threads,
                             model_path=model.path, progress=lambda text: _progress(args, text))
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
