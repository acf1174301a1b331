"""``tfxfer export`` for text classifiers and NER models: token-id TFLite files (tokenizer files
beside them), each gated against the Keras model on held-out texts, optionally benchmarked in
LiteRT, and a TF Serving SavedModel that takes raw strings.

Example:
    >>> from tfxfer.recipes.inference import load_model
    >>> from tfxfer.recipes.text_export import export_text_model
    >>> table = export_text_model(load_model("runs/text_classification"), "reviews.csv",
    ...                           "export", variants=("float32", "dynamic"))  # doctest: +SKIP
    >>> print(table.format())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfxfer.errors import ArgumentError, GateError

TEXT_EXPORT_VARIANTS = ("float32", "float16", "dynamic")


@dataclasses.dataclass
class TextExportTable:
    """What `export_text_model` wrote: one row per variant, the gate report, the SavedModel path."""

    rows: list
    report: object
    saved_model: str | None

    def format(self) -> str:
        lines = [f"{'variant':<9} {'size KiB':>9} {'latency ms':>10} {'top-1 agree':>11} {'accuracy':>9}  gate"]
        for r in self.rows:
            latency = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}"
            accuracy = "-" if r["accuracy_file"] is None else f"{r['accuracy_file']:.4f}"
            lines.append(f"{r['variant']:<9} {r['size_kib']:>9.1f} {latency:>10} {r['top1_agreement']:>11.4f} "
                         f"{accuracy:>9}  {'pass' if r['passed'] else 'FAIL'}")
        if self.saved_model:
            lines.append(f"SavedModel (raw strings in): {self.saved_model}")
        return "\n".join(lines)


def _gate_texts(model, source, *, split, limit, text_column, label_column):
    """Held-out texts and labels (None for NER: Keras's own tags are the reference)."""
    from tfxfer.recipes.text_eval import TOKEN_TASK, classification_data, model_task, token_data

    if model_task(model) == TOKEN_TASK:
        words, _, _ = token_data(source, model.class_names, split=split)
        return np.asarray([" ".join(w) for w in words[:limit]], dtype=object), None
    texts, labels, _ = classification_data(source, model.class_names, split=split, text_column=text_column,
                                           label_column=label_column)
    return texts[:limit], np.asarray(labels[:limit])


def export_text_model(model, source: str, out_dir, *, variants=("float32", "dynamic"), name: str | None = None,
                      split: str = "test", limit: int | None = 1000, text_column: str = "text",
                      label_column: str = "label", benchmark: bool = True, keep_failed: bool = False,
                      saved_model: str | None = None, progress=None) -> TextExportTable:
    """Export a loaded text model (`tfxfer.recipes.inference.load_model`) and gate every file.

    Args:
        model: a `LoadedModel` of a text classifier or NER model (a ``.keras`` file or run folder).
        source: held-out labelled data (as for `tfxfer evaluate`): a packaged text set or a table for
            a classifier, ``wnut16`` or a CoNLL file for an NER model.
        out_dir: folder for ``<name>_<variant>.tflite``, sidecars and tokenizer files.
        variants: from ``TEXT_EXPORT_VARIANTS`` (full int8 is not offered for text encoders).
        name: file name prefix (default: the model's name).
        benchmark: time every file in LiteRT, side by side.
        keep_failed: keep files that fail the gate (else they are deleted).
        saved_model: also write a TF Serving SavedModel under this name (classifiers only).
        progress: ``progress(done, total)`` for the benchmark.

    Raises:
        GateError: a variant failed its gate (after every file was tried; see ``report``).
    """
    from tfxfer.export import benchmark_many
    from tfxfer.recipes.text_eval import TOKEN_TASK, model_task
    from tfxfer.text import export_text_saved_model, export_text_tflite, verify_text_tflite

    if model.image_size is not None or model.kind != "keras":
        raise ArgumentError("model", model.path, "must be a text model saved as .keras (or its run folder)")
    variants = tuple(variants)
    bad = [v for v in variants if v not in TEXT_EXPORT_VARIANTS]
    if not variants or bad:
        raise ArgumentError("variants", list(variants), "must be some of " + ", ".join(TEXT_EXPORT_VARIANTS)
                            + " for a text model (full int8 is for image models)")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ArgumentError("limit", limit, "must be None or an int >= 1")
    name = name or model.model.name
    texts, labels = _gate_texts(model, source, split=split, limit=limit, text_column=text_column,
                                label_column=label_column)
    os.makedirs(out_dir, exist_ok=True)
    paths = {}
    for variant in variants:
        out = export_text_tflite(model.model, os.path.join(out_dir, f"{name}_{variant}.tflite"), variant=variant,
                                 class_names=model.class_names)
        paths[variant] = out.path
    report = verify_text_tflite(model.model, paths, texts, labels=labels, raise_on_failure=False)
    benches = {}
    if benchmark:
        measured = benchmark_many(list(paths.values()), threads=(1,), runs=30, memory=False, progress=progress)
        benches = {v: measured[p] for v, p in paths.items()}
    rows = []
    for variant, path in paths.items():
        result = report[variant]
        rows.append({"variant": variant, "path": path, "size_kib": os.path.getsize(path) / 1024.0,
                     "latency_ms": benches[variant].median_ms(1) if variant in benches else None,
                     "top1_agreement": result.top1_agreement, "accuracy_file": result.tflite_accuracy,
                     "passed": result.passed, "failures": list(result.failures)})
    saved = None
    if saved_model and report.passed:
        if model_task(model) == TOKEN_TASK:
            raise ArgumentError("--saved-model", saved_model, "is for text classifiers (NER models ship as TFLite)")
        saved = export_text_saved_model(model.model, os.path.join(out_dir, "serving"), name=saved_model,
                                        class_names=model.class_names, verify_texts=list(texts[:32]))[0].path
    table = TextExportTable(rows=rows, report=report, saved_model=saved)
    if not report.passed:
        if not keep_failed:
            for variant in report.failed:
                os.remove(paths[variant])
        failures = "; ".join(f"{r['variant']}: {', '.join(r['failures'])}" for r in rows if not r["passed"])
        raise GateError(f"verification gate failed for {', '.join(report.failed)} ({failures})", report=report)
    return table
