"""Texts (classification) and token lists (NER) for a pipeline run, from any `Source`.

Packaged data sets keep their fixed splits (subsampled with ``data.max_train`` / ``data.max_eval``);
tables go through `tfxfer.data.load_texts` and CoNLL files through `tfxfer.data.load_conll`
(their hygiene summary, seeded split and leakage report).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfxfer.data import DataSummary, find_duplicates, imbalance_report, load, load_conll, load_texts
from tfxfer.data.hygiene import count_by_class
from tfxfer.errors import DataError


@dataclasses.dataclass
class TextSplits:
    """``(x, y)`` numpy pairs per split; ``x`` holds strings (classification) or token lists (NER),
    ``y`` class ids or tag-id arrays. ``class_names`` are classes or tags."""

    train: tuple
    val: tuple | None
    test: tuple | None
    class_names: list
    summary: object

    @property
    def eval_split(self) -> str:
        return "test" if self.test is not None else "val"

    @property
    def eval(self) -> tuple:
        return self.test if self.test is not None else self.val

    def sizes(self) -> dict:
        return {s: int(len(getattr(self, s)[1])) for s in ("train", "val", "test") if getattr(self, s) is not None}


def per_class_quota(counts, limit: int) -> np.ndarray:
    """How many of each class's ``counts`` items a subsample of exactly ``limit`` keeps: in proportion
    (largest remainder), at least one of every class while ``limit`` allows one each.

    Example:
        >>> per_class_quota(np.array([30, 30, 1]), 10).tolist()
        [5, 4, 1]
    """
    counts = np.asarray(counts, dtype=np.int64)
    base = np.minimum(counts, 1) if limit >= len(counts) else np.zeros_like(counts)
    room = counts - base
    share = room * (limit - base.sum()) / max(int(room.sum()), 1)
    take = base + np.floor(share).astype(np.int64)
    left = limit - int(take.sum())  # < number of classes with a fractional share: each has room for one more
    take[np.argsort(-(share - np.floor(share)), kind="stable")[:left]] += 1
    return take


def _limit(x, y, limit, seed, stratify):
    """At most ``limit`` items, drawn with the seeded RNG; ``stratify``: per class in proportion (every class
    kept while ``limit`` allows one each), never an error about a rare class."""
    x, y = np.asarray(x), np.asarray(y)
    if limit is None or len(y) <= limit:
        return x, y
    rng = np.random.default_rng(seed)
    if stratify:
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        quota = per_class_quota(counts, limit)
        idx = np.concatenate([rng.choice(np.flatnonzero(inverse == c), size=int(quota[c]), replace=False)
                              for c in range(len(classes))])
    else:
        idx = rng.permutation(len(y))[:limit]
    idx = np.sort(idx)
    return x[idx], y[idx]


def _summary_for_packaged(name, parts, names, tokens: bool, licence: str):
    summary = DataSummary(source=f"packaged data set {name!r} ({licence})",
                          scanned=int(sum(len(y) for _, y in parts.values())))
    keys, split_of, item_names = [], [], []
    for split, (x, _) in parts.items():
        for i, item in enumerate(x):
            keys.append(" ".join(item) if tokens else str(item))
            split_of.append(split)
            item_names.append(f"{split}#{i}")
    summary.duplicates, summary.leakage = find_duplicates(keys, split_of, item_names)
    if tokens:
        summary.class_counts = {s: count_by_class(np.concatenate([np.asarray(t) for t in y]) if len(y) else [], names)
                                for s, (_, y) in parts.items()}
    else:
        summary.class_counts = {s: count_by_class(y, names) for s, (_, y) in parts.items()}
        summary.imbalance = imbalance_report(summary.class_counts["train"])
    summary.notes.append("fixed splits of the packaged data set")
    return summary


def load_text_data(cfg, source) -> TextSplits:
    """Load ``source`` for a text_classification or token_classification recipe."""
    d, seed = cfg.data, cfg.seed
    tokens = cfg.task == "token_classification"
    if source.kind == "packaged":
        loaded = load(source.value)
        parts = {"train": _limit(*loaded.train, d.max_train, seed, not tokens),
                 "val": _limit(*loaded.val, d.max_eval, seed + 1, not tokens),
                 "test": _limit(*loaded.test, d.max_eval, seed + 2, not tokens)}
        names = list(loaded.class_names)
        summary = _summary_for_packaged(source.value, parts, names, tokens, loaded.info.licence)
        if d.max_train or d.max_eval:
            summary.notes.append(f"subsampled: max_train={d.max_train}, max_eval={d.max_eval} (seed {seed})")
        return TextSplits(parts["train"], parts["val"], parts["test"], names, summary)
    split = dict(validation_split=d.validation_split, test_split=d.test_split, seed=seed, on_leakage=d.on_leakage)
    if tokens:
        data = load_conll(source.value, **split)
        names = list(data.tag_names)
    else:
        data = load_texts(source.value, text_column=d.text_column, label_column=d.label_column, **split)
        if data.multi_label:
            raise DataError(f"{source.value} has multi-label rows; the text recipe trains single-label classifiers")
        names = list(data.class_names)
    parts = {s: getattr(data, s) for s in ("train", "val", "test")}
    if parts["val"] is None and parts["test"] is None:
        raise DataError(f"{source.value}: set data.validation_split or data.test_split > 0; evaluation and the "
                        "export gate need held-out examples")
    out = {s: (_limit(*p, d.max_train if s == "train" else d.max_eval, seed, not tokens) if p is not None else None)
           for s, p in parts.items()}
    return TextSplits(out["train"], out["val"], out["test"], names, data.summary)
