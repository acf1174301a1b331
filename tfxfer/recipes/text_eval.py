"""Evaluate a text classifier or NER model (raw strings in) on labelled text: what ``tfxfer evaluate``
runs when the model is not an image model.

A text classifier reads a packaged text data set (one split) or a CSV / TSV / JSONL table with text
and label columns (`tfxfer.data.load_texts`); its numbers are `classification_metrics` (accuracy,
macro F1, ECE, per class). An NER model reads ``wnut16`` or a CoNLL file (`tfxfer.data.load_conll`);
its numbers are entity-level precision / recall / F1 (seqeval style), tag accuracy and a per-type
table, as in the NER recipe's evaluate stage. Labels or tags the model does not know are an error.

Example:
    >>> m = ner_metrics([["B-person", "O", "B-city"]], [["B-person", "O", "O"]])
    >>> m["entity_precision"], m["entity_recall"], m["tag_accuracy"]
    (1.0, 0.5, 0.6667)
    >>> [(e["type"], e["f1"], e["support"]) for e in m["entities"]]
    [('city', 0.0, 1), ('person', 1.0, 1)]

    With a trained run (``tfxfer run pipelines/text_classification.yaml --set data.source=reviews.csv``)::

        from tfxfer.recipes.inference import open_model
        metrics = evaluate_text_model(open_model("runs/text_classification"), "reviews.csv", limit=500)
        print(format_text_metrics(metrics, title="reviews.csv"))
"""

from __future__ import annotations

import json
import os

import numpy as np

from tfxfer.errors import ArgumentError, DataError

TOKEN_TASK = "token_classification"


def model_task(model) -> str:
    """``"token_classification"`` or ``"text_classification"`` for a loaded text model.

    Per-token outputs (rank 3) mark an NER model even when ``labels.json`` is missing.
    """
    shape = getattr(model.model, "output_shape", None)
    if model.task == TOKEN_TASK or (shape is not None and len(shape) == 3):
        return TOKEN_TASK
    return "text_classification"


def _packaged(source: str, task: str, split: str):
    from tfxfer.data import describe, list_datasets, load

    key = source.strip().lower().replace("-", "_")
    if key not in list_datasets():
        return None
    info = describe(key)
    if info.task != task:
        raise ArgumentError("data", source, f"is a {info.task} data set; this model needs "
                            f"{', '.join(list_datasets(task=task))} or a file")
    if split not in ("train", "val", "test"):
        raise ArgumentError("split", split, 'must be "train", "val" or "test"')
    loaded = load(key)
    x, y = getattr(loaded, split)
    return x, y, list(loaded.class_names)


def _check_jsonl_fields(path: str, fields) -> None:
    """A missing field in the first JSON row is one error, not every row skipped."""
    from tfxfer.data.text import read_text_file

    for line in read_text_file(path).splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            return  # load_texts reports bad rows
        if isinstance(row, dict):
            missing = [f for f in fields if f not in row]
            if missing:
                raise DataError(f"Field {missing[0]!r} not found in {path}; the first row has fields {sorted(row)} "
                                "(use --text-column / --label-column)")
        return


def _remap(ids, found_names, model_names, what: str, where: str) -> np.ndarray:
    unknown = sorted(set(found_names) - set(model_names))
    if unknown:
        raise DataError(f"{what} {unknown} in {where} are not among the model's {what.lower()} {list(model_names)}")
    lookup = np.array([list(model_names).index(n) for n in found_names], np.int64)
    return lookup[np.asarray(ids, np.int64)] if len(ids) else np.zeros(0, np.int64)


def _file(source: str, kinds: str) -> str:
    path = os.path.abspath(os.path.expanduser(source))
    if not os.path.isfile(path):
        raise ArgumentError("data", source, f"must be a packaged data set name or an existing {kinds} file")
    return path


def classification_data(source: str, class_names, *, split: str = "test", text_column: str = "text",
                        label_column: str = "label"):
    """``(texts, labels, skipped)``: labels are ids into the model's ``class_names``."""
    packaged = _packaged(source, "text_classification", split)
    if packaged is not None:
        x, y, names = packaged
        return np.asarray([str(t) for t in x], dtype=object), _remap(y, names, class_names, "Labels", source), 0
    from tfxfer.data import load_texts

    path = _file(source, "CSV / TSV / JSONL")
    if path.lower().endswith((".jsonl", ".ndjson")):
        _check_jsonl_fields(path, (text_column, label_column))
    data = load_texts(path, text_column=text_column, label_column=label_column, on_leakage="ignore",
                      min_classes=1)  # a table may hold one label of the model's
    if data.multi_label:
        raise DataError(f"{source} has multi-label rows; the model is a single-label classifier")
    labels = _remap(data.train.y, data.class_names, class_names, "Labels", source)
    return np.asarray(data.train.x, dtype=object), labels, len(data.summary.skipped)


def token_data(source: str, tag_names, *, split: str = "test"):
    """``(word lists, tag-string lists, skipped)`` from ``wnut16`` or a CoNLL file."""
    packaged = _packaged(source, TOKEN_TASK, split)
    if packaged is not None:
        x, y, names = packaged
        skipped = 0
    else:
        from tfxfer.data import load_conll

        data = load_conll(_file(source, "CoNLL"), on_leakage="ignore")
        x, y, names, skipped = data.train.x, data.train.y, data.tag_names, len(data.summary.skipped)
    unknown = sorted({names[int(i)] for row in y for i in row} - set(tag_names))
    if unknown:
        raise DataError(f"Tags {unknown} in {source} are not among the model's tags {list(tag_names)}")
    return [list(map(str, w)) for w in x], [[names[int(i)] for i in row] for row in y], skipped


def gate_data(model, source: str, *, split: str = "test", limit: int | None = 1000, text_column: str = "text",
              label_column: str = "label"):
    """``(texts, labels)`` held out for the export gate of a loaded text model; what ``tfxfer export``
    passes as ``eval_data``. A classifier's labels are class ids; an NER model's are the file's tags
    placed on the first word piece of each word as training and `evaluate_text_model` align them
    (`tfxfer.export.text_gate.word_tag_labels`: int ``[texts, sequence_length]``, -1 at [CLS], [SEP],
    padding and later pieces), so the gate's accuracies are real tag accuracies per word (of each
    word's most probable tag; ``tfxfer evaluate``'s tag accuracy decodes valid BIO sequences first,
    so the two can differ a little)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ArgumentError("limit", limit, "must be None or an int >= 1")
    if model_task(model) == TOKEN_TASK:
        from tfxfer.export.text_gate import word_tag_labels

        words, tags, _ = token_data(source, model.class_names, split=split)
        words, tags = words[:limit], tags[:limit]
        if not words:
            raise DataError(f"No tagged sentences in {source} to gate the export on")
        return word_tag_labels(model.model, words, tags, tag_names=model.class_names)
    texts, labels, _ = classification_data(source, model.class_names, split=split, text_column=text_column,
                                           label_column=label_column)
    return texts[:limit], np.asarray(labels[:limit])


def ner_metrics(true_tags, pred_tags) -> dict:
    """Entity-level F1 / precision / recall, tag accuracy and per-type scores of tag-string lists."""
    from tfxfer.text import entity_scores

    scores = entity_scores(true_tags, pred_tags)
    flat = [(a, b) for t, p in zip(true_tags, pred_tags) for a, b in zip(t, p)]
    return {"num_examples": len(true_tags), "entity_f1": round(scores.f1, 4),
            "entity_precision": round(scores.precision, 4), "entity_recall": round(scores.recall, 4),
            "tag_accuracy": round(float(np.mean([a == b for a, b in flat])), 4) if flat else 0.0,
            "entities": [{"type": k, "precision": round(v["precision"], 4), "recall": round(v["recall"], 4),
                          "f1": round(v["f1"], 4), "support": v["support"]} for k, v in sorted(scores.per_type.items())]}


def evaluate_text_model(model, source: str, *, split: str = "test", limit: int | None = None,
                        text_column: str = "text", label_column: str = "label", batch_size: int = 32) -> dict:
    """Metrics of a loaded text classifier or NER model (`tfxfer.recipes.inference.open_model`) on ``source``.

    Args:
        model: a `LoadedModel` whose ``image_size`` is None (raw strings in).
        source: a packaged data set name (``split`` is used), a CSV / TSV / JSONL table for a
            classifier, or a CoNLL file for an NER model.
        limit: evaluate at most this many texts (sentences), the first ones.
        text_column, label_column: column (CSV / TSV) or field (JSONL) names of a table.

    Returns:
        For a classifier `classification_metrics` plus ``task`` and ``skipped`` (rows the loader
        dropped); for an NER model `ner_metrics` plus the same two keys.
    """
    if model.image_size is not None:
        raise ArgumentError("model", model.path, "must be a text classifier or NER model")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ArgumentError("limit", limit, "must be None or an int >= 1")
    task = model_task(model)
    if task == TOKEN_TASK:
        from tfxfer.text.ner import predict_word_tags

        words, true, skipped = token_data(source, model.class_names, split=split)
        words, true = words[:limit], true[:limit]
        pred, _ = predict_word_tags(model.model, words, tag_names=model.class_names, batch_size=batch_size)
        metrics = ner_metrics(true, pred)
    else:
        from tfxfer.metrics import classification_metrics
        from tfxfer.text import predict_texts

        texts, labels, skipped = classification_data(source, model.class_names, split=split,
                                                     text_column=text_column, label_column=label_column)
        texts, labels = texts[:limit], labels[:limit]
        metrics = classification_metrics(predict_texts(model.model, texts, batch_size=batch_size), labels,
                                         model.class_names)
    if not metrics["num_examples"]:
        raise DataError(f"No labelled examples to evaluate in {source}")
    return {"task": task, "skipped": skipped, **metrics}


def format_text_metrics(metrics: dict, *, title: str) -> str:
    """The headline and per-class (or per-entity-type) table that ``tfxfer evaluate`` prints."""
    n, skipped = metrics["num_examples"], metrics.get("skipped") or 0
    note = f", {skipped} rows skipped" if skipped else ""
    if metrics["task"] == TOKEN_TASK:
        lines = [f"{title} ({n} sentences{note}): entity F1 {metrics['entity_f1']:.4f} (precision "
                 f"{metrics['entity_precision']:.4f}, recall {metrics['entity_recall']:.4f}), tag accuracy "
                 f"{metrics['tag_accuracy']:.4f}",
                 f"{'entity type':<20} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}"]
        rows = [(e["type"], e) for e in metrics["entities"]]
    else:
        lines = [f"{title} ({n} texts{note}): accuracy {metrics['accuracy']:.4f}, macro F1 "
                 f"{metrics['macro_f1']:.4f}, ECE {metrics['ece']:.4f}",
                 f"{'class':<20} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}"]
        rows = [(c["name"], c) for c in metrics["per_class"]]
    lines += [f"{name[:20]:<20} {r['precision']:>9.4f} {r['recall']:>7.4f} {r['f1']:>7.4f} {r['support']:>8}"
              for name, r in rows]
    return "\n".join(lines)
