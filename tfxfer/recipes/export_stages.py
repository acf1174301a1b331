"""Export stages for image models: convert every TFLite variant, then verify and benchmark each.

* ``export``: pre-flight check, then `tfxfer.export.export_tflite` per variant (int8 calibrated on
  un-augmented training images), optional TF Serving SavedModel.
* ``verify``: `tfxfer.export.verify` per variant on the held-out split (the gate), the verdict
  written into each file's sidecar, then `tfxfer.export.benchmark_many` over all variants side by side. The
  ``deliver`` variant is the run's TFLite file when it passes.
"""

from __future__ import annotations

import os

import numpy as np

from tfxfer.errors import ExportError
from tfxfer.recipes.runner import Stage
from tfxfer.utils.atomic import atomic_write_json

MODEL_STAGES = ("finetune", "distill", "quantize")


def _calibration(ctx, data, n):
    from tfxfer.recipes.image_data import take_images

    return take_images(data.train_plain, n)[0]


def run_export(ctx):
    from tfxfer.export import export_tflite, preflight
    from tfxfer.recipes.image_stages import splits

    cfg, console = ctx.cfg, ctx.console
    data, model = splits(ctx), ctx.model()
    report = preflight(model)
    if not report.ok:
        raise ExportError("the model cannot be exported to TFLite: " + "; ".join(report.problems))
    rep = _calibration(ctx, data, cfg.export.num_calibration) if "int8" in cfg.export.variants else None
    exports, artefacts = {}, []
    for variant in console.progress(cfg.export.variants, desc="convert (int8: calibrate)", unit="variant"):
        path = ctx.path("export", f"{cfg.name}_{variant}.tflite")
        result = export_tflite(model, path, variant=variant, representative_data=rep if variant == "int8" else None,
                               num_calibration=cfg.export.num_calibration, class_names=data.class_names,
                               run_preflight=False, seed=cfg.seed)
        exports[variant] = {"path": ctx.rel(result.path), "size_bytes": result.size_bytes,
                            "input_dtype": result.input_dtype, "sidecar": ctx.rel(result.sidecar_path),
                            "calibration_samples": result.calibration_samples}
        artefacts += [ctx.rel(result.path)]
        console.detail(f"{variant}: {result.size_bytes / 1024:.1f} KiB, input {result.input_dtype}")
    return {"exports": exports, "artefacts": artefacts}


def thresholds_of(cfg):
    return {v: dict(limits) for v, limits in cfg.export.thresholds.items()}


def run_verify(ctx):
    from tfxfer.export import verify
    from tfxfer.recipes.image_data import take_images
    from tfxfer.recipes.image_stages import splits

    cfg, console = ctx.cfg, ctx.console
    data, model = splits(ctx), ctx.model()
    from tfxfer.recipes.edge_stages import qat_export_entry

    exports = {**ctx.outputs["export"]["exports"], **qat_export_entry(ctx)}
    x, y = take_images(data.eval)
    reference = np.asarray(model.predict(x, batch_size=64, verbose=0), dtype=np.float32)
    results = {}
    for variant in console.progress(list(exports), desc=f"verify on {len(y)} {data.eval_split} images",
                                    unit="variant"):
        path = ctx.abs(exports[variant]["path"])
        kind = "int8" if variant == "int8_qat" else variant  # the QAT file is gated as an int8 file
        report = verify(model, {kind: path}, (x, y), thresholds=thresholds_of(cfg), class_names=data.class_names,
                        raise_on_failure=False, reference_outputs=reference)
        results[variant] = report[kind]
    benches = benchmark_exports(ctx, exports)
    saved = None
    if cfg.export.saved_model and all(r.passed for r in results.values()):
        from tfxfer.export import export_saved_model

        saved = export_saved_model(model, ctx.path("export", "serving", "x")[:-2], name=cfg.name,
                                   class_names=data.class_names).path
    deliver = "int8_qat" if "int8_qat" in results and results["int8_qat"].passed else None
    return record_gate(ctx, exports, results, benches, saved_model=saved, deliver=deliver)


def record_gate(ctx, exports, results, benches, *, saved_model=None, deliver=None) -> dict:
    """Write each file's verdict into its sidecar, ``export/gate.json`` and ``export/table.json``;
    print the table; return the verify stage's outputs."""
    import json

    cfg, console = ctx.cfg, ctx.console
    for variant, r in results.items():
        sidecar = ctx.abs(exports[variant]["sidecar"])
        entry = {}
        if os.path.isfile(sidecar):
            with open(sidecar, encoding="utf-8") as f:
                entry = json.load(f)
        entry["gate"] = {"passed": r.passed, "failures": r.failures, "examples": r.examples,
                         "top1_agreement": r.top1_agreement, "keras_accuracy": r.keras_accuracy,
                         "tflite_accuracy": r.tflite_accuracy, "accuracy_drop": r.accuracy_drop,
                         "max_abs_error": r.max_abs_error}
        atomic_write_json(sidecar, entry)
    rows = export_rows(exports, results, benches, cfg.export.threads)
    # A passing quantization-aware int8 file supersedes the post-training int8 file: the latter stays in
    # the table (marked FAIL if it failed) as the baseline QAT had to beat, but does not fail the run.
    superseded = ["int8"] if "int8_qat" in results and results["int8_qat"].passed and "int8" in results else []
    passed = all(r.passed for v, r in results.items() if v not in superseded)
    for v in superseded:
        if not results[v].passed:
            console.info(f"  {v} (post-training) failed its gate; the quantization-aware int8_qat file passed "
                         "and is delivered instead")
    key = deliver or cfg.export.deliver
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
        console.info(f"  {row['variant']:<8} {row['size_kib']:>9.1f} KiB  "
                     f"{'-' if row['latency_ms'] is None else format(row['latency_ms'], '.2f')} ms  "
                     f"acc {row['accuracy_file']:.4f} (keras {row['accuracy_keras']:.4f})  gate {row['gate']}")
    artefacts = [ctx.rel(gate_path), ctx.rel(table_path)] + [e["sidecar"] for e in exports.values()]
    return {"passed": passed, "failed": gate["failed"], "deliver": deliver, "deliver_variant": key, "rows": rows,
            "saved_model": ctx.rel(saved_model) if saved_model else None, "artefacts": artefacts}


def benchmark_exports(ctx, exports) -> dict:
    """``{variant: BenchmarkResult}`` of every exported file, timed side by side in one LiteRT
    process (interleaved rounds, so their latency ratios are fair), or {} with
    ``export.benchmark: false``. Token-id (text) files get ids, an all-ones mask and zero segments."""
    from tfxfer.export import benchmark_many

    cfg = ctx.cfg
    if not cfg.export.benchmark or not exports:
        return {}
    paths = {variant: ctx.abs(entry["path"]) for variant, entry in exports.items()}
    bar = ctx.console.counter(desc=f"benchmark (LiteRT, {len(paths)} files x threads {list(cfg.export.threads)}, "
                                   "interleaved)", unit="block")
    try:
        measured = benchmark_many(list(paths.values()), threads=cfg.export.threads, runs=cfg.export.bench_runs,
                                  progress=bar.update)
    finally:
        bar.close()
    return {variant: measured[path] for variant, path in paths.items()}


def export_rows(exports, results, benches, threads) -> list[dict]:
    """One row per variant: size, latency, accuracy against Keras, gate verdict."""
    rows = []
    base = exports.get("float32", {}).get("size_bytes")
    for variant, e in exports.items():
        r, b = results[variant], benches.get(variant)
        t1, tn = str(min(threads)), str(max(threads))
        rows.append({
            "variant": variant, "file": os.path.basename(e["path"]), "size_kib": round(e["size_bytes"] / 1024, 1),
            "size_ratio": round(e["size_bytes"] / base, 3) if base else None,
            "latency_ms": round(b.latency[t1]["median_ms"], 3) if b else None,
            "latency_nt_ms": round(b.latency[tn]["median_ms"], 3) if b else None,
            "threads": [int(t1), int(tn)], "accuracy_keras": r.keras_accuracy, "accuracy_file": r.tflite_accuracy,
            "accuracy_drop_pts": r.accuracy_drop, "top1_agreement": r.top1_agreement,
            "max_abs_error": r.max_abs_error, "gate": "pass" if r.passed else "FAIL", "failures": list(r.failures)})
    return rows


def export_stages() -> list[Stage]:
    return [
        Stage("export", run_export, inputs=("data",) + MODEL_STAGES,
              config=lambda c: {"variants": list(c.export.variants), "num_calibration": c.export.num_calibration,
                                "seed": c.seed, "name": c.name}),
        Stage("verify", run_verify, inputs=("data", "export") + MODEL_STAGES,
              config=lambda c: {"export": c.section("export")["export"]}),
    ]
