"""Stratified, seeded, deterministic train/val/test splits.

The same seed and the same labels always give the same split, on any machine: each stratum
(class, or rarest label for multi-label data) is shuffled with a generator seeded from ``seed``
and cut by rounding, so every split keeps the class proportions. Items that must stay together
(exact-duplicate images, identical texts) can be passed as ``groups``: a group is assigned as a
whole, so duplicates can never leak across splits.

Example:
    >>> import numpy as np
    >>> from tfxfer.data import stratified_split
    >>> labels = np.array([0] * 10 + [1] * 10)
    >>> idx = stratified_split(labels, validation_split=0.2, test_split=0.2, seed=0)
    >>> {k: len(v) for k, v in idx.items()}
    {'train': 12, 'val': 4, 'test': 4}
    >>> [int(np.sum(labels[idx["val"]] == 1)) for _ in [0]]
    [2]
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from tfxfer.errors import ArgumentError, DataError
from tfxfer.utils.validate import check_float, check_int


class Split(NamedTuple):
    """One split of in-memory data: ``x`` (images, texts or token lists) and ``y`` (labels).

    Unpacks like ``keras.datasets``: ``x_train, y_train = data.train``.
    """

    x: object
    y: object

SPLIT_NAMES = ("train", "val", "test")


def check_fractions(validation_split: float, test_split: float) -> None:
    """Validate split fractions (each in [0, 1), sum < 1)."""
    for name, value in (("validation_split", validation_split), ("test_split", test_split)):
        check_float(name, value, low=0, high=1, high_open=True)
    if validation_split + test_split >= 1.0:
        raise ArgumentError(
            "validation_split + test_split",
            validation_split + test_split,
            "must be < 1 so that some data is left for training",
        )


def strata_of(labels) -> np.ndarray:
    """One stratum per item: the class id, or for multi-hot rows the rarest positive label.

    Multi-label rows with no positive label get stratum -1.
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        return labels.astype(np.int64)
    if labels.ndim != 2:
        raise ArgumentError("labels", labels.shape, "must be 1-D class ids or a 2-D multi-hot matrix")
    positive = labels > 0.5
    freq = positive.sum(axis=0).astype(np.float64)
    # rarest positive label per row; rows without labels -> -1
    masked = np.where(positive, freq[None, :], np.inf)
    strata = np.argmin(masked, axis=1).astype(np.int64)
    strata[~positive.any(axis=1)] = -1
    return strata


def stratified_split(
    labels,
    *,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = 0,
    groups: Sequence | None = None,
    stratify: bool = True,
    class_names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Split item indices into train/val/test, keeping class proportions.

    Args:
        labels: class ids ``(n,)`` or a multi-hot matrix ``(n, num_labels)`` (stratified by each
            row's rarest label).
        validation_split: fraction of each stratum for validation.
        test_split: fraction of each stratum for testing.
        seed: the split is a pure function of ``(labels, groups, fractions, seed)``.
        groups: optional group key per item; items sharing a key go to the same split (use the
            content hash to keep duplicates together). Items of a group take the stratum of the
            group's first item.
        stratify: if False, split at random without regard to labels.
        class_names: names of the class ids, used in error messages.

    Returns:
        ``{"train": idx, "val": idx, "test": idx}``: sorted int64 index arrays; "val" / "test"
        are present only when their fraction is > 0.

    Raises:
        DataError: a stratum is too small to give every requested split at least one item.
    """
    check_fractions(validation_split, test_split)
    check_int("seed", seed, low=None)
    strata = strata_of(labels)
    n = len(strata)
    if groups is None:
        group_ids = np.arange(n)
    else:
        if len(groups) != n:
            raise ArgumentError("groups", f"{len(groups)} keys", f"must have one key per item ({n})")
        index: dict = {}
        group_ids = np.array([index.setdefault(str(g), len(index)) for g in groups], dtype=np.int64)
    # collapse to groups (unit of assignment)
    unit_ids, unit_first = np.unique(group_ids, return_index=True)
    unit_strata = strata[unit_first] if stratify else np.zeros(len(unit_ids), np.int64)

    wanted = [("val", float(validation_split)), ("test", float(test_split))]
    wanted = [(name, frac) for name, frac in wanted if frac > 0]
    multi_label = np.asarray(labels).ndim == 2
    if multi_label and stratify and wanted:
        # rare label combinations are pooled and split together instead of raising
        values, sizes = np.unique(unit_strata, return_counts=True)
        rare = values[sizes < 1 + len(wanted)]
        unit_strata = np.where(np.isin(unit_strata, rare), -2, unit_strata)
    rng = np.random.default_rng(int(seed))
    assignment = np.zeros(len(unit_ids), dtype=np.int64)  # 0 train, 1 val, 2 test
    for stratum in np.unique(unit_strata):
        members = np.flatnonzero(unit_strata == stratum)
        members = members[rng.permutation(len(members))]
        m = len(members)
        if wanted and stratify and not multi_label and m < 1 + len(wanted):
            what = (f"Class {class_names[int(stratum)]!r}" if class_names is not None and stratum >= 0
                    else f"Class id {int(stratum)}")
            raise DataError(
                f"{what} has only {m} distinct item(s) (exact duplicates count once) but needs at "
                f"least {1 + len(wanted)}: one for train and one for each of "
                f"{', '.join(name for name, _ in wanted)}. Add data, lower the number of splits, or "
                "merge rare classes."
            )
        start = 0
        for name, frac in wanted:
            k = int(round(m * frac))
            if m > len(wanted):
                k = max(k, 1)  # every requested split gets something from every large-enough stratum
            k = max(0, min(k, m - start - 1))  # always leave at least one for train
            split_code = 1 if name == "val" else 2
            assignment[members[start:start + k]] = split_code
            start += k
    item_assignment = assignment[np.searchsorted(unit_ids, group_ids)]
    out = {"train": np.flatnonzero(item_assignment == 0).astype(np.int64)}
    if validation_split > 0:
        out["val"] = np.flatnonzero(item_assignment == 1).astype(np.int64)
    if test_split > 0:
        out["test"] = np.flatnonzero(item_assignment == 2).astype(np.int64)
    return out


def random_split(
    n: int, *, validation_split: float = 0.0, test_split: float = 0.0, seed: int = 0
) -> dict[str, np.ndarray]:
    """Seeded split of ``range(n)`` without stratification (e.g. sentences for NER).

    Example:
        >>> from tfxfer.data import random_split
        >>> {k: len(v) for k, v in random_split(10, validation_split=0.2, seed=1).items()}
        {'train': 8, 'val': 2}
    """
    return stratified_split(
        np.zeros(int(n), np.int64), validation_split=validation_split, test_split=test_split,
        seed=seed, stratify=False,
    )
