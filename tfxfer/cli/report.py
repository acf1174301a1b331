"""``tfxfer report RUN_DIR``: re-render the HTML / Markdown report of a finished run.

Example:
    >>> from tfxfer.cli import main
    >>> main(["report", "runs/quick"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import os
import sys

from tfxfer.cli.common import EXIT_OK, add_json, emit_json, show
from tfxfer.errors import ArgumentError


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="re-render the HTML / Markdown report of a run directory")
    p.add_argument("run_dir")
    add_json(p)


def cmd_report(args) -> int:
    if not os.path.isdir(args.run_dir):
        raise ArgumentError("run_dir", args.run_dir, "must be an existing run directory")
    from tfxfer.recipes.causal_lm_report import is_lm_run, write_lm_report
    from tfxfer.report import write_report  # ~20 ms of imports: loaded here, not at `tfxfer --help`
    from tfxfer.report.run_data import RUN_MARKERS, is_run_dir

    if not is_run_dir(args.run_dir):  # nothing is written into a folder that holds no run
        raise ArgumentError("run_dir", args.run_dir, "is not a tfxfer run directory (it holds neither "
                            f"{' nor '.join(RUN_MARKERS)})", hint="Pass the folder `tfxfer run` wrote (runs/<name>)")

    if is_lm_run(args.run_dir):  # a causal-LM recipe's run has its own report
        lm_paths = write_lm_report(args.run_dir)
        html, markdown = lm_paths["html"], lm_paths["markdown"]
    else:
        paths = write_report(args.run_dir)
        html, markdown = paths.html, paths.markdown
    unfinished = _unfinished(args.run_dir)
    if unfinished:  # the report says so first too; the terminal should not look like a finished run's
        print(f"tfxfer: warning: {unfinished}", file=sys.stderr, flush=True)
    if args.json:
        emit_json(args, html=os.path.abspath(html), markdown=os.path.abspath(markdown),
                  finished=unfinished is None, warning=unfinished)
    else:
        print(f"Report:   {show(html)}\nMarkdown: {show(markdown)}")
    return EXIT_OK


def _unfinished(run_dir: str) -> str | None:
    """`tfxfer.report.run_data.unfinished_sentence` of the run's manifest (None when it finished)."""
    from tfxfer.report.run_data import _json, unfinished_sentence

    try:
        manifest = _json(os.path.join(run_dir, "manifest.json"))
    except (OSError, ValueError, RecursionError):
        manifest = None
    return unfinished_sentence({"manifest": manifest if isinstance(manifest, dict) else None})
