"""Run reports: a self-contained HTML page, a Markdown summary and the PNG figures.

`write_report(run_dir)` reads what the pipeline stages left in a run directory (data summary,
training history, evaluation, export table, manifest) and writes ``report/report.html`` (figures
embedded, opens offline), ``report/report.md`` and ``report/*.png``.

Example:
    >>> import tempfile
    >>> from tfxfer.report import write_report
    >>> paths = write_report(tempfile.mkdtemp())
    >>> paths.html.endswith("report.html"), paths.figures
    (True, {})
"""

from __future__ import annotations

import dataclasses
import os

from tfxfer.utils.atomic import atomic_write_bytes, atomic_write_text


@dataclasses.dataclass
class ReportPaths:
    """Files written by `write_report` (absolute paths)."""

    html: str
    markdown: str
    figures: dict


def make_figures(run: dict) -> dict:
    """``{name: PNG bytes}`` for every figure the run has data for."""
    from tfxfer.report import plots

    figures = {}
    data = run.get("data") or {}
    if data.get("class_counts"):
        figures["class_counts"] = plots.class_counts_png(data["class_counts"], data.get("class_names"))
    hist = run.get("history") or {}
    if hist.get("history"):
        figures["training_curves"] = plots.training_curves_png(hist["history"], hist.get("stages", []),
                                                               hist.get("lr_steps", []))
    metrics = run.get("metrics") or {}
    names = [c["name"] for c in metrics.get("per_class", [])]
    if metrics.get("confusion") and names:
        figures["confusion"] = plots.confusion_png(metrics["confusion"], names)
    if metrics.get("reliability"):
        figures["reliability"] = plots.reliability_png(metrics["reliability"], metrics.get("ece") or 0.0)
    mis = run.get("misclassified") or {}
    shown = [s for s in mis.get("shown", []) if "thumbnail" in s]
    if shown and run.get("thumbnails") is not None and len(run["thumbnails"]):
        figures["misclassified"] = plots.misclassified_png(run["thumbnails"], shown)
    export = run.get("export") or {}
    if export.get("rows"):
        figures["export"] = plots.export_png(export["rows"])
    return figures


def write_report(run_dir, *, out_dir=None) -> ReportPaths:
    """Write the HTML report, the Markdown summary and the PNG figures of a run directory.

    Args:
        run_dir: a pipeline run directory.
        out_dir: where to write (default ``<run_dir>/report``).

    Returns:
        `ReportPaths`.
    """
    from tfxfer.report.html import render_html
    from tfxfer.report.markdown import render_markdown
    from tfxfer.report.run_data import load_run

    run = load_run(run_dir)
    out_dir = os.fspath(out_dir or os.path.join(run_dir, "report"))
    os.makedirs(out_dir, exist_ok=True)
    figures = make_figures(run)
    files = {}
    for name, png in figures.items():
        path = os.path.join(out_dir, f"{name}.png")
        atomic_write_bytes(path, png)
        files[name] = path
    html_path = os.path.join(out_dir, "report.html")
    atomic_write_text(html_path, render_html(run, figures=figures))
    md_path = os.path.join(out_dir, "report.md")
    atomic_write_text(md_path, render_markdown(run, figures={n: os.path.basename(p) for n, p in files.items()}))
    return ReportPaths(html=os.path.abspath(html_path), markdown=os.path.abspath(md_path),
                       figures={n: os.path.abspath(p) for n, p in files.items()})


__all__ = ["ReportPaths", "make_figures", "write_report"]
