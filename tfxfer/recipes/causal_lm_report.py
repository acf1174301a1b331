"""The report of a causal-LM run: ``report/report.html``, ``report/report.md``, ``report/perplexity.png``.

Read from the run folder alone (``manifest.json`` and the stage records under ``stages/``), so it
can be rewritten after the run: held-out perplexity before and after adaptation, the training
curve (perplexity of the training loss per batch, the held-out perplexity per epoch), the sample
generations before and after, and the TFLite decoder's gate (every variant tried, and why a
fallback shipped). A run whose manifest does not say it finished (``running``, ``failed``,
``interrupted``, or no manifest) gets `tfxfer.report.run_data.unfinished_sentence` first, as the
image and text reports do.

Example:
    >>> from tfxfer.recipes.causal_lm_report import write_lm_report
    >>> write_lm_report("runs/causal_lm")["html"]                 # doctest: +SKIP
    '/.../runs/causal_lm/report/report.html'
"""

from __future__ import annotations

import io
import json
import math
import os

from tfxfer.report.elements import card, duration, esc, figure, table, verdict
from tfxfer.report.html import CSS
from tfxfer.report.markdown import md_table
from tfxfer.report.run_data import unfinished_sentence
from tfxfer.utils.atomic import atomic_write_bytes, atomic_write_text


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def is_lm_run(run_dir) -> bool:
    """Whether ``run_dir`` holds a causal-LM recipe's run (its manifest or config says ``task: causal_lm``)."""
    manifest = _read(os.path.join(run_dir, "manifest.json"))
    if isinstance(manifest, dict):
        return manifest.get("task") == "causal_lm"
    try:
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
            return any(line.strip() == "task: causal_lm" for line in f)
    except OSError:
        return False


def load_lm_run(run_dir) -> dict:
    """``{"manifest", "data", "adapt", "evaluate", "verify"}`` of a run folder (missing parts None)."""
    run = {"run_dir": os.path.abspath(os.fspath(run_dir)),
           "manifest": _read(os.path.join(run_dir, "manifest.json")) or {}}
    for stage in ("data", "adapt", "evaluate", "verify"):
        record = _read(os.path.join(run_dir, "stages", f"{stage}.json")) or {}
        run[stage] = record.get("outputs") if record.get("status") == "done" else None
    return run


def _ppl(loss):
    return math.exp(min(float(loss), 50.0))


def perplexity_png(adapt: dict, evaluate: dict | None) -> bytes | None:
    """The training curve: exp(training loss) per batch, held-out perplexity before / per epoch / after."""
    curve = adapt.get("train_loss_curve") or []
    if not curve:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 3.6), dpi=100)
    try:
        ax.plot([b for b, _ in curve], [_ppl(v) for _, v in curve], color="#2b6cb0", lw=1.4,
                label="training (exp of the running loss)")
        batches = adapt.get("batches_trained") or curve[-1][0]
        val = (adapt.get("history") or {}).get("val_loss") or []
        if val:
            per_epoch = max(1, round(batches / len(val)))
            ax.plot([per_epoch * (i + 1) for i in range(len(val))], [_ppl(v) for v in val], "o-", color="#cf222e",
                    label="held-out windows, per epoch")
        ax.axhline(adapt["perplexity_before"], color="#5b6573", ls="--", lw=1,
                   label=f"held-out before {adapt['perplexity_before']:.2f}")
        if evaluate:
            ax.axhline(evaluate["perplexity_after"], color="#1a7f37", ls="--", lw=1,
                       label=f"held-out after {evaluate['perplexity_after']:.2f}")
        ax.set_xlabel("batch")
        ax.set_ylabel("perplexity")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _export_rows(verify):
    return [[r["variant"], r["size_mib"], r["top1_agreement"], 100 * r["perplexity_change"], r["ms_per_token"],
             r["gate"], "; ".join(r["failures"])] for r in verify.get("rows", [])]


_EXPORT_HEADERS = ["variant", "MiB", "top-1 agreement", "perplexity change %", "ms/token", "gate", "why"]


def render_lm_html(run: dict, *, figures: dict) -> str:
    """The HTML page of a causal-LM run (figures: {name: PNG bytes})."""
    manifest, adapt, evaluate, verify = run["manifest"], run["adapt"] or {}, run["evaluate"], run["verify"]
    cfg = manifest.get("config") or {}
    lm = cfg.get("causal_lm") or {}
    status = manifest.get("status", "running")
    badge = f'<span class="badge {"ok" if status == "ok" else "bad"}">{esc(status)}</span>'
    cards = []
    if evaluate:
        cards.append(card("held-out perplexity", f"{evaluate['perplexity_after']:.2f}",
                          f"pretrained {evaluate['perplexity_before']:.2f} "
                          f"({100 * evaluate['perplexity_change']:+.1f} %)"))
    if adapt:
        cards.append(card("training", duration(adapt.get("train_s", 0.0)),
                          esc(f"{adapt.get('batches_trained')} of {adapt.get('batches_planned')} batches, "
                              f"LoRA rank {lm.get('lora_rank')}" if lm.get("lora_rank") else "full fine-tuning")))
    if verify:
        row = next((r for r in verify.get("rows", []) if r["variant"] == verify.get("shipped")), None)
        if row:
            cards.append(card(f"TFLite {row['variant']}", f"{row['size_mib']:.1f} MiB",
                              f"agreement {row['top1_agreement']:.3f} · gate {verdict(row['gate'])}"))
    unfinished = unfinished_sentence(run)  # first: files below may be from an earlier run
    body = [f"<h1>{esc(cfg.get('name', 'causal LM run'))} {badge}</h1>",
            f'<p class="fail" id="unfinished">{esc(unfinished)}</p>' if unfinished else "",
            f'<p class="sub">{esc(" · ".join(str(s) for s in ("causal_lm", lm.get("model"), cfg.get("data", {}).get("source"), manifest.get("written")) if s))}</p>',
            f'<div class="cards">{"".join(cards)}</div>']
    if verify:
        body.append('<h2 id="export">Delivered decoder</h2>')
        body.append(f'<p>{esc(verify.get("deliver"))}: {esc(verify.get("shipped"))} (asked for '
                    f'{esc(verify.get("requested"))}), cache {verify.get("cache_length")} tokens, builtin ops; '
                    f'<code>python export/llm_runner.py {esc(verify.get("runner_input", "<sidecar>.json"))} "prompt"</code> '
                    "(its sidecar) runs it without TensorFlow.</p>")
        if verify.get("fallback_reason"):
            body.append(f'<p class="muted">Fallback: {esc(verify["fallback_reason"])}</p>')
        if verify.get("saved_model"):
            body.append(f'<p>SavedModel for TF Serving: {esc(verify["saved_model"])}, signature <code>generate</code> '
                        "(a batch of prompt strings in, their greedy continuations out).</p>")
        body.append(table(_EXPORT_HEADERS, _export_rows(verify), table_id="export-table"))
    body.append('<h2 id="training">Adaptation</h2>')
    body.append(figure(figures.get("perplexity"), "perplexity curve"))
    if adapt:
        settings = adapt.get("settings") or {}
        body.append(table(["setting", "value"], [[k, settings[k]] for k in sorted(settings)]
                          + [["trainable parameters", (adapt.get("parameters") or {}).get("trainable")],
                             ["stopped by budget_s", adapt.get("stopped_by_budget")]]))
    data = run["data"] or {}
    if data:
        body.append(f'<h2 id="data">Data</h2><p>{esc(data.get("origin"))}; sizes {esc(data.get("sizes"))}</p>')
    samples = _read(os.path.join(run["run_dir"], "eval", "samples.json")) or []
    if samples:
        body.append('<h2 id="samples">Sample generations (greedy)</h2>')
        body.append(table(["prompt", "pretrained", "adapted"], [[s["prompt"], s["before"], s["after"]] for s in samples]))
    stages = manifest.get("stages") or {}
    if stages:
        body.append('<h2 id="reproduce">Stages</h2>')
        body.append(table(["stage", "status", "seconds"], [[k, v.get("status"), v.get("wall_s")]
                                                           for k, v in stages.items()]))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>tfxfer report: "
            f"{esc(cfg.get('name', ''))}</title><style>{CSS}</style></head><body><main>{''.join(body)}</main>"
            f"</body></html>")


def _one_line(text) -> str:
    return " ".join(str(text).split())


def render_lm_markdown(run: dict, *, figures: dict) -> str:
    """The Markdown summary (figures: {name: file name beside the report})."""
    manifest, adapt, evaluate, verify = run["manifest"], run["adapt"] or {}, run["evaluate"], run["verify"]
    cfg = manifest.get("config") or {}
    lines = [f"# {cfg.get('name', 'causal LM run')} ({manifest.get('status', 'running')})", "",
             f"causal_lm · {(cfg.get('causal_lm') or {}).get('model')} · {(cfg.get('data') or {}).get('source')}", ""]
    unfinished = unfinished_sentence(run)
    if unfinished:  # first, as in the image and text reports
        lines[2:2] = [f"> **{unfinished}**", ""]
    if evaluate:
        lines += [f"Held-out perplexity: {evaluate['perplexity_before']:.3f} -> {evaluate['perplexity_after']:.3f} "
                  f"({100 * evaluate['perplexity_change']:+.1f} %) on {evaluate['val_texts']} texts.", ""]
    if adapt:
        lines += [f"Training: {adapt.get('batches_trained')} of {adapt.get('batches_planned')} batches in "
                  f"{adapt.get('train_s', 0.0):.0f} s.", ""]
    if "perplexity" in figures:
        lines += [f"![perplexity]({figures['perplexity']})", ""]
    if verify:
        lines += [f"## Delivered decoder: {verify.get('deliver')} ({verify.get('shipped')}, asked for "
                  f"{verify.get('requested')})", ""]
        if verify.get("fallback_reason"):
            lines += [f"Fallback: {verify['fallback_reason']}", ""]
        if verify.get("saved_model"):
            lines += [f"SavedModel (string in, string out, signature `generate`): {verify['saved_model']}", ""]
        lines += md_table(_EXPORT_HEADERS, _export_rows(verify)) + [""]
    samples = _read(os.path.join(run["run_dir"], "eval", "samples.json")) or []
    if samples:
        lines += ["## Samples (greedy)", ""]
        lines += md_table(["prompt", "pretrained", "adapted"],
                          [[_one_line(s["prompt"]), _one_line(s["before"]), _one_line(s["after"])]
                           for s in samples]) + [""]
    return "\n".join(lines)


def write_lm_report(run_dir, *, out_dir=None) -> dict:
    """Write the report of causal-LM run ``run_dir``; ``{"html", "markdown", "figures": {name: path}}``."""
    run = load_lm_run(run_dir)
    out_dir = os.fspath(out_dir or os.path.join(run_dir, "report"))
    os.makedirs(out_dir, exist_ok=True)
    figures, files = {}, {}
    if run["adapt"]:
        png = perplexity_png(run["adapt"], run["evaluate"])
        if png:
            figures["perplexity"] = png
    for name, png in figures.items():
        files[name] = os.path.abspath(os.path.join(out_dir, f"{name}.png"))
        atomic_write_bytes(files[name], png)
    html_path = os.path.abspath(os.path.join(out_dir, "report.html"))
    atomic_write_text(html_path, render_lm_html(run, figures=figures))
    md_path = os.path.abspath(os.path.join(out_dir, "report.md"))
    atomic_write_text(md_path, render_lm_markdown(run, figures={n: os.path.basename(p) for n, p in files.items()}))
    return {"html": html_path, "markdown": md_path, "figures": files}


__all__ = ["is_lm_run", "load_lm_run", "perplexity_png", "render_lm_html", "render_lm_markdown", "write_lm_report"]
