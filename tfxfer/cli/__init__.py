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

The package holds argparse and printing only: `tfxfer.cli.common` (exit codes, verbosity, the
one-line error), `tfxfer.cli.parser` (the parser and `COMMANDS`), and one module per command or
command group (`run`, `predict` with `evaluate`, `export`, `catalog` with `datasets` and
`backbones`, `rank`, `report`, `doctor`). TensorFlow is imported only by the commands that need it.

Example:
    >>> from tfxfer.cli import main
    >>> main(["datasets", "list", "--task", "image_classification"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import sys
import warnings

from tfxfer.cli.common import EXIT_INTERRUPTED, one_line_warnings, report_error, verbosity
from tfxfer.cli.parser import COMMANDS, build_parser
from tfxfer.errors import TfxferError

__all__ = ["COMMANDS", "build_parser", "main"]


def main(argv=None) -> int:
    """Entry point of the ``tfxfer`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    level = verbosity(args)
    if level < 2:
        warnings.showwarning = one_line_warnings
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("tfxfer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (TfxferError, OSError) as exc:  # OSError: missing files, permissions, a full disk
        return report_error(exc, level=level)
