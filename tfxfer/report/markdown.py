"""The Markdown summary of a run: headline numbers, data, per-class metrics, the export table,
with links to the PNG figures saved beside it.

Example:
    >>> text = render_markdown({"config": {"name": "demo"}, "export": {"rows": [], "deliver": None}}, figures={})
    >>> text.splitlines()[0]
    '# tfxfer run: demo'
"""

from __future__ import annotations

from tfxfer.utils.humanize import format_number


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_number(value)
    return str(value).replace("|", "\\|")


def md_table(headers, rows) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return lines + [""]


def _delivered(run) -> list[str]:
    from tfxfer.report.sections import delivered

    variant, r = delivered(run)
    if r is None:
        return ["## The delivered file", "", "No file was delivered (none passed its gate).", ""] \
            if run.get("export") else []
    low, high = r.get("drop_interval") or (None, None)
    interval = "" if low is None else f", 95 % interval {low:+.2f} to {high:+.2f}: {r.get('drop_verdict')}"
    lines = ["## The delivered file", "",
             f"`{variant}` on {r['examples']} held-out examples: accuracy {_fmt(r['tflite_accuracy'])} "
             f"(Keras {_fmt(r['keras_accuracy'])}; drop {_fmt(r['accuracy_drop'])} points{interval}); "
             f"top-1 agreement with the Keras model {_fmt(r['top1_agreement'])}.", ""]
    lines += md_table(["class", "support", "recall (file)", "recall (Keras)", "precision (file)", "precision (Keras)"],
                      [[c["name"], c["support"], c.get("tflite_accuracy"), c.get("keras_accuracy"),
                        c.get("tflite_precision"), c.get("keras_precision")] for c in r.get("per_class") or []])
    if r.get("confusion"):
        names = [c["name"] for c in r.get("per_class") or []]
        lines += md_table(["true \\ file", *names], [[names[i], *row] for i, row in enumerate(r["confusion"])])
    return lines


def render_markdown(run: dict, *, figures: dict) -> str:
    """Markdown for ``run``; ``figures`` maps figure name -> PNG file name (relative links)."""
    cfg = run.get("config") or {}
    manifest = run.get("manifest") or {}
    lines = [f"# tfxfer run: {cfg.get('name', '?')}", ""]
    model = cfg.get("model", {})
    lines += [f"- task: {cfg.get('task', '?')}; backbone: {model.get('backbone', '?')}; "
              f"data: {cfg.get('data', {}).get('source', '?')}",
              f"- status: {manifest.get('status', 'running')}; wall time: "
              f"{_fmt(manifest.get('wall_s'))} s", ""]
    lines += _delivered(run)
    metrics = run.get("metrics") or {}
    if metrics:
        lines += ["## Evaluation (Keras model)", ""]
        head = [(k, metrics[k]) for k in ("accuracy", "macro_f1", "entity_f1", "ece") if k in metrics]
        lines += md_table(["metric", f"{metrics.get('split', 'test')} value"], head)
        if metrics.get("per_class"):
            lines += md_table(["class", "precision", "recall", "F1", "support"],
                              [[c["name"], c["precision"], c["recall"], c["f1"], c["support"]]
                               for c in metrics["per_class"]])
        if metrics.get("entities"):
            lines += md_table(["entity", "precision", "recall", "F1", "support"],
                              [[e["type"], e["precision"], e["recall"], e["f1"], e["support"]]
                               for e in metrics["entities"]])
    data = run.get("data") or {}
    if data:
        counts = data.get("class_counts", {})
        lines += ["## Data", "", f"Source: {data.get('source')}; skipped files: {len(data.get('skipped', []))}; "
                  f"leakage groups: {len(data.get('leakage', []))}; duplicate groups: {len(data.get('duplicates', []))}", ""]
        lines += md_table(["split", "examples"], [[s, sum(c.values())] for s, c in counts.items()])
    export = run.get("export")
    if export:
        lines += ["## Export", ""]
        lines += md_table(["variant", "size KiB", "latency ms (1 thread)", "accuracy Keras", "accuracy file",
                           "drop pts", "gate"],
                          [[r["variant"], r["size_kib"], r.get("latency_ms"), r["accuracy_keras"], r["accuracy_file"],
                            r["accuracy_drop_pts"], r["gate"]] for r in export["rows"]])
        lines += [f"Deliverable: `{export.get('deliver') or 'none (gate failed)'}`", ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{name}]({file})" for name, file in figures.items()] + [""]
    return "\n".join(lines)
