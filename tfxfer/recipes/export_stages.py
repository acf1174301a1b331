"""Export and verify stages of every recipe (image and text), through `tfxfer.export`'s one workflow.

* ``export``: `tfxfer.export.convert_variants` (pre-flight, then every variant; image int8 calibrated
  on un-augmented training images; text files get their tokenizer files).
* ``verify``: `tfxfer.export.gate_variants` on the held-out split (the gate), `benchmark_variants`
  over all files side by side, `export_rows` / `write_verdicts`, an optional SavedModel
  (`export_serving`) when every file passed. The ``deliver`` variant is the run's TFLite file when
  it passes; a passing quantization-aware ``int8_qat`` file (quantize stage) is gated with the int8
  limits and supersedes the post-training int8 file.

`export_stages` builds the two stages for image recipes; text recipes bind `convert_stage` /
`gate_stage` to their held-out texts (`tfxfer.recipes.text_export_stages`).
"""

from __future__ import annotations

import os

from tfxfer.recipes.runner import Stage
from tfxfer.utils.atomic import atomic_write_json
from tfxfer.utils.humanize import format_bytes

MODEL_STAGES = ("finetune", "distill", "quantize")


def gate_thresholds(cfg) -> dict:
    """``{variant: limits}`` from ``export.thresholds``; the QAT file (``int8_qat``) gets the int8 limits."""
    from tfxfer.export.gate import resolve_thresholds

    limits = resolve_thresholds({v: dict(t) for v, t in cfg.export.thresholds.items()})
    return {**limits, "int8_qat": limits["int8"]}


def qat_export_entry(ctx) -> dict:
    """The QAT file as an extra row for the verify stage (``{"int8_qat": {...}}``), or {}."""
    out = ctx.outputs.get("quantize")
    if not out:
        return {}
    return {"int8_qat": {"path": out["tflite"], "size_bytes": out["size_bytes"], "sidecar": out["sidecar"]}}


def convert_stage(ctx, *, class_names, representative_data=None):
    """Convert ``ctx.model()`` to every ``export.variants`` file under ``export/``."""
    from tfxfer.export import convert_variants

    cfg = ctx.cfg
    bar = ctx.console.counter(desc="convert" + (" (int8: calibrate)" if representative_data is not None else ""),
                              unit="variant")
    try:
        exported = convert_variants(ctx.model(), ctx.path("export"), variants=cfg.export.variants,
                                    representative_data=representative_data, class_names=class_names, name=cfg.name,
                                    num_calibration=cfg.export.num_calibration, seed=cfg.seed, progress=bar.update,
                                    calibration_record={"source": str(cfg.data.source), "split": "train",
                                                        "augmented": False})
    finally:
        bar.close()
    exports = {}
    for variant, result in exported.items():
        entry = {"path": ctx.rel(result.path), "size_bytes": result.size_bytes, "sidecar": ctx.rel(result.sidecar_path)}
        if hasattr(result, "input_dtype"):
            entry.update(input_dtype=result.input_dtype, calibration_samples=result.calibration_samples)
        if getattr(result, "vocab_path", None):
            entry["vocab"] = ctx.rel(result.vocab_path)
        exports[variant] = entry
        ctx.console.detail(f"{variant}: {format_bytes(result.size_bytes)}")
    return {"exports": exports, "artefacts": [e["path"] for e in exports.values()]}


def gate_stage(ctx, *, eval_data, class_names, saved_model: bool):
    """Gate, benchmark and record every file of the export stage (and the QAT file, if any)."""
    from tfxfer.export import export_serving, gate_variants

    cfg, model = ctx.cfg, ctx.model()
    exports = {**ctx.outputs["export"]["exports"], **qat_export_entry(ctx)}
    paths = {variant: ctx.abs(entry["path"]) for variant, entry in exports.items()}
    ctx.console.info(f"  verify {len(paths)} file(s) on the held-out split")
    gate = gate_variants(model, paths, eval_data=eval_data, class_names=class_names,
                         thresholds=gate_thresholds(cfg))
    benches = benchmark_exports(ctx, paths)
    saved = None
    if saved_model:  # written when asked even if a quantized file failed: it checks itself against Keras
        saved = export_serving(model, os.path.dirname(ctx.path("export", "serving", "x")), name=cfg.name,
                               class_names=class_names, eval_data=eval_data).path
    deliver = "int8_qat" if "int8_qat" in gate.results and gate["int8_qat"].passed else None
    return record_gate(ctx, exports, gate.results, benches, saved_model=saved, deliver=deliver)


def benchmark_exports(ctx, paths: dict) -> dict:
    """``{variant: BenchmarkResult}`` of ``{variant: path}`` timed side by side (`benchmark_variants`),
    or {} with ``export.benchmark: false``."""
    from tfxfer.export import benchmark_variants

    cfg = ctx.cfg
    if not cfg.export.benchmark or not paths:
        return {}
    bar = ctx.console.counter(desc=f"benchmark (LiteRT, {len(paths)} files x threads {list(cfg.export.threads)}, "
                                   "interleaved)", unit="block")
    try:
        return benchmark_variants(paths, threads=cfg.export.threads, runs=cfg.export.bench_runs, progress=bar.update)
    finally:
        bar.close()


#: What ships when the configured ``deliver`` file fails its gate: the first of these that passed.
FALLBACK_ORDER = ("int8_qat", "int8", "dynamic", "float16", "float32")


def record_gate(ctx, exports, results, benches, *, saved_model=None, deliver=None) -> dict:
    """Write each file's verdict into its sidecar, ``export/gate.json`` and ``export/table.json``;
    print the table; return the verify stage's outputs."""
    from tfxfer.export import export_rows, write_verdicts

    cfg, console = ctx.cfg, ctx.console
    write_verdicts({v: ctx.abs(exports[v]["sidecar"]) for v in results}, results)
    rows = export_rows({v: (e["path"], e["size_bytes"]) for v, e in exports.items()}, results, benches,
                       threads=cfg.export.threads)
    # A passing quantization-aware int8 file supersedes the post-training int8 file: the latter stays in
    # the table (marked FAIL if it failed) as the baseline QAT had to beat, but does not fail the run.
    superseded = ["int8"] if "int8_qat" in results and results["int8_qat"].passed and "int8" in results else []
    passed = all(r.passed for v, r in results.items() if v not in superseded)
    for v in superseded:
        if not results[v].passed:
            console.info(f"  {v} (post-training) failed its gate; the quantization-aware int8_qat file passed "
                         "and is delivered instead")
    key = deliver or cfg.export.deliver
    if not results[key].passed:
        fallback = next((v for v in FALLBACK_ORDER if v in results and results[v].passed), None)
        reason = "; ".join(results[key].failures) or "failed"
        if fallback is None:
            console.info(f"  {key} failed its gate ({reason}) and no other file passed: nothing delivered")
        else:
            console.info(f"  {key} failed its gate ({reason}); delivering {fallback}, the smallest file that "
                         "passed (remedies: quantize.enabled: true for QAT, or tfxfer.quantize.selective_int8)")
            key = fallback
    deliver = exports[key]["path"] if results[key].passed else None
    gate = {"passed": passed, "failed": [v for v, r in results.items() if not r.passed and v not in superseded],
            "superseded": superseded,
            "results": {v: r.to_dict() for v, r in results.items()},
            "benchmarks": {v: b.to_dict() for v, b in benches.items()}}
    for entry in gate["results"].values():
        entry["path"] = ctx.rel(entry["path"]) if entry.get("path") else None
    gate_path = ctx.path("export", "gate.json")
    atomic_write_json(gate_path, gate)
    table_path = ctx.path("export", "table.json")
    atomic_write_json(table_path, {"rows": rows, "deliver": deliver, "deliver_variant": key, "passed": passed,
                                   "superseded": superseded})
    for row in rows:
        r = results[row["variant"]]
        interval = (f"  drop {r.accuracy_drop:+.2f} pts [95 % {r.drop_interval[0]:+.2f}, {r.drop_interval[1]:+.2f}: "
                    f"{r.drop_verdict}]" if r.drop_verdict and r.drop_interval else "")
        console.info(f"  {row['variant']:<8} {format_bytes(row['size_kib'] * 1024):>9}  "
                     f"{'-' if row['latency_ms'] is None else format(row['latency_ms'], '.2f')} ms  "
                     f"acc {row['accuracy_file']:.4f} (keras {row['accuracy_keras']:.4f}, agreement "
                     f"{r.top1_agreement:.4f}){interval}  gate {row['gate']}")
    artefacts = [ctx.rel(gate_path), ctx.rel(table_path)] + [e["sidecar"] for e in exports.values()]
    return {"passed": passed, "failed": gate["failed"], "deliver": deliver, "deliver_variant": key, "rows": rows,
            "saved_model": ctx.rel(saved_model) if saved_model else None, "artefacts": artefacts}


def run_export(ctx):
    from tfxfer.recipes.image_data import take_images
    from tfxfer.recipes.image_stages import splits

    data = splits(ctx)
    rep = take_images(data.train_plain, ctx.cfg.export.num_calibration)[0] if "int8" in ctx.cfg.export.variants else None
    return convert_stage(ctx, class_names=data.class_names, representative_data=rep)


def run_verify(ctx):
    from tfxfer.recipes.image_data import take_images
    from tfxfer.recipes.image_stages import splits

    data = splits(ctx)
    return gate_stage(ctx, eval_data=data.held_out_arrays(), class_names=data.class_names,
                      saved_model=ctx.cfg.export.saved_model)


def export_stages() -> list[Stage]:
    """The export and verify stages of image recipes (`run_export`, `run_verify`)."""
    return [
        Stage("export", run_export, inputs=("data",) + MODEL_STAGES,
              config=lambda c: {"variants": list(c.export.variants), "num_calibration": c.export.num_calibration,
                                "seed": c.seed, "name": c.name}),
        Stage("verify", run_verify, inputs=("data", "export") + MODEL_STAGES,
              config=lambda c: {"export": c.section("export")["export"]}),
    ]
