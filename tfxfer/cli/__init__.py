"""The ``tfxfer`` command line.

    tfxfer run RECIPE [--set key.sub=value ...] [--resume] [--force] [--out DIR] [-q | -v] [--json]
    tfxfer predict MODEL INPUTS... [--top K] [--json]     (images; texts for text / NER models)
    tfxfer evaluate MODEL DATA [--split test] [--limit N] [--groups COLUMN] [--target DATA] [--save] [--json]
                                                          (images; text tables / CoNLL for text / NER)
    tfxfer export MODEL DATA [--variants float32,int8] [--out DIR] [--no-benchmark] [--saved-model NAME] [--json]
                                                          (text models: float32,dynamic; tokenizer beside)
    tfxfer datasets [list [--task T] | describe NAME] [--json]
    tfxfer backbones [--family F] [--json]
    tfxfer rank RECIPE|DATA [--candidates a,b,c] [--set k=v] [--input-size N] [--max-samples N]
                [--max-size-mib M] [--max-latency-ms L] [--max-params P] [--sequence-length T] [--probe]
                [--no-cost] [--json]
    tfxfer report RUN_DIR [--json]
    tfxfer doctor [--versions-only] [--json]

Exit codes: 0 success; 1 a run-time failure (bad data, failed conversion, full disk); 2 a usage or
recipe error (unknown command, flag, name or key; a missing file); 3 the verification gate failed;
4 the model is no better than chance (``run`` / ``evaluate``: `tfxfer.metrics.chance_check`); 130
interrupted. Errors print one line, no traceback (``-v`` shows the full message); unknown commands, flags, data sets, backbones and recipe keys come with a suggestion. With ``--json``
stdout holds one JSON document, also on errors (`tfxfer.cli.json_output`).

The package holds argparse and printing only: `tfxfer.cli.common` (exit codes, verbosity, checks
before TensorFlow, the one-line error), `tfxfer.cli.json_output` (the ``--json`` schema),
`tfxfer.cli.parser` (the parser, `COMMANDS` and the did-you-mean checks), and one module per
command or command group (`run`, `predict` with `evaluate`, `export`, `catalog` with `datasets`
and `backbones`, `rank`, `report`, `doctor`). TensorFlow is imported only by the commands that
need a model, after their arguments, paths and names have been checked.

Example:
    >>> from tfxfer.cli import main
    >>> main(["datasets", "list", "--task", "image_classification"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import traceback
import warnings

from tfxfer.cli.common import EXIT_FAILURE, UsageError, one_line_warnings, report_error, verbosity
from tfxfer.cli.parser import COMMANDS, build_parser, parse
from tfxfer.errors import TfxferError

__all__ = ["COMMANDS", "InternalError", "build_parser", "main"]


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv


def _command_name(argv: list[str]) -> str:
    return next((a for a in argv if not a.startswith("-")), "tfxfer") if argv else "tfxfer"


def main(argv=None) -> int:
    """Entry point of the ``tfxfer`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    json_stream = sys.stdout if _wants_json(argv) else None
    try:
        args = parse(argv)
    except UsageError as exc:
        name = _command_name(argv)
        return report_error(exc, level=1, command=name if name in COMMANDS else "tfxfer", json_stream=json_stream)
    level = verbosity(args)
    args.json_stream = json_stream if getattr(args, "json", False) else None
    if level < 2:
        warnings.showwarning = one_line_warnings
    # under --json, everything a command prints besides its document goes to stderr
    redirect = contextlib.redirect_stdout(sys.stderr) if args.json_stream else contextlib.nullcontext()
    try:
        with redirect:
            return COMMANDS[args.command](args)
    except BrokenPipeError:  # `tfxfer backbones | head`: the reader left; stop quietly, as Unix tools do
        _silence_stdout()
        return EXIT_FAILURE
    except (TfxferError, OSError, KeyboardInterrupt) as exc:  # OSError: missing files, permissions, a full disk
        return report_error(exc, level=level, command=args.command, json_stream=args.json_stream)
    except Exception as exc:  # a bug or an error a library raised: still one line (and the --json document)
        if level >= 2:  # -v: the traceback, for a bug report
            traceback.print_exc(file=sys.stderr)
        return report_error(InternalError(exc, verbose=level >= 2), level=level, command=args.command,
                            json_stream=args.json_stream)


class InternalError(Exception):
    """An unexpected exception as the CLI reports it: its type and message, exit code 1 (`EXIT_FAILURE`)."""

    def __init__(self, exc: BaseException, *, verbose: bool = False):
        text = " ".join(str(exc).split())[:500]  # one line: library messages can span dozens
        super().__init__(f"internal error: {type(exc).__name__}" + (f": {text}" if text else "")
                         + ("" if verbose else " (run with -v for the traceback)"))


def _silence_stdout() -> None:
    """Point stdout at the null device so Python's exit-time flush raises no second BrokenPipeError."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):  # stdout is not a file (tests capture it)
        pass

