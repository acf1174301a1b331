"""The self-contained HTML report: one file, inline CSS, figures embedded as base64 PNG.

Example:
    >>> page = render_html({"run_dir": "/tmp/x", "config": {"name": "demo", "task": "image_classification"}},
    ...                    figures={})
    >>> "<h1>" in page and 'id="export-table"' in page
    True
"""

from __future__ import annotations

from tfxfer.report import sections
from tfxfer.report.elements import card, duration, esc, verdict

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2430;background:#f5f6f8}
main{max-width:1080px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;border-bottom:2px solid #e4e7ec}
h3{font-size:15px;margin:18px 0 6px}.sub{color:#5b6573;margin:0 0 16px;font-size:14px}
nav a{margin-right:14px;font-size:13px;color:#2b6cb0;text-decoration:none}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{flex:1 1 150px;border:1px solid #e4e7ec;border-radius:8px;padding:10px 14px;background:#fafbfc}
.card .k{font-size:12px;color:#5b6573;text-transform:uppercase;letter-spacing:.04em}.card .v{font-size:22px;font-weight:600;margin-top:2px}
.card .n{font-size:12px;color:#5b6573}
table{border-collapse:collapse;font-size:13px;margin:6px 0 12px}th,td{padding:4px 10px;border-bottom:1px solid #e4e7ec;text-align:left}
th{background:#f0f2f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
#export-table th{background:#dde7f7}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.ok{background:#dafbe1;color:#1a7f37}.badge.bad{background:#ffebe9;color:#cf222e}
img{max-width:100%;height:auto}.fig{margin:8px 0 14px}.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
pre{background:#f6f8fa;border:1px solid #e4e7ec;border-radius:6px;padding:10px;font-size:12px;overflow:auto;max-height:420px}
.muted{color:#5b6573;font-size:13px}td.text{text-align:left;max-width:560px}
"""


def _f3(value) -> str:
    """A headline number with three decimals ("-" for a value the run did not record)."""
    return "-" if value is None else f"{value:.3f}"


def _headline(run: dict) -> str:
    metrics, export, manifest = run.get("metrics") or {}, run.get("export") or {}, run.get("manifest") or {}
    cards = []
    split = metrics.get("split", "test")
    if "accuracy" in metrics:
        cards.append(card(f"{split} accuracy", _f3(metrics["accuracy"]),
                          esc(f"{metrics.get('num_examples', '')} examples")))
    if "macro_f1" in metrics:
        cards.append(card("macro F1", _f3(metrics["macro_f1"])))
    if "entity_f1" in metrics:
        cards.append(card("entity F1", _f3(metrics["entity_f1"]), "seqeval-style, micro"))
    if metrics.get("ece") is not None:
        cards.append(card("calibration (ECE)", f"{metrics['ece']:.3f}", "lower is better"))
    rows = export.get("rows") or []
    deliver = export.get("deliver_variant") or (run.get("config") or {}).get("export", {}).get("deliver")
    row = next((r for r in rows if r["variant"] == deliver), None)
    variant, result = sections.delivered(run)
    if result is not None:  # the shipped file's accuracy first, the Keras model's beside it
        cards.insert(0, card(f"{variant} file accuracy", _f3(result["tflite_accuracy"]),
                             f"Keras {_f3(result['keras_accuracy'])} · agreement {_f3(result['top1_agreement'])}"))
    if row:
        lat = "-" if row.get("latency_ms") is None else f"{row['latency_ms']:.2f} ms"
        cards.append(card(f"TFLite {row['variant']}", f"{row['size_kib'] / 1024:.2f} MiB",
                           f"{lat} (1 thread) · gate {verdict(row['gate'])}"))
    stages = manifest.get("stages") or {}
    if stages:
        total = sum(v.get("wall_s") or 0.0 for v in stages.values())
        reused = sum(1 for v in stages.values() if v.get("status") == "skipped")
        note = f"this run {duration(manifest.get('wall_s') or 0.0)}" + (f", {reused} stage(s) reused" if reused else "")
        cards.append(card("compute time", duration(total), esc(note)))
    return f'<div class="cards">{"".join(cards)}</div>'


def _unused_files(run: dict) -> str:
    """The files the report was built without (`tfxfer.report.run_data.unreported_problems`), one line each."""
    from tfxfer.report.run_data import unreported_problems

    return "".join(f'<p class="fail unreadable">{esc(p)}</p>' for p in unreported_problems(run))


def render_html(run: dict, *, figures: dict) -> str:
    """The report page for ``run`` (from `load_run`), with ``figures`` = {name: PNG bytes}."""
    cfg = run.get("config") or {}
    manifest = run.get("manifest") or {}
    status = manifest.get("status", "running")
    badge = f'<span class="badge {"ok" if status == "ok" else "bad"}">{esc(status)}</span>'
    model = cfg.get("model", {})
    sub = " · ".join(esc(s) for s in (cfg.get("task"), model.get("backbone"), cfg.get("data", {}).get("source"),
                                      manifest.get("written")) if s)
    audit, shift = sections.audit_section(run, figures), sections.shift_section(run, figures)
    links = (("delivered", "Delivered file"), ("export", "Export"), ("data", "Data"), ("training", "Training"),
             ("evaluation", "Evaluation"), *((("bias-audit", "Bias audit"),) if audit else ()),
             *((("shift", "Domain shift"),) if shift else ()), ("mistakes", "Mistakes"), ("reproduce", "Reproduce"))
    nav = "".join(f'<a href="#{k}">{t}</a>' for k, t in links)
    # A chance-level model and what each training stage bought come first; then what ships, and
    # whether it passed its gate; how it got there follows.
    body = [f"<h1>{esc(cfg.get('name', 'tfxfer run'))} {badge}</h1>", _unused_files(run), sections.lead(run),
            f'<p class="sub">{sub}</p>',
            f"<nav>{nav}</nav>",
            _headline(run), sections.delivered_section(run, figures), sections.export_section(run, figures),
            sections.data_section(run, figures),
            sections.training_section(run, figures), sections.evaluation_section(run, figures), audit, shift,
            sections.mistakes_section(run, figures), sections.reproduce_section(run)]
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tfxfer report: "
            f"{esc(cfg.get('name', ''))}</title><meta name=\"viewport\" content=\"width=device-width\">"
            f"<style>{CSS}</style></head><body><main>{''.join(body)}</main></body></html>")
