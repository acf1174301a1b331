"""The report's sections as HTML fragments: data, training, evaluation, mistakes, export, reproduce.

Each takes the run (from `tfxfer.report.run_data.load_run`) and the figures dict, and tolerates
missing parts (a run that stopped early still gets a report of what it has).
"""

from __future__ import annotations

from tfxfer.report.elements import esc, figure, fmt, table, verdict

SPLIT_ORDER = ("train", "val", "test")
STAGE_ORDER = ("data", "features", "finetune", "distill", "quantize", "evaluate", "export", "verify", "report")


def ordered_splits(counts: dict) -> dict:
    """``{split: ...}`` in train, val, test order (JSON files store keys sorted)."""
    keys = [s for s in SPLIT_ORDER if s in counts] + [s for s in counts if s not in SPLIT_ORDER]
    return {k: counts[k] for k in keys}


def ordered_stages(stages: dict) -> dict:
    keys = [s for s in STAGE_ORDER if s in stages] + [s for s in stages if s not in STAGE_ORDER]
    return {k: stages[k] for k in keys}


def data_section(run, figures) -> str:
    data = run.get("data")
    out = ['<h2 id="data">Data</h2>']
    if not data:
        return out[0] + '<p class="muted">No data summary (the data stage did not finish).</p>'
    counts = ordered_splits(data.get("class_counts", {}))
    out.append(f'<p class="muted">Source: {esc(data.get("source"))} · fingerprint '
               f'<code>{esc(str(data.get("data_fingerprint", ""))[:16])}</code> · evaluated on the '
               f'<b>{esc(data.get("eval_split", "test"))}</b> split</p>')
    names = data.get("class_names") or (list(next(iter(counts.values())).keys()) if counts else [])
    rows = [[n] + [c.get(n, 0) for c in counts.values()] for n in names[:40]]
    rows.append(["total"] + [sum(c.values()) for c in counts.values()])
    out.append('<div class="row"><div>' + table(["class", *counts.keys()], rows) + "</div><div>"
               + figure(figures.get("class_counts"), "examples per class") + "</div></div>")
    skipped = data.get("skipped", [])
    imbalance = data.get("imbalance") or {}
    facts = [["scanned", data.get("scanned")], ["used", data.get("used")], ["skipped files", len(skipped)],
             ["duplicate groups inside a split", len(data.get("duplicates", []))],
             ["leakage groups (same content in two splits)", len(data.get("leakage", []))],
             ["imbalance (largest / smallest class)", imbalance.get("ratio")]]
    out.append("<h3>Hygiene</h3>" + table(["check", "value"], facts))
    if skipped:
        reasons = data.get("skip_counts", {})
        out.append("<p>Skipped by reason: " + ", ".join(f"{esc(k)} {v}" for k, v in reasons.items()) + "</p>")
        out.append(table(["file", "reason", "detail"], [[s["path"], s["reason"], s.get("detail")] for s in skipped[:25]]))
        if len(skipped) > 25:
            out.append(f'<p class="muted">... and {len(skipped) - 25} more (data/summary.json)</p>')
    leakage = data.get("leakage", [])
    if leakage:
        out.append("<h3>Leakage</h3>" + table(
            ["sha256", "splits"], [[g["sha256"][:12], "; ".join(f"{s}: {', '.join(map(str, p[:3]))}"
                                                           for s, p in g["splits"].items())] for g in leakage[:10]]))
    for note in data.get("notes", []):
        out.append(f'<p class="muted">{esc(note)}</p>')
    return "".join(out)


def training_section(run, figures) -> str:
    hist = run.get("history")
    out = ['<h2 id="training">Training</h2>']
    if not hist:
        return out[0] + '<p class="muted">No training history.</p>'
    out.append(figure(figures.get("training_curves"), "training curves"))
    rows = [[f"S{i + 1}", s["epoch"] + 1, s.get("label"), s.get("learning_rate"),
             ", ".join(s.get("trainable_groups", [])[:6])] for i, s in enumerate(hist.get("stages", []))]
    if rows:
        out.append("<h3>Stages</h3>" + table(["", "from epoch", "stage", "peak learning rate", "trainable groups"],
                                             rows))
    final = {k: v[-1] for k, v in hist.get("history", {}).items() if v}
    if final:
        out.append(table(["final epoch", "value"], [[k, v] for k, v in sorted(final.items())]))
    return "".join(out)


def evaluation_section(run, figures) -> str:
    m = run.get("metrics")
    out = ['<h2 id="evaluation">Evaluation</h2>']
    if not m:
        return out[0] + '<p class="muted">No evaluation.</p>'
    out.append(f'<p>On {m.get("num_examples", "?")} held-out examples ({esc(m.get("split", "test"))} split).</p>')
    if m.get("per_class"):
        rows = [[c["name"], c["precision"], c["recall"], c["f1"], c["support"]] for c in m["per_class"]]
        out.append("<h3>Per class</h3>" + table(["class", "precision", "recall", "F1", "support"], rows))
    if m.get("entities"):
        rows = [[e["type"], e["precision"], e["recall"], e["f1"], e["support"]] for e in m["entities"]]
        out.append("<h3>Per entity type</h3>" + table(["entity", "precision", "recall", "F1", "support"], rows))
    out.append('<div class="row">' + figure(figures.get("confusion"), "confusion matrix")
               + figure(figures.get("reliability"), "reliability diagram") + "</div>")
    return "".join(out)


def mistakes_section(run, figures) -> str:
    mis = run.get("misclassified")
    out = ['<h2 id="mistakes">Mistakes</h2>']
    if not mis or not mis.get("shown"):
        return out[0] + '<p class="muted">None to show.</p>'
    shown = mis["shown"]
    scored = any(s.get("confidence") is not None for s in shown)
    order = "the most confident first" if scored else "the first ones"
    out.append(f'<p class="muted">{mis["count"]} wrong in total; showing {len(shown)}, {order}:</p>')
    if figures.get("misclassified"):
        out.append(figure(figures["misclassified"], "misclassified examples"))
    if any("text" in s for s in shown):
        rows = [[f'<span class="muted">{esc(s["true"])} &rarr; </span><b>{esc(s["predicted"])}</b>',
                 *([s["confidence"]] if scored else []), esc(s["text"])] for s in shown]
        headers = ["true → predicted", *(["confidence"] if scored else []), "text"]
        out.append(table(headers, rows, raw_cols=(0, len(headers) - 1)))
    elif any("name" in s for s in shown):
        out.append(table(["file", "true", "predicted", "confidence"],
                         [[s["name"], s["true"], s["predicted"], s["confidence"]] for s in shown]))
    return "".join(out)


def export_section(run, figures) -> str:
    export = run.get("export")
    out = ['<h2 id="export">Export</h2>']
    if not export:
        return out[0] + '<p class="muted">No export (the export stage did not finish).</p><table id="export-table"></table>'
    rows = []
    for r in export["rows"]:
        latency = fmt(r.get("latency_ms"))
        if r.get("latency_nt_ms") is not None and len(set(r.get("threads", [1, 2]))) > 1:
            latency += f' / {fmt(r["latency_nt_ms"])}'
        rows.append([esc(r["variant"]), fmt(r["size_kib"]), latency, fmt(r["accuracy_keras"]), fmt(r["accuracy_file"]),
                     fmt(r["accuracy_drop_pts"]), fmt(r["top1_agreement"]), fmt(r["max_abs_error"]), verdict(r["gate"])])
    threads = export["rows"][0].get("threads", [1, 2]) if export["rows"] else [1, 2]
    label = f"{threads[0]} thread" if threads[0] == threads[-1] else f"{threads[0]} / {threads[-1]} threads"
    out.append(table(["variant", "size (KiB)", f"latency ms ({label})", "accuracy Keras",
                      "accuracy file", "drop (pts)", "top-1 agreement", "max abs error", "gate"], rows,
                     table_id="export-table", raw_cols=tuple(range(9))))
    failures = [f"{r['variant']}: {f}" for r in export["rows"] for f in r.get("failures", [])]
    for f in failures:
        out.append(f'<p class="fail">{esc(f)}</p>')
    for v in export.get("superseded", []):
        out.append(f'<p class="muted">{esc(v)} is the post-training baseline: the quantization-aware int8_qat '
                   "file replaces it and decides the run.</p>")
    deliver = export.get("deliver")
    out.append(f"<p>Deliverable: <code>{esc(deliver)}</code> (with a <code>.json</code> sidecar of labels and its "
               "gate result).</p>" if deliver else '<p class="fail">No variant passed the gate to deliver.</p>')
    out.append(figure(figures.get("export"), "size and latency per variant"))
    return "".join(out)


def reproduce_section(run) -> str:
    manifest = run.get("manifest") or {}
    out = ['<h2 id="reproduce">Reproduce</h2>']
    if manifest.get("command"):
        out.append(f"<pre>{esc(' '.join(manifest['command']))}</pre>")
    stages = ordered_stages(manifest.get("stages") or {})
    if stages:
        out.append("<h3>Stages</h3>" + table(["stage", "status", "wall time (s)", "fingerprint"],
                                             [[k, v.get("status"), v.get("wall_s"), v.get("fingerprint")]
                                              for k, v in stages.items()]))
    packages = manifest.get("packages") or {}
    if packages:
        out.append("<h3>Packages</h3>" + table(["package", "version"], [[k, v] for k, v in packages.items()]))
    artefacts = manifest.get("artefacts") or {}
    if artefacts:
        out.append("<h3>Artefacts</h3>" + table(["file", "bytes", "sha256"], [[k, v["bytes"], v["sha256"][:16]]
                                                                          for k, v in artefacts.items()]))
    if run.get("config_text"):
        out.append("<h3>Resolved recipe</h3><pre>" + esc(run["config_text"]) + "</pre>")
    return "".join(out)


def delivered(run) -> tuple[str | None, dict | None]:
    """``(variant, gate result)`` of the file the run delivers (None, None when nothing shipped or the
    run has no gate yet)."""
    export, gate = run.get("export") or {}, run.get("gate") or {}
    variant = export.get("deliver_variant") if export.get("deliver") else None
    result = (gate.get("results") or {}).get(variant) if variant else None
    return (variant, result) if result else (None, None)


def confusion_table(names, confusion) -> str:
    rows = [[names[i]] + list(row) for i, row in enumerate(confusion)]
    return table(["true \\ file"] + list(names), rows)


def delivered_section(run, figures) -> str:
    """The file that ships, measured on the held-out data: accuracy, agreement with the Keras model,
    the drop's 95 % interval, per-class recall and precision beside Keras's, its confusion matrix."""
    variant, r = delivered(run)
    out = ['<h2 id="delivered">The delivered file</h2>']
    if r is None:
        return out[0] + '<p class="fail">No file was delivered (none passed its gate); the figures below ' \
                        "describe the Keras model only.</p>"
    low, high = r.get("drop_interval") or (None, None)
    interval = "" if low is None else f" (95 % interval {low:+.2f} to {high:+.2f} points: {esc(r.get('drop_verdict'))})"
    out.append(f"<p><code>{esc(variant)}</code> on {r['examples']} held-out examples: accuracy "
               f"<b>{fmt(r['tflite_accuracy'])}</b> (Keras {fmt(r['keras_accuracy'])}; drop "
               f"{fmt(r['accuracy_drop'])} points{interval}); top-1 agreement with the Keras model "
               f"<b>{fmt(r['top1_agreement'])}</b>.</p>")
    rows = [[c["name"], c["support"], c.get("tflite_accuracy"), c.get("keras_accuracy"), c.get("tflite_precision"),
             c.get("keras_precision")] for c in r.get("per_class") or []]
    out.append("<h3>Per class</h3>" + table(["class", "support", "recall (file)", "recall (Keras)",
                                             "precision (file)", "precision (Keras)"], rows))
    if r.get("confusion"):
        names = [c["name"] for c in r.get("per_class") or []]
        out.append("<h3>Confusion matrix of the file</h3>" + confusion_table(names, r["confusion"]))
    return "".join(out)
