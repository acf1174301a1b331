"""The text side of the export gate: run exported text files on held-out texts, compare with Keras.

Texts are tokenized by the model's own in-graph tokenizer; each exported artefact (a .tflite file
in LiteRT, a SavedModel signature) runs on the same token ids and is measured against the Keras
model with the image gate's `Thresholds`, `compare_outputs` and `GateReport` (max / mean absolute
error, top-1 agreement, accuracy and its drop, per-class accuracy, calibration). Token
classifiers are compared per token position, never at [CLS] / [SEP] or padding: with tags
(`word_tag_labels`: each word's tag on its first word piece, as training and ``tfxfer evaluate``
align them) at the tagged positions only, so the accuracies are tag accuracies per word; without
tags at every other position, with Keras's own tags as the reference. `tfxfer.export.verify`
calls this for text models.

Example:
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier
    >>> from tfxfer.export import convert_text_tflite, verify
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> model = build_text_classifier(encoder, 2)
    >>> verify(model, {"float32": convert_text_tflite(model)}, ["good film", "bad"]).passed
    True
"""

from __future__ import annotations

import re

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, GateError, ModelError
from tfxfer.export.gate import GateReport, Thresholds, compare_outputs, resolve_thresholds
from tfxfer.text.encoders import as_texts
from tfxfer.text.graph import text_parts, token_model


def is_text_model(model) -> bool:
    """A tfxfer text model (raw strings in, an in-graph tokenizer)."""
    try:
        text_parts(model)
    except (ModelError, ArgumentTypeError):
        return False
    return True


_WORD_TAGS = ("; per-word tag lists of a token classifier go through word_tag_labels(model, words, tags, "
              "tag_names=...), which places each word's tag on its token positions")


def split_text_data(data):
    """``(texts, labels or None)`` from texts or ``(texts, labels)``.

    Raises:
        DataError: labels that are not numbers (tag names, per-word tag lists of different lengths) or
            not one per text; their range is checked against the model by `check_text_eval_data`
            and `gate_text_runs`.
    """
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], str):
        texts, labels = data
    else:
        texts, labels = data, None
    texts = as_texts(texts)
    if not len(texts):
        raise ArgumentError("eval_data", "no texts", "must hold at least one held-out text")
    if labels is None:
        return texts, None
    try:
        y = np.asarray(labels)
    except ValueError:  # numpy refuses ragged nesting
        raise DataError("`eval_data` labels are lists of different lengths: they must be class ids (one per text) "
                        "or tag ids per token position" + _WORD_TAGS) from None
    if y.dtype.kind not in "biuf":
        raise DataError(f"`eval_data` labels must be numbers (class ids, one-hot rows, or tag ids per token "
                        f"position); got dtype {y.dtype}" + _WORD_TAGS)
    if y.ndim == 0 or len(y) != len(texts):
        raise DataError(f"`eval_data` has {len(texts)} texts but {1 if y.ndim == 0 else len(y)} labels")
    return texts, y


def tokenize_for(model, texts) -> dict:
    """Token tensors of ``texts`` as the model's own in-graph tokenizer makes them (numpy int32)."""
    return text_parts(model).tokenizer.tokenize(as_texts(texts))


def predict_text_tflite(tflite, inputs: dict, *, batch_size: int = 32, num_threads: int | None = None) -> np.ndarray:
    """Run a text .tflite (path or bytes) on token tensors ``{key: int [n, length]}`` in LiteRT."""
    from tfxfer.export.litert import load_interpreter

    interpreter = load_interpreter(tflite, num_threads=num_threads)
    details = interpreter.get_input_details()
    out = interpreter.get_output_details()[0]
    by_key = {}
    for d in details:
        key = next((k for k in inputs if re.search(rf"(^|_){k}(:\d+)?$", d["name"])), None)
        if key is None:
            raise ModelError(f"TFLite input {d['name']!r} matches none of {sorted(inputs)}")
        by_key[key] = d
    n = len(next(iter(inputs.values())))
    results, current = [], None
    for start in range(0, n, batch_size):
        chunk = {k: np.asarray(v[start: start + batch_size], dtype=np.int32) for k, v in inputs.items()}
        rows = len(next(iter(chunk.values())))
        if current != rows:
            for k, d in by_key.items():
                interpreter.resize_tensor_input(d["index"], [rows, chunk[k].shape[1]])
            interpreter.allocate_tensors()
            current = rows
        for k, d in by_key.items():
            interpreter.set_tensor(d["index"], chunk[k])
        interpreter.invoke()
        results.append(np.asarray(interpreter.get_tensor(out["index"]), dtype=np.float32))
    return np.concatenate(results)


#: The tag id of a token position that carries no tag (special tokens, padding, later word pieces).
NO_TAG = -1


def word_tag_labels(model, words, tags, *, tag_names, scheme: str = "BIO"):
    """``(texts, labels)`` for gating a token classifier on tagged words: ``texts`` are the words
    joined by spaces; ``labels`` int ``[n, sequence_length]`` holds each word's tag id on its first
    word piece (`tfxfer.text.ner.encode_tagged_words`, the alignment training and ``tfxfer
    evaluate`` use) and `NO_TAG` at [CLS], [SEP], padding, later pieces and words cut off by
    ``sequence_length``. Words the tokenizer turns into no piece (a zero-width space, a BOM) have no
    position in the text the exported files read, so they are left out of ``texts`` and carry no tag.

    Raises:
        DataError: the model's in-graph tokenizer splits a joined sentence differently from its words
            (the tags would sit at the wrong positions); the sentence is named.
    """
    from tfxfer.text.alignment import words_with_pieces
    from tfxfer.text.ner import encode_tagged_words

    words, tags = words_with_pieces(text_parts(model).tokenizer.tokenizer, words, tags)
    encoded = encode_tagged_words(model, words, tags, tag_names=tag_names, scheme=scheme, alignment="first")
    texts = as_texts([" ".join(w) for w in words])
    labels = np.where(encoded.weights > 0, encoded.labels, NO_TAG).astype(np.int64)
    ids = tokenize_for(model, texts)["token_ids"]
    tagged = labels != NO_TAG
    bad = np.flatnonzero(np.any(tagged & (ids != encoded.inputs["token_ids"]), axis=1))
    if bad.size:
        raise DataError(f"sentence {int(bad[0])} ({texts[int(bad[0])][:60]!r}) tokenizes differently as a text than "
                        "word by word; its tags cannot be placed on the model's token positions")
    return texts, labels


def _special_ids(model) -> list[int]:
    tokenizer = text_parts(model).tokenizer.tokenizer
    ids = (getattr(tokenizer, a, None) for a in ("start_token_id", "end_token_id", "pad_token_id"))
    return [int(i) for i in ids if i is not None]


def _token_labels(labels, shape, num_tags: int) -> np.ndarray:
    """Per-position tag ids ``[n, length]`` (`NO_TAG` where none) from ids or one-hot rows."""
    labels = np.asarray(labels)
    if labels.ndim == 3:  # one-hot per position; an all-zero row carries no tag
        labels = np.where(labels.sum(-1) > 0, labels.argmax(-1), NO_TAG)
    if labels.shape != tuple(shape) or not np.issubdtype(labels.dtype, np.integer):
        raise ArgumentError("eval_data", f"labels of shape {labels.shape} ({labels.dtype})",
                            f"must be int tag ids per token position {list(shape)} ({NO_TAG} where a position "
                            "carries no tag; see word_tag_labels)")
    tagged = labels[labels != NO_TAG]
    if tagged.size and (tagged.min() < 0 or tagged.max() >= num_tags):
        raise DataError(f"`eval_data` labels must be tag ids in [0, {num_tags}) or {NO_TAG} (no tag); got "
                        f"[{int(tagged.min())}, {int(tagged.max())}]")
    return labels


def _class_labels(labels, num_classes: int) -> np.ndarray:
    """Class ids ``[n]`` of a sequence classifier from ids or one-hot rows, each in ``[0, num_classes)``."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] in (num_classes, 1):
        y = y.argmax(1) if y.shape[1] == num_classes else y[:, 0]
    if y.ndim != 1:
        raise DataError(f"`eval_data` labels of a {num_classes}-class text classifier must be class ids or one-hot "
                        f"rows of {num_classes}; got shape {y.shape}")
    if not np.all(np.isfinite(y)) or not np.all(np.mod(y, 1) == 0):
        raise DataError("`eval_data` labels must be integer class ids")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= num_classes:
        raise DataError(f"`eval_data` labels must be in [0, {num_classes}); got [{int(y.min())}, {int(y.max())}]")
    return y


def check_text_eval_data(model, data):
    """``(texts, labels or None)`` of ``data`` with the labels checked against ``model`` as
    `gate_text_runs` checks them (range, one per text, tag positions), for callers that convert
    or write something first: a label mistake is a `DataError` before minutes of conversion."""
    texts, labels = split_text_data(data)
    if labels is not None:
        num_outputs = int(model.output_shape[-1])
        parts = text_parts(model)
        if parts.pool.mode == "tokens":
            _token_labels(labels, (len(texts), parts.sequence_length), num_outputs)
        else:
            _class_labels(labels, num_outputs)
    return texts, labels


def gate_text_runs(model, runs: dict, texts, labels, *, thresholds=None, class_names=None,
                   raise_on_failure: bool = False) -> GateReport:
    """``runs``: ``{variant: (path, fn(token inputs) -> outputs)}``; compare each with Keras on ``texts``.

    ``labels`` give the accuracy columns (a `DataError` naming them when they are out of range, not one per
    text or not numbers): class ids (or one-hot rows) for a classifier; for a token
    classifier int tag ids per token position ``[n, sequence_length]``, `NO_TAG` where a position
    carries none (`word_tag_labels` makes them from tagged words). A token classifier is measured
    at its tagged positions only (one example per tagged word), without labels at every position
    but [CLS], [SEP] and padding. Without labels Keras's own predictions are the reference labels,
    so the accuracy columns then measure agreement with Keras, not accuracy.
    """
    texts, labels = split_text_data((texts, labels))
    inputs = tokenize_for(model, texts)
    tokens = text_parts(model).pool.mode == "tokens"
    num_outputs = int(model.output_shape[-1])
    if labels is not None:  # checked before any prediction
        labels = (_token_labels(labels, inputs["token_ids"].shape, num_outputs) if tokens
                  else _class_labels(labels, num_outputs))
    reference = np.asarray(token_model(model).predict(inputs, verbose=0), dtype=np.float32)
    if tokens:
        keep = inputs["padding_mask"].astype(bool) & ~np.isin(inputs["token_ids"], _special_ids(model))
        if labels is not None:
            keep &= labels != NO_TAG
            flat_labels = labels[keep]
        if not keep.any():
            raise DataError(f"No {'tagged ' if labels is not None else ''}token positions to gate on in "
                            f"{len(texts)} texts")
        ref = reference[keep]
    else:
        keep, ref = None, reference
        flat_labels = labels
    if labels is None:
        flat_labels = ref.argmax(1)
    limits = resolve_thresholds(thresholds, names=runs)
    names = [str(c) for c in class_names] if class_names is not None else [str(c) for c in range(ref.shape[1])]
    results = {}
    for variant, (path, run) in runs.items():
        outputs = np.asarray(run(inputs), dtype=np.float32)
        outputs = outputs[keep] if keep is not None else outputs
        results[variant] = compare_outputs(variant, path, ref, outputs, flat_labels, names,
                                           limits.get(variant, Thresholds()))
    report = GateReport(results)
    if raise_on_failure and not report.passed:
        raise GateError(f"Verification gate failed for {report.failed}:\n{report.format()}", report=report)
    return report


def verify_text(model, exports: dict, data, *, thresholds=None, class_names=None,
                raise_on_failure: bool = True) -> GateReport:
    """Gate text .tflite files (``{variant: path or bytes}``) against ``model`` on held-out ``data``
    (texts, or ``(texts, labels)``); see `gate_text_runs`."""
    texts, labels = split_text_data(data)
    runs = {v: (p if isinstance(p, str) else None, lambda inputs, p=p: predict_text_tflite(p, inputs))
            for v, p in dict(exports).items()}
    return gate_text_runs(model, runs, texts, labels, thresholds=thresholds, class_names=class_names,
                          raise_on_failure=raise_on_failure)
