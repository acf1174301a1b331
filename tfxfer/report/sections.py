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
    out.append(f'<p class="muted">{esc(mis.get("count", "?"))} wrong in total; showing {len(shown)}, {order}:</p>')
    if figures.get("misclassified"):
        out.append(figure(figures["misclassified"], "misclassified examples"))
    if any("text" in s for s in shown):
        rows = [[f'<span class="muted">{esc(s["true"])} &rarr; </span><b>{esc(s["predicted"])}</b>',
                 *([s.get("confidence")] if scored else []), esc(s.get("text", ""))] for s in shown]
        headers = ["true → predicted", *(["confidence"] if scored else []), "text"]
        out.append(table(headers, rows, raw_cols=(0, len(headers) - 1)))
    elif any("name" in s for s in shown):
        out.append(table(["file", "true", "predicted", "confidence"],
                         [[s.get("name"), s["true"], s["predicted"], s.get("confidence")] for s in shown]))
    return "".join(out)


def export_section(run, figures) -> str:
    export = run.get("export")
    out = ['<h2 id="export">Export</h2>']
    if not export:
        return out[0] + '<p class="muted">No export (the export stage did not finish).</p><table id="export-table"></table>'
    rows = []
    for r in export["rows"]:
        latency = fmt(r.get("latency_ms"))
        if r.get("latency_nt_ms") is not None and len(set(r.get("threads") or [1, 2])) > 1:
            latency += f' / {fmt(r["latency_nt_ms"])}'
        rows.append([esc(r["variant"]), fmt(r["size_kib"]), latency, fmt(r["accuracy_keras"]), fmt(r["accuracy_file"]),
                     fmt(r["accuracy_drop_pts"]), fmt(r["top1_agreement"]), fmt(r["max_abs_error"]), verdict(r["gate"])])
    threads = (export["rows"][0].get("threads") if export["rows"] else None) or [1, 2]
    label = f"{threads[0]} thread" if threads[0] == threads[-1] else f"{threads[0]} / {threads[-1]} threads"
    out.append(table(["variant", "size (KiB)", f"latency ms ({label})", "accuracy Keras",
                      "accuracy file", "drop (pts)", "top-1 agreement", "max abs error", "gate"], rows,
                     table_id="export-table", raw_cols=tuple(range(9))))
    failures = [f"{r['variant']}: {f}" for r in export["rows"] for f in r.get("failures", [])]
    for f in failures:
        out.append(f'<p class="fail">{esc(f)}</p>')
    delivered = export.get("deliver_variant")
    for v in export.get("superseded", []):
        out.append(f'<p class="muted">{esc(v)} is superseded: the integer file {esc(delivered)} passed and is '
                   "delivered instead, so this one does not decide the run (it stays here as the baseline "
                   "the remedy had to beat).</p>")
    if export.get("deliver_reason"):
        out.append(f"<p>Why this file ships: {esc(export['deliver_reason'])}</p>")
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


# -- honesty first: chance-level models and what each training stage bought -------------------------
def chance(run) -> dict | None:
    """`tfxfer.metrics.chance_check` of the run's evaluation (None without classification metrics)."""
    from tfxfer.metrics import metrics_chance_check

    return metrics_chance_check(run.get("metrics"))


def chance_warning(run) -> str | None:
    """The warning sentence for a model no better than chance, or None."""
    check = chance(run)
    if not check or not check["flagged"]:
        return None
    return (f"Warning: this model is no better than chance on its {((run.get('metrics') or {}).get('split') or 'test')}"
            f" split: {'; '.join(check['reasons'])}. Do not ship it; `tfxfer run` exits with code 4 for it.")


def _lower_is_better(monitor: str) -> bool:
    return "loss" in str(monitor) or "error" in str(monitor)


def selection_sentence(run) -> str | None:
    """One sentence on what each training stage bought: the head-only validation score, the
    fine-tuned one and which model was kept (``selection`` in ``model/history.json``); None
    without a training history."""
    hist = run.get("history")
    if not hist:
        return None
    sel = hist.get("selection")
    if not isinstance(sel, dict):
        if any(str(k).startswith("val_") for k in hist.get("history") or {}):
            return "What training bought: not recorded (model/history.json has no `selection`: head-only and " \
                   "fine-tuned validation scores were not compared)."
        return "What training bought: not measured (no validation data, so the head-only and fine-tuned models " \
               "were not compared)."
    monitor = sel.get("monitor") or "validation score"
    better = "lower is better" if _lower_is_better(monitor) else "higher is better"
    head, tuned, kept = sel.get("head"), sel.get("fine_tuned"), sel.get("kept")
    if tuned is None:
        score = "not measured" if head is None else f"{head:.4f}"
        return f"What training bought: head-only model, validation {monitor} {score} ({better}); no fine-tuning " \
               "stage ran."
    if head is None:
        return f"What training bought: fine-tuned model, validation {monitor} {tuned:.4f} ({better}); no " \
               "head-only score to compare with."
    delta = tuned - head
    gain = -delta if _lower_is_better(monitor) else delta
    verdict = ("fine-tuning helped; kept the fine-tuned model" if kept == "fine_tuned" and gain > 0 else
               "kept the fine-tuned model" if kept == "fine_tuned" else
               "fine-tuning did not beat the head-only model: kept the head-only model")
    return (f"What training bought: validation {monitor} {head:.4f} after the head-only stage, {tuned:.4f} after "
            f"fine-tuning ({delta:+.4f}; {better}): {verdict}.")


def lead(run) -> str:
    """The report's first lines in HTML: the chance-level warning and what each stage bought."""
    out = []
    warning = chance_warning(run)
    if warning:
        out.append(f'<p class="fail" id="chance-warning">{esc(warning)}</p>')
    sentence = selection_sentence(run)
    if sentence:
        out.append(f'<p id="stage-selection"><b>{esc(sentence)}</b></p>')
    return "".join(out)


# -- bias audit, domain shift and adaptation -------------------------------------------------------
def _problems(run, names) -> str:
    return "".join(f'<p class="fail">{esc(p)}</p>' for p in run.get("problems") or []
                   if any(p.startswith(n) for n in names))


def _interval(row, metric) -> str:
    value, low, high = row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if value is None:
        return "n/a"
    return f"{value:.3f}" + ("" if low is None or high is None else f" [{low:.3f}, {high:.3f}]")


def gap_sentences(groups: dict) -> list[str]:
    """Worst-group gap per metric, in words (shared by the HTML and Markdown reports)."""
    out = []
    level = groups.get("confidence_level") or 0.95
    gaps = groups.get("gaps") or {}
    listed = list(groups.get("metrics") or [])
    order = [m for m in listed if m in gaps] + [m for m in gaps if m not in listed]
    for metric in order:
        g = gaps[metric]
        if not isinstance(g, dict) or g.get("value") is None:
            continue
        interval = "" if g.get("low") is None else f" [{g['low']:.3f}, {g['high']:.3f}]"
        out.append(f"{metric}: gap {g['value']:.3f}{interval} ({level:.0%} bootstrap interval), worst group "
                   f"{g.get('worst_group')}, best {g.get('best_group')}")
    return out


def audit_section(run, figures=None) -> str:
    """"Bias audit": per-group metrics with bootstrap intervals and the worst-group gaps (``groups.json``)."""
    groups = run.get("groups")
    problems = _problems(run, ("eval/groups.json", "groups.json"))
    if not groups and not problems:
        return ""
    out = ['<h2 id="bias-audit">Bias audit</h2>', problems]
    if groups:
        metrics = list(groups.get("metrics") or [])
        out.append(f'<p>By <code>{esc(groups.get("column"))}</code> on {esc(groups.get("data"))}'
                   f'{" (" + esc(groups.get("split")) + " split)" if groups.get("split") else ""}; '
                   f'{groups.get("n_bootstrap")} bootstrap resamples per group.</p>')
        rows = [[r["group"], r["n"], *[_interval(r, m) for m in metrics]] for r in groups["rows"]]
        out.append(table(["group", "n", *metrics], rows, table_id="bias-audit-table"))
        out.append("<ul>" + "".join(f"<li>{esc(s)}</li>" for s in gap_sentences(groups)) + "</ul>")
        for note in groups.get("notes") or []:
            out.append(f'<p class="muted">{esc(note)}</p>')
    return "".join(out)


def shift_rows(shift: dict) -> list[list]:
    """``[what, value]`` rows of a ``shift.json`` record."""
    rows = [["verdict", "shift detected" if shift.get("shifted") else "no shift detected"],
            ["p-value (combined)", shift.get("p_value")], ["alpha", shift.get("alpha")]]
    for t in shift.get("tests") or []:
        label = "domain-classifier AUC" if t.get("name") == "classifier" else "MMD²" if t.get("name") == "mmd" \
            else str(t.get("name"))
        rows.append([f"{label} (permutation p {fmt(t.get('p_value'))})", t.get("statistic")])
    rows += [["examples (source / target)", f"{shift.get('n_source')} / {shift.get('n_target')}"],
             ["accuracy on the source", shift.get("source_accuracy")],
             ["expected accuracy on the target (ATC)", shift.get("expected_target_accuracy")],
             ["measured accuracy on the target", shift.get("target_accuracy")],
             ["mean confidence (source / target)",
              f"{fmt(shift.get('source_confidence'))} / {fmt(shift.get('target_confidence'))}"]]
    return rows


def adaptation_rows(adaptation: dict) -> tuple[list, list[list], str | None]:
    """``(headers, rows, gap sentence)`` of an ``adaptation.json`` record: one row per metric the
    source-only and adapted models share, with the oracle where there is one."""
    source, adapted, oracle = adaptation["source_only"], adaptation["adapted"], adaptation.get("oracle")
    metrics = [m for m in source if m in adapted]
    headers = ["metric", "source only", f"adapted ({adaptation['method']})", "change",
               *(["target oracle"] if oracle else [])]
    rows = []
    for m in metrics:
        a, b = source[m], adapted[m]
        change = None if a is None or b is None else round(b - a, 4)
        rows.append([m, a, b, change, *([oracle.get(m)] if oracle else [])])
    sentence = None
    if oracle and all(isinstance(d.get("accuracy"), (int, float)) for d in (source, adapted, oracle)):
        gap = oracle["accuracy"] - source["accuracy"]
        if gap > 0:
            closed = (adapted["accuracy"] - source["accuracy"]) / gap
            sentence = (f"The adaptation closed {closed:.0%} of the accuracy gap between the source-only model "
                        f"({source['accuracy']:.4f}) and the target oracle ({oracle['accuracy']:.4f}).")
        else:
            sentence = "The source-only model is already as accurate as the target oracle: no gap to close."
    if adapted.get("accuracy") is not None and source.get("accuracy") is not None \
            and adapted["accuracy"] < source["accuracy"]:
        sentence = (sentence + " " if sentence else "") + "The adaptation hurt accuracy on the target."
    return headers, rows, sentence


def adaptation_notes(adaptation: dict) -> tuple[str | None, list[str]]:
    """``(warning, notes)`` of an ``adaptation.json`` record (shared by the HTML and Markdown reports):
    a warning when the method stopped short (``"stopped": true``: it diverged or collapsed and the
    last good weights were kept, or it changed nothing), so the "adapted" figures are not read as a
    completed adaptation; and the record's notes, what the method did in words (older records have
    neither)."""
    notes = adaptation.get("notes")
    notes = [str(n) for n in notes] if isinstance(notes, list) else []
    warning = None
    if adaptation.get("stopped") is True:
        warning = (f"The {adaptation.get('method')} adaptation stopped short (it diverged, collapsed or changed "
                   "nothing; the notes say which): the \"adapted\" figures are those of the model it left, not of a "
                   "completed adaptation.")
    return warning, notes


def shift_section(run, figures=None) -> str:
    """"Domain shift / adaptation": ``shift.json`` (a shift test against deployment data) and
    ``adaptation.json`` (source-only vs adapted vs target-oracle figures)."""
    shift, adaptation = run.get("shift"), run.get("adaptation")
    problems = _problems(run, ("eval/shift.json", "shift.json", "adapt/adaptation.json", "adaptation.json"))
    if not shift and not adaptation and not problems:
        return ""
    out = ['<h2 id="shift">Domain shift / adaptation</h2>', problems]
    for title, record in (("Shift between the evaluation data and the target", shift),
                          ("Shift before adaptation", (adaptation or {}).get("shift"))):
        if not record:
            continue
        where = f" ({esc(record.get('source'))} vs {esc(record.get('target'))})" if record.get("target") else ""
        out.append(f"<h3>{title}{where}</h3><p>{esc(record.get('verdict'))}</p>")
        out.append(table(["", "value"], shift_rows(record)))
        per_class = record.get("per_class") or []
        if per_class:
            out.append(table(["predicted class", "n (source / target)", "confidence source", "confidence target",
                              "drop"], [[c.get("name", c.get("label")), f"{c.get('n_source')} / {c.get('n_target')}",
                                         c.get("source_confidence"), c.get("target_confidence"), c.get("drop")]
                                        for c in per_class]))
    if adaptation:
        headers, rows, sentence = adaptation_rows(adaptation)
        out.append(f"<h3>Adaptation to {esc(adaptation.get('target'))}: {esc(adaptation['method'])}</h3>")
        out.append(table(headers, rows, table_id="adaptation-table"))
        warning, notes = adaptation_notes(adaptation)
        if warning:
            out.append(f'<p class="fail">{esc(warning)}</p>')
        if sentence:
            out.append(f"<p>{esc(sentence)}</p>")
        for note in notes:
            out.append(f'<p class="muted">Note: {esc(note)}</p>')
        if not adaptation.get("oracle"):
            out.append('<p class="muted">No target oracle (no labelled target training data): how much of the gap '
                       "the adaptation closed cannot be said.</p>")
    return "".join(out)
