"""The Markdown summary of a run: headline numbers, data, per-class metrics, the export table,
with links to the PNG figures saved beside it.

Every value taken from the run (class and group names, paths, messages) goes through `md_text`:
Markdown viewers render raw HTML, so a class named ``<img src=x onerror=...>`` must arrive as text.

Example:
    >>> text = render_markdown({"config": {"name": "demo"}, "export": {"rows": [], "deliver": None}}, figures={})
    >>> text.splitlines()[0]
    '# tfxfer run: demo'
"""

from __future__ import annotations

import re

from tfxfer.report import sections
from tfxfer.report.run_data import unreported_problems
from tfxfer.utils.humanize import format_number


#: What `md_text` backslash-escapes: `` ` * [ ] | ~ ``, an underscore that is not inside a word (``self_train``
#: renders as written, ``__init__`` would be bold) and a backslash before punctuation (else it escapes it).
_SPECIAL = re.compile(r"[`*\[\]|~]|(?<![^\W_])_|_(?![^\W_])|\\(?=[!-/:-@\[-`{-~])")


def md_text(value) -> str:
    r"""``value`` as plain Markdown text on one line: ``&``, ``<`` and ``>`` as HTML entities (no raw HTML
    reaches a viewer), the inline Markdown specials escaped (`_SPECIAL`), line breaks made spaces.

    Example:
        >>> print(md_text("<img src=x onerror=alert(1)> a|b *c*"))
        &lt;img src=x onerror=alert(1)&gt; a\|b \*c\*
    """
    return _SPECIAL.sub(lambda m: "\\" + m.group(), md_prose(value))


def md_prose(text) -> str:
    """tfxfer's own sentences (warnings, notes, verdicts) for report.md: HTML entities for ``&``, ``<`` and
    ``>`` and line breaks made spaces, their Markdown (a `` `key` ``) kept; values quoted in them
    (a split, a group name) cannot inject HTML."""
    text = re.sub(r"[\r\n\t\v\f\x85\u2028\u2029]+", " ", str(text))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_number(value)
    return md_text(value)


def md_table(headers, rows) -> list[str]:
    """A Markdown table; headers and cells go through `md_text` (numbers are formatted)."""
    lines = ["| " + " | ".join(_fmt(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return lines + [""]


def _delivered(run) -> list[str]:
    from tfxfer.report.sections import delivered

    variant, r = delivered(run)
    if r is None:
        return ["## The delivered file", "", "No file was delivered (none passed its gate).", ""] \
            if run.get("export") else []
    low, high = r.get("drop_interval") or (None, None)
    interval = "" if low is None else f", 95 % interval {low:+.2f} to {high:+.2f}: {md_prose(r.get('drop_verdict'))}"
    lines = ["## The delivered file", "",
             f"{md_text(variant)} on {_fmt(r['examples'])} held-out examples: accuracy {_fmt(r['tflite_accuracy'])} "
             f"(Keras {_fmt(r['keras_accuracy'])}; drop {_fmt(r['accuracy_drop'])} points{interval}); "
             f"top-1 agreement with the Keras model {_fmt(r['top1_agreement'])}.", ""]
    lines += md_table(["class", "support", "recall (file)", "recall (Keras)", "precision (file)", "precision (Keras)"],
                      [[c["name"], c["support"], c.get("tflite_accuracy"), c.get("keras_accuracy"),
                        c.get("tflite_precision"), c.get("keras_precision")] for c in r.get("per_class") or []])
    if r.get("confusion"):
        names = [c["name"] for c in r.get("per_class") or []]
        lines += md_table(["true \\ file", *names], [[names[i], *row] for i, row in enumerate(r["confusion"])])
    return lines


def _problems(run, names) -> list[str]:
    found = [p for p in run.get("problems") or [] if any(p.startswith(n) for n in names)]
    return [f"Could not use {md_prose(p)}" for p in found] + ([""] if found else [])


def _interval(row, metric) -> str:
    value, low, high = row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if value is None:
        return "n/a"
    return f"{value:.3f}" + ("" if low is None or high is None else f" [{low:.3f}, {high:.3f}]")


def _audit(run) -> list[str]:
    groups = run.get("groups")
    problems = _problems(run, ("eval/groups.json", "groups.json"))
    if not groups and not problems:
        return []
    lines = ["## Bias audit", "", *problems]
    if groups:
        metrics = list(groups.get("metrics") or [])
        split = f" ({groups['split']} split)" if groups.get("split") else ""
        lines += [f"By {md_text(groups.get('column'))} on {md_text(groups.get('data'))}{md_text(split)}; "
                  f"{md_text(groups.get('n_bootstrap'))} bootstrap resamples per group.", ""]
        lines += md_table(["group", "n", *metrics], [[r["group"], r["n"], *[_interval(r, m) for m in metrics]]
                                                     for r in groups["rows"]])
        lines += [f"- {md_prose(s)}" for s in sections.gap_sentences(groups)] + [""]
        lines += [f"Note: {md_prose(n)}" for n in groups.get("notes") or []] + ([""] if groups.get("notes") else [])
    return lines


def _shift(run) -> list[str]:
    shift, adaptation = run.get("shift"), run.get("adaptation")
    problems = _problems(run, ("eval/shift.json", "shift.json", "adapt/adaptation.json", "adaptation.json"))
    if not shift and not adaptation and not problems:
        return []
    lines = ["## Domain shift / adaptation", "", *problems]
    for title, record in (("Shift between the evaluation data and the target", shift),
                          ("Shift before adaptation", (adaptation or {}).get("shift"))):
        if record:
            lines += [f"### {title}", "", md_prose(record.get("verdict") or ""), ""]
            lines += md_table(["", "value"], sections.shift_rows(record))
    if adaptation:
        headers, rows, sentence = sections.adaptation_rows(adaptation)
        lines += [f"### Adaptation to {md_text(adaptation.get('target'))}: {md_text(adaptation['method'])}", ""]
        lines += md_table(headers, rows)
        warning, notes = sections.adaptation_notes(adaptation)
        if warning:
            lines += [f"> **{md_prose(warning)}**", ""]
        if sentence:
            lines += [md_prose(sentence), ""]
        lines += [f"Note: {md_prose(n)}" for n in notes] + ([""] if notes else [])
    return lines


def render_markdown(run: dict, *, figures: dict) -> str:
    """Markdown for ``run``; ``figures`` maps figure name -> PNG file name (relative links)."""
    cfg = run.get("config") or {}
    manifest = run.get("manifest") or {}
    lines = [f"# tfxfer run: {md_text(cfg.get('name', '?'))}", ""]
    problems = unreported_problems(run)  # first: the files this report was built without
    if problems:
        lines += [f"> **unreadable:** {md_prose(p)}" for p in problems] + [""]
    warning, bought = sections.chance_warning(run), sections.selection_sentence(run)
    if warning:  # first: a model no better than chance, then what each training stage bought
        lines += [f"> **{md_prose(warning)}**", ""]
    if bought:
        lines += [f"**{md_prose(bought)}**", ""]
    model = cfg.get("model", {})
    lines += [f"- task: {md_text(cfg.get('task', '?'))}; backbone: {md_text(model.get('backbone', '?'))}; "
              f"data: {md_text(cfg.get('data', {}).get('source', '?'))}",
              f"- status: {md_text(manifest.get('status', 'running'))}; wall time: "
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
    lines += _audit(run) + _shift(run)
    data = run.get("data") or {}
    if data:
        counts = data.get("class_counts", {})
        lines += ["## Data", "", f"Source: {md_text(data.get('source'))}; skipped files: "
                  f"{len(data.get('skipped', []))}; leakage groups: {len(data.get('leakage', []))}; duplicate groups: "
                  f"{len(data.get('duplicates', []))}", ""]
        lines += md_table(["split", "examples"], [[s, sum(c.values())] for s, c in counts.items()])
    export = run.get("export")
    if export:
        lines += ["## Export", ""]
        lines += md_table(["variant", "size KiB", "latency ms (1 thread)", "accuracy Keras", "accuracy file",
                           "drop pts", "gate"],
                          [[r["variant"], r["size_kib"], r.get("latency_ms"), r["accuracy_keras"], r["accuracy_file"],
                            r["accuracy_drop_pts"], r["gate"]] for r in export["rows"]])
        lines += [f"Deliverable: {md_text(export.get('deliver') or 'none (gate failed)')}", ""]
    if figures:
        lines += ["## Figures", ""] + [f"![{md_text(name)}]({file})" for name, file in figures.items()] + [""]
    return "\n".join(lines)
