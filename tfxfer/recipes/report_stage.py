"""The report stage: write the manifest so far, then the HTML / Markdown report from the run files.

It always runs (it is cheap, and it shows which stages ran or were reused this time).
`save_misclassified` is what the evaluate stages call to leave the report its mistakes gallery.
"""

from __future__ import annotations

import os
import time

from tfxfer.recipes.runner import Stage


def save_misclassified(ctx, probs, labels, class_names, *, images=None, texts=None, names=None,
                       limit: int = 16) -> list[str]:
    """`tfxfer.report.misclassified.write_misclassified` into the run's ``eval/`` folder; returns the
    written files relative to the run directory (the stage's artefacts)."""
    from tfxfer.report.misclassified import write_misclassified

    folder = os.path.dirname(ctx.path("eval", "misclassified.json"))
    paths = write_misclassified(folder, probs, labels, class_names, images=images, texts=texts, names=names,
                                limit=limit)
    return [ctx.rel(p) for p in paths]


def write_run_manifest(ctx) -> None:
    """The manifest so far (status from the verify stage's verdict), as every report stage writes it."""
    from tfxfer.recipes.manifest import build_manifest, write_manifest

    info = ctx.memo("manifest_info", lambda: {"started": None, "t0": time.perf_counter(), "command": None})
    verify = ctx.outputs.get("verify", {})
    status = "ok" if verify.get("passed", True) else "gate_failed"
    write_manifest(ctx, build_manifest(ctx, status=status, started=info["started"],
                                       wall_s=time.perf_counter() - info["t0"], command=info["command"]))


def run_report(ctx):
    from tfxfer.report import write_report

    write_run_manifest(ctx)
    paths = write_report(ctx.run_dir)
    files = [paths.html, paths.markdown, *paths.figures.values()]
    return {"html": ctx.rel(paths.html), "markdown": ctx.rel(paths.markdown),
            "figures": {k: ctx.rel(v) for k, v in paths.figures.items()}, "artefacts": [ctx.rel(p) for p in files]}


def report_stage() -> Stage:
    return Stage("report", run_report, config=lambda c: {"report": c.section("report")["report"]}, always=True)
