"""Export and verify stages of text recipes: gated token-id TFLite files (and a raw-string SavedModel)."""

from __future__ import annotations

import numpy as np

from tfxfer.recipes.text_stages import as_strings, text_splits


def run_export(ctx):
    from tfxfer.text import export_text_tflite

    cfg, data, model = ctx.cfg, text_splits(ctx), ctx.model()
    exports, artefacts = {}, []
    for variant in ctx.console.progress(cfg.export.variants, desc="convert", unit="variant"):
        out = export_text_tflite(model, ctx.path("export", f"{cfg.name}_{variant}.tflite"), variant=variant,
                                 class_names=data.class_names)
        exports[variant] = {"path": ctx.rel(out.path), "size_bytes": out.size_bytes, "sidecar": ctx.rel(out.sidecar_path),
                            "vocab": ctx.rel(out.vocab_path) if out.vocab_path else None}
        artefacts.append(ctx.rel(out.path))
    return {"exports": exports, "artefacts": artefacts}


def gate_texts(ctx, data):
    """Held-out texts (and labels, or None) for the export gate."""
    if ctx.cfg.task == "token_classification":
        return as_strings([" ".join(words) for words in data.eval[0]]), None
    return as_strings(data.eval[0]), np.asarray(data.eval[1])


def run_verify(ctx):
    from tfxfer.recipes.export_stages import benchmark_exports, record_gate, thresholds_of
    from tfxfer.text import verify_text_tflite

    cfg, console = ctx.cfg, ctx.console
    data, model = text_splits(ctx), ctx.model()
    exports = ctx.outputs["export"]["exports"]
    texts, labels = gate_texts(ctx, data)
    results = {}
    for variant in console.progress(list(exports), desc=f"verify on {len(texts)} texts", unit="variant"):
        report = verify_text_tflite(model, {variant: ctx.abs(exports[variant]["path"])}, texts, labels=labels,
                                    thresholds=thresholds_of(cfg), raise_on_failure=False)
        results[variant] = report[variant]
    benches = benchmark_exports(ctx, exports)
    saved = None
    if cfg.export.saved_model and cfg.task == "text_classification" and all(r.passed for r in results.values()):
        from tfxfer.text import export_text_saved_model

        saved, _ = export_text_saved_model(model, ctx.path("export", "serving", "x")[:-2], name=cfg.name,
                                           class_names=data.class_names, verify_texts=texts[:32])
        saved = saved.path
    return record_gate(ctx, exports, results, benches, saved_model=saved)
