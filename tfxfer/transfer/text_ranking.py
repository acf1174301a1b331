"""The text side of `rank_backbones`: one embedding pass per text encoder, scored beside its size.

Features are the encoder's mean-pooled, L2-normalised last hidden states (the sentence embedding
of `tfxfer.text.TextEncoder.embed` with ``pooling="mean"``), scored with LogME and H-score. LEEP and NCE need a source
classifier head, which a text encoder does not have: they stay empty and each row's note says so.
Cost is the parameter count and the float32 weight size; the int8 TFLite size and LiteRT latency
are not measured for text (the row's note says so), so a budget may only limit ``max_params``.

Example:
    >>> from tfxfer.transfer import rank_backbones
    >>> texts = ["good film", "great plot", "bad film", "awful plot"] * 10; labels = [1, 1, 0, 0] * 10
    >>> result = rank_backbones((texts, labels), ["all-minilm-l6-v2", "all-minilm-l6-v2:random"],
    ...                         verbose=0)  # doctest: +SKIP
    >>> [r["candidate"] for r in result.to_rows()]  # doctest: +SKIP
    ['all-minilm-l6-v2', 'all-minilm-l6-v2:random']
"""

from __future__ import annotations

import logging
import time

import keras
import numpy as np

from tfxfer.errors import ArgumentError, DataError
from tfxfer.text.encoders import as_texts
from tfxfer.transfer._data import single_labels
from tfxfer.transfer.logme import logme
from tfxfer.transfer.scores import hscore, knn
from tfxfer.transfer.text_candidates import TextCandidate, as_text_candidate
from tfxfer.utils.validate import check_int

TEXT_COST_AXES = ("params", "float32_size_mib")
HEAD_NOTE = "LEEP/NCE skipped: a text encoder has no source classifier head"
COST_NOTE = "int8 TFLite size and LiteRT latency not measured for text encoders"
MIB = 2.0**20


def text_arrays(data, *, max_samples: int | None, seed: int):
    """``(texts, labels)`` as a 1-D object array of str and a label array; a seeded subset if asked."""
    texts, labels = as_texts(data[0]), np.asarray(data[1])
    if labels.ndim == 0 or len(texts) != len(labels):
        raise DataError(f"`data` has {len(texts)} texts but {labels.size if labels.ndim else 'no'} labels")
    if max_samples is not None and len(texts) > max_samples:
        index = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_samples, replace=False))
        texts, labels = texts[index], labels[index]
    return texts, labels


def _class_ids(labels: np.ndarray) -> np.ndarray:
    if labels.dtype.kind in "OUS":  # "pos" / "neg": sorted names -> ids
        return np.unique(labels.astype(str), return_inverse=True)[1].astype(np.int64)
    return single_labels(labels)


def check_text_options(budget, cost_axis: str, input_size) -> None:
    """Refuse what cannot apply to text encoders, in one line each."""
    if input_size is not None:
        raise ArgumentError("input_size", input_size, "applies to image data; use sequence_length for text")
    if cost_axis not in TEXT_COST_AXES:
        raise ArgumentError("cost_axis", cost_axis, "must be one of " + ", ".join(TEXT_COST_AXES)
                            + " for text encoders (their int8 size and latency are not measured)")
    if budget.max_size_mib is not None or budget.max_latency_ms is not None:
        raise ArgumentError("budget", budget.describe(), "may only limit max_params for text encoders "
                            "(their int8 TFLite size and LiteRT latency are not measured)")


def embed_texts(encoder, texts, *, batch_size: int, label: str = "", verbose: int = 0) -> np.ndarray:
    """Mean-pooled embeddings of ``texts`` in one ``predict`` pass, with progress lines when verbose.

    Uses the encoder's own `tfxfer.text.TextEncoder.embedding_model` (strings in, tokenised in the
    graph, mean pooling over real tokens, L2-normalised as sentence embeddings are).
    """
    texts = as_texts(texts)
    steps = -(-len(texts) // batch_size)
    every = max(1, steps // 4)

    class Progress(keras.callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            done = batch + 1
            if done % every == 0 and done < steps:
                print(f"  {label}: embedded {min(done * batch_size, len(texts))}/{len(texts)} texts", flush=True)

    model = encoder.embedding_model(pooling="mean", normalize=True)
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)  # a fresh model per candidate: TensorFlow's retracing warning is noise here
    try:
        out = model.predict(texts, batch_size=batch_size, verbose=0, callbacks=[Progress()] if verbose else [])
    finally:
        logger.setLevel(level)
    return np.asarray(out, dtype=np.float32)


def _empty_row(candidate: TextCandidate, score_names) -> dict:
    return {"candidate": candidate.label, "backbone": candidate.preset,
            "weights": "pretrained" if candidate.pretrained else "random", "input_size": "-",
            "sequence_length": None, "params": None, "float32_size_mib": None, "int8_size_mib": None,
            "latency_ms": None, **{name: None for name in score_names}, "pareto": False,
            "within_budget": True, "over_budget": "", "rank": None, "cost_s": 0.0, "extract_s": 0.0,
            "score_s": 0.0, "note": ""}


def rank_text_rows(data, candidates, *, budget, scores, score_names, primary: str, task: str,
                   score_over_budget: bool, max_samples, batch_size: int, sequence_length, seed: int,
                   keep_features: bool, verbose: int):
    """One unranked row per text candidate; returns (rows, kept features, num samples, num classes)."""
    check_int("sequence_length", sequence_length, low=2, allow_none=True)
    if isinstance(candidates, (str, TextCandidate)):
        candidates = [candidates]
    candidates = [as_text_candidate(c) for c in candidates]
    if not candidates:
        raise ArgumentError("candidates", candidates, "must name at least one text encoder")
    labels_seen = [c.label for c in candidates]
    if len(set(labels_seen)) != len(labels_seen):
        raise ArgumentError("candidates", labels_seen, "must not repeat a candidate (give each a distinct label)")
    texts, labels = text_arrays(data, max_samples=max_samples, seed=seed)
    num_classes = None
    if task == "classification":
        labels = _class_ids(labels)
        num_classes = int(np.unique(labels).size)
        if num_classes < 2:
            raise DataError(f"`data` has a single class ({np.unique(labels).tolist()}); ranking needs at least 2")
    else:
        labels = labels.astype(np.float64)

    rows, kept = [], {}
    for index, candidate in enumerate(candidates, 1):
        row = _empty_row(candidate, score_names)
        notes = [COST_NOTE] + ([HEAD_NOTE] if {"leep", "nce"} & set(scores) else [])
        start = time.perf_counter()
        encoder = candidate.load(sequence_length=sequence_length)
        params = int(encoder.backbone.count_params())
        row.update(params=params, float32_size_mib=params * 4 / MIB, sequence_length=encoder.sequence_length,
                   input_size=f"seq {encoder.sequence_length}", backbone=encoder.backbone.name,
                   cost_s=time.perf_counter() - start)
        reasons = budget.violations(row)
        row["within_budget"], row["over_budget"] = not reasons, "; ".join(reasons)
        if row["within_budget"] or score_over_budget:
            start = time.perf_counter()
            features = embed_texts(encoder, texts, batch_size=batch_size, label=candidate.label, verbose=verbose)
            row["extract_s"] = time.perf_counter() - start
            if keep_features:
                kept[candidate.label] = (features, None, labels)
            start = time.perf_counter()
            try:
                for name in scores:
                    if name == "logme":
                        row[name] = logme(features, labels, task=task)
                    elif name == "hscore":
                        row[name] = hscore(features, labels)
                    elif name == "knn" and task == "classification":
                        row[name] = knn(features, labels)
            except DataError as exc:  # e.g. random weights whose activations overflow to inf
                notes.append(f"not scored: {exc}")
                row.update({name: None for name in scores})
            row["score_s"] = time.perf_counter() - start
        del encoder
        row["note"] = "; ".join(notes)
        rows.append(row)
        if verbose:
            score = row[primary]
            print(f"[{index}/{len(candidates)}] {candidate.label} @ {row['input_size']}: {params / 1e6:.2f} M params, "
                  f"{row['float32_size_mib']:.1f} MiB float32; "
                  + (f"{primary} {score:.4f} (features {row['extract_s']:.1f} s)" if score is not None
                     else (f"over budget ({row['over_budget']})" if not row["within_budget"] else "not scored")),
                  flush=True)
    return rows, kept, len(texts), num_classes
