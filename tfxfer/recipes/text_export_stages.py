"""Export and verify stages of text recipes (classification and NER): `tfxfer.recipes.export_stages`
bound to the held-out texts; gated token-id TFLite files (and a raw-string SavedModel for classifiers)."""

from __future__ import annotations

import numpy as np

from tfxfer.recipes.export_stages import convert_stage, gate_stage


def _text_data(ctx):
    from tfxfer.recipes.sources import resolve_source
    from tfxfer.recipes.text_data import load_text_data

    return ctx.memo("data", lambda: load_text_data(ctx.cfg, resolve_source(ctx.cfg)))


def gate_texts(ctx, data):
    """Held-out ``(texts, labels)`` for the export gate (NER: the held-out words' own tags on their first
    word pieces, so the gate's accuracies are tag accuracies, as `tfxfer export` and `evaluate` report)."""
    from tfxfer.text.encoders import as_texts

    if ctx.cfg.task == "token_classification":
        from tfxfer.export.text_gate import word_tag_labels

        return word_tag_labels(ctx.model(), data.eval[0], data.eval[1], tag_names=data.class_names)
    return as_texts([str(t) for t in data.eval[0]]), np.asarray(data.eval[1])


def run_export(ctx):
    return convert_stage(ctx, class_names=_text_data(ctx).class_names)


def run_verify(ctx):
    from tfxfer.export.text_tflite import export_text_tflite

    data = _text_data(ctx)

    def weight_only(path):  # the remedy when the dynamic file fails its gate
        return export_text_tflite(ctx.model(), path, variant="weight_only", class_names=data.class_names)

    return gate_stage(ctx, eval_data=gate_texts(ctx, data), class_names=data.class_names,
                      saved_model=ctx.cfg.export.saved_model and ctx.cfg.task == "text_classification",
                      weight_only_remedy=weight_only)
