"""The ``tfxfer`` argument parser and the table from command name to the function that runs it.

Each command module adds its own sub-parser(s) (``add_parser`` / ``add_parsers``) and holds its
``cmd_*`` function(s); this module only puts them together.

Example:
    >>> from tfxfer.cli.parser import build_parser
    >>> build_parser().parse_args(["report", "runs/quick"]).command
    'report'
"""

from __future__ import annotations

import argparse

import tfxfer.cli.catalog as catalog
import tfxfer.cli.doctor as doctor
import tfxfer.cli.export as export
import tfxfer.cli.predict as predict
import tfxfer.cli.rank as rank
import tfxfer.cli.report as report
import tfxfer.cli.run as run
from tfxfer import __version__

COMMANDS = {"run": run.cmd_run, "predict": predict.cmd_predict, "evaluate": predict.cmd_evaluate,
            "export": export.cmd_export, "datasets": catalog.cmd_datasets, "backbones": catalog.cmd_backbones,
            "rank": rank.cmd_rank, "report": report.cmd_report, "doctor": doctor.cmd_doctor}


def build_parser() -> argparse.ArgumentParser:
    """The ``tfxfer`` parser with one sub-command per entry of `COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="tfxfer", description="Transfer learning for Keras 3 / TensorFlow: from a pretrained backbone to a "
        "verified edge model.", epilog="Run `tfxfer COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"tfxfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    run.add_parser(sub)
    predict.add_parsers(sub)
    export.add_parser(sub)
    catalog.add_parsers(sub)
    rank.add_parser(sub)
    report.add_parser(sub)
    doctor.add_parser(sub)
    return parser
