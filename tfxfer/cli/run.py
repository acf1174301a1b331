"""``tfxfer run RECIPE``: run a YAML recipe (data -> fine-tune -> export -> verify -> report).

The recipe, its ``--set`` overrides, its data source and backbone names are checked before
TensorFlow is imported, so a typo fails in a fraction of a second with a suggestion.

Example:
    >>> from tfxfer.cli import main
    >>> main(["run", "pipelines/quick.yaml", "--set", "train.epochs=1"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import os
import sys

from tfxfer.cli.common import (add_allow_chance, add_json, add_verbosity, chance_error, chance_exit, chance_lines,
                               check_recipe_names, emit_json, error_text, exit_code, import_tensorflow, report_error,
                               show, verbosity)
from tfxfer.errors import ArgumentError, GateError


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a recipe (data -> fine-tune -> export -> verify -> report)",
                       description="Run a YAML recipe. Stages whose inputs did not change since the last run in "
                       "the same output folder are skipped. Any recipe key can be set from the command line "
                       "with --set (e.g. --set train.epochs=3).")
    p.add_argument("recipe", help="a recipe file, e.g. pipelines/quick.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. --set train.epochs=3 --set data.source=~/photos (repeatable)")
    p.add_argument("--out", help="run directory: new, empty or an earlier run's (default: runs/<recipe name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in the run directory (the recipe must be unchanged)")
    p.add_argument("--force", action="store_true", help="re-run every stage even if unchanged")
    add_allow_chance(p)
    add_verbosity(p)
    add_json(p)


def cmd_run(args) -> int:
    # tfxfer.recipes imports numpy and yaml: loaded here, not at `tfxfer --help`
    from tfxfer.recipes import load_config, run_pipeline
    from tfxfer.recipes.run_folder import check_run_folder

    if args.out is not None and not args.out.strip():  # `--out "$OUT"` with OUT unset: not runs/<name>
        raise ArgumentError("--out", args.out, "must name a folder", hint="Leave --out out for runs/<recipe name>")
    cfg = load_config(args.recipe, overrides=args.overrides)
    check_recipe_names(cfg)
    check_run_folder(args.out or os.path.join("runs", cfg.name))  # before TensorFlow: a wrong --out fails fast
    import_tensorflow(args)
    try:
        result = run_pipeline(cfg, out_dir=args.out, resume=args.resume, force=args.force, verbosity=verbosity(args),
                              command=["tfxfer", *sys.argv[1:]] if sys.argv[0].endswith("tfxfer") else None)
    except GateError as exc:  # the run finished and wrote its files; only the gate failed (exit 3)
        result = getattr(exc, "result", None)
        if not args.json or result is None:
            raise
        report_error(exc, level=verbosity(args), command=args.command)  # the one-line error on stderr, as for any error
        _emit(args, result, exit_code=exit_code(exc),
              error={"type": type(exc).__name__, "message": error_text(exc)})
        return exit_code(exc)
    code = chance_exit(args, result.chance)  # the files are written; the exit code tells scripts
    if args.json:
        _emit(args, result, exit_code=code, error=chance_error(result.chance, allowed=args.allow_chance))
        return code
    print(result.headline())
    for line in chance_lines(result.chance, allowed=args.allow_chance):
        print(line)
    print(f"Report:   {show(result.report_html)}")
    if result.tflite:
        print(f"TFLite:   {show(result.tflite)} (verification gate passed)")
    print(f"Manifest: {show(result.manifest)}")
    return code


def _emit(args, result, *, exit_code: int, error) -> None:
    """The ``--json`` document of a run that wrote its files (also when its gate failed)."""
    emit_json(args, exit_code=exit_code, error=error, run_dir=result.run_dir,
              manifest=result.manifest, report_html=result.report_html, report_md=result.report_md,
              tflite=result.tflite, gate_passed=result.gate_passed, metrics=result.metrics, stages=result.stages,
              wall_s=result.wall_s, chance=result.chance)
