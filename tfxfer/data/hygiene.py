"""Data hygiene: the summary of what a loader did, duplicate and leakage detection, label checks, the
order of found class names, class imbalance and class weights.

Every loader returns a `DataSummary`: which files were skipped and why (one entry per file), which
files needed conversion, class counts per split, exact duplicates (by content hash) inside a split,
leakage (the same content in two splits) and an imbalance report with balanced class weights.

Example:
    >>> from tfxfer.data import class_weights, imbalance_report
    >>> class_weights({"cat": 30, "dog": 10}, ["cat", "dog"])
    {0: 0.6667, 1: 2.0}
    >>> imbalance_report({"cat": 30, "dog": 10})["ratio"]
    3.0
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import sys
import unicodedata
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np

from tfxfer.errors import ArgumentError, DataError, bounded_repr
from tfxfer.utils.atomic import atomic_write_json

#: Why a file was skipped. Every skip in a summary uses one of these reasons.
SKIP_REASONS = {
    "hidden_file": "hidden or system file (.DS_Store, Thumbs.db, desktop.ini, dot-files)",
    "unsupported_extension": "extension is not an image type tfxfer reads",
    "empty_file": "the file has zero bytes",
    "not_an_image": "the content is not a recognised image format",
    "truncated": "the image data ends early",
    "corrupt": "the image header or data is damaged",
    "too_large": "the image declares more pixels than the limit (MAX_IMAGE_PIXELS), or the file is too big",
    "missing_file": "listed in the table but not found on disk",
    "outside_class_folder": "a file directly in the top folder, not in a class sub-folder",
    "bad_row": "a table row without a path or with an unusable label",
    "leaked_copy": "dropped from val/test because the same content is in an earlier split",
    "empty_text": "the text is empty or only whitespace",
    "too_long": "the text is longer than max_length (with on_long='skip')",
    "missing_label": "the row has no label",
    "unreadable": "the operating system refused to read the file",
    "not_a_regular_file": "a FIFO, device or socket (or a link to one): reading it could block or never end",
    "symlink": "a symbolic link, not followed (pass follow_links=True to follow links inside the root)",
    "outside_root": "the path (a link target, or '..' / an absolute path in a table) leads outside the data root",
    "undecodable_name": "the file name is not valid UTF-8 (rename it)",
    "size_mismatch": "the image header and the decoded pixels disagree on the size",
    "label_conflict": "the same file is listed under two different labels",
    "bad_label": "the row mixes a single label with multi-label rows, or has a label of the wrong type",
}

#: Classes whose count is below ``max / IMBALANCE_RATIO`` are reported as minority classes.
IMBALANCE_RATIO = 3.0


class DataWarning(UserWarning):
    """Something in the data deserves attention (leakage, duplicates) but does not stop the run."""


@dataclasses.dataclass
class DataSummary:
    """What a loader found and did; ``to_json(path)`` writes it for the run record.

    Attributes:
        source: the folder, table or description the data came from.
        scanned: number of files (or rows) looked at.
        skipped: one ``{"path", "reason", "detail"}`` dict per skipped file; reasons are keys of
            `SKIP_REASONS`.
        converted: files decoded through Pillow because TensorFlow cannot decode them exactly
            (TIFF, palette BMP, ...): ``{"path", "format", "mode"}``.
        class_counts: ``{split: {class_name: count}}``.
        duplicates: groups of identical files inside one split: ``{"sha256", "split", "paths"}``.
        leakage: identical content found in more than one split: ``{"sha256", "splits": {split:
            [paths]}}``; train/test leakage inflates test scores.
        imbalance: `imbalance_report` of the training split.
        class_weights: balanced weights ``{class_id: weight}`` for ``model.fit(class_weight=...)``
            (opt-in: nothing uses them unless you pass them), or None for multi-label data.
        notes: free-form remarks (dropped leaked copies, truncated texts, ...).
        lookalike_labels: groups of class names that differ only by case, Unicode normalization
            or invisible characters (``["Cat", "cat"]``): almost always one class typed twice.
        label_conflicts: the same file or the same content under different labels:
            ``{"sha256", "labels": {label: [paths or rows]}}``.
    """

    source: str
    scanned: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    converted: list = dataclasses.field(default_factory=list)
    class_counts: dict = dataclasses.field(default_factory=dict)
    duplicates: list = dataclasses.field(default_factory=list)
    leakage: list = dataclasses.field(default_factory=list)
    imbalance: dict = dataclasses.field(default_factory=dict)
    class_weights: dict | None = None
    notes: list = dataclasses.field(default_factory=list)
    lookalike_labels: list = dataclasses.field(default_factory=list)
    label_conflicts: list = dataclasses.field(default_factory=list)

    @property
    def skip_counts(self) -> dict[str, int]:
        """Number of skipped files per reason."""
        return dict(sorted(collections.Counter(s["reason"] for s in self.skipped).items()))

    @property
    def used(self) -> int:
        """Number of items kept across all splits."""
        return int(sum(sum(c.values()) for c in self.class_counts.values()))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["skip_counts"] = self.skip_counts
        out["used"] = self.used
        if self.class_weights is not None:
            out["class_weights"] = {str(k): v for k, v in self.class_weights.items()}
        return out

    def to_json(self, path) -> None:
        """Write the summary as JSON (atomically)."""
        atomic_write_json(path, self.to_dict())

    def __str__(self) -> str:
        lines = [f"Data from {self.source}: scanned {self.scanned}, used {self.used}, "
                 f"skipped {len(self.skipped)}"]
        if self.skipped:
            lines.append("  skipped: " + ", ".join(f"{k}={v}" for k, v in self.skip_counts.items()))
        for split, counts in self.class_counts.items():
            lines.append(f"  {split}: {sum(counts.values())} ({', '.join(f'{k}={v}' for k, v in counts.items())})")
        if self.converted:
            lines.append(f"  converted through Pillow: {len(self.converted)}")
        if self.duplicates:
            lines.append(f"  duplicate groups inside a split: {len(self.duplicates)}")
        if self.leakage:
            lines.append(f"  LEAKAGE: {len(self.leakage)} item(s) appear in more than one split")
        for group in self.lookalike_labels:
            lines.append(f"  LOOK-ALIKE LABELS: {group} differ only by case, normalization or invisible characters")
        if self.label_conflicts:
            first = self.label_conflicts[0]["labels"]
            lines.append(f"  LABEL CONFLICTS: {len(self.label_conflicts)} item(s) carry two labels, e.g. {first}")
        if self.imbalance.get("imbalanced"):
            lines.append(f"  imbalance: ratio {self.imbalance['ratio']} (minority: "
                         f"{', '.join(self.imbalance['minority_classes'])})")
        lines.extend("  note: " + n for n in self.notes)
        return "\n".join(lines)


def find_duplicates(keys: Sequence[str], split_of: Sequence[str], names: Sequence[str]):
    """Group identical ``keys`` (content hashes or texts).

    Returns ``(duplicates, leakage)``: duplicates are groups inside one split, leakage groups span
    several splits. ``names`` identifies each item in the report (a path, or a row number).
    """
    by_key: dict[str, list[int]] = collections.defaultdict(list)
    for i, k in enumerate(keys):
        by_key[k].append(i)
    duplicates, leakage = [], []
    for key, items in by_key.items():
        if len(items) < 2:
            continue
        splits: dict[str, list] = collections.defaultdict(list)
        for i in items:
            splits[split_of[i]].append(names[i])
        if len(splits) > 1:
            leakage.append({"sha256": key, "splits": {s: sorted(v) for s, v in sorted(splits.items())}})
        for s, v in sorted(splits.items()):
            if len(v) > 1:
                duplicates.append({"sha256": key, "split": s, "paths": sorted(v)})
    leakage.sort(key=lambda g: str(g["splits"]))
    duplicates.sort(key=lambda g: (g["split"], g["paths"]))
    return duplicates, leakage


_INVISIBLE = {"Cf", "Cc", "Zl", "Zp"}  # format (zero-width, bidi marks), control, line/paragraph separators


def label_key(name: str) -> str:
    """The form two look-alike labels share: NFKC, case-folded, invisible characters and spaces removed.

    Example:
        >>> label_key("Cat\u200b") == label_key("cat") == label_key("ＣＡＴ")
        True
    """
    text = unicodedata.normalize("NFKC", str(name))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _INVISIBLE)
    return " ".join(text.casefold().split())


def lookalike_labels(names: Iterable[str]) -> list[list[str]]:
    """Groups of distinct labels that `label_key` maps to one form (sorted; empty when none).

    Example:
        >>> lookalike_labels(["cat", "Cat", "dog", "d\\u200bog", "bird"])
        [['Cat', 'cat'], ['dog', 'd\\u200bog']]
    """
    groups: dict[str, set] = collections.defaultdict(set)
    for name in names:
        groups[label_key(name)].add(str(name))
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def sort_class_names(names: Iterable[str]) -> list[str]:
    """The class order of labels a loader found (folders, image tables, text tables): numeric when every
    name is a finite number ("2" before "10"), else text order. A name such as "nan" or "inf" compares
    with nothing, so it makes the order text order (not one that follows set iteration, the hash seed).

    Example:
        >>> sort_class_names({"10", "2", "1"}), sort_class_names({"10", "2", "cat"})
        (['1', '2', '10'], ['10', '2', 'cat'])
    """
    names = sorted(names)
    try:
        values = [float(n) for n in names]
    except ValueError:
        return names
    if not all(math.isfinite(v) for v in values):
        return names
    return [n for _, n in sorted(zip(values, names))]


def label_conflicts(keys: Sequence[str], labels: Sequence, names: Sequence[str]) -> list[dict]:
    """Items with the same key (content hash, resolved path, text) but different labels.

    ``labels`` are hashable labels (a class name, or a tuple of names for multi-label rows);
    ``names`` identify each item in the report (paths or rows). Returns
    ``[{"sha256": key, "labels": {label: [names]}}]``.

    Example:
        >>> label_conflicts(["h1", "h1", "h2"], ["cat", "dog", "cat"], ["a.png", "b.png", "c.png"])
        [{'sha256': 'h1', 'labels': {'cat': ['a.png'], 'dog': ['b.png']}}]
    """
    by_key: dict = collections.defaultdict(lambda: collections.defaultdict(list))
    for key, label, name in zip(keys, labels, names):
        by_key[key][label if not isinstance(label, list) else tuple(label)].append(str(name))
    out = []
    for key, per_label in by_key.items():
        if len(per_label) > 1:
            out.append({"sha256": key, "labels": {"|".join(k) if isinstance(k, tuple) else str(k): sorted(v)
                                                  for k, v in sorted(per_label.items(), key=lambda kv: str(kv[0]))}})
    return sorted(out, key=lambda g: str(g["labels"]))


def report_label_problems(summary: "DataSummary", class_names: Sequence[str], conflicts=()) -> None:
    """Record look-alike labels and label conflicts in ``summary`` and warn (`DataWarning`) once."""
    summary.lookalike_labels = lookalike_labels(class_names)
    summary.label_conflicts = list(conflicts)
    problems = []
    if summary.lookalike_labels:
        problems.append(f"labels that differ only by case, Unicode normalization or invisible characters: "
                        f"{bounded_repr(summary.lookalike_labels[:3])} (one class typed two ways?)")
    if summary.label_conflicts:
        first = summary.label_conflicts[0]["labels"]
        problems.append(f"{len(summary.label_conflicts)} item(s) appear under two labels (label conflict), e.g. "
                        f"{bounded_repr(first)}")
    if problems:
        warnings.warn("; ".join(problems), DataWarning, stacklevel=user_stacklevel())


def user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first caller outside tfxfer."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("tfxfer"):
        frame, level = frame.f_back, level + 1
    return level


def handle_leakage(leakage: list, on_leakage: str, summary: DataSummary) -> None:
    """Act on leakage: "warn" (a `DataWarning`), "raise" (`DataError`) or "ignore"."""
    if on_leakage not in ("warn", "raise", "ignore", "drop"):
        raise ArgumentError("on_leakage", on_leakage, 'must be "warn", "raise", "drop" or "ignore"')
    if not leakage:
        return
    example = leakage[0]["splits"]
    message = (f"{len(leakage)} item(s) appear in more than one split (exact duplicates), e.g. "
               f"{bounded_repr(example)}. Evaluation on a split that shares items with train is optimistic.")
    if on_leakage == "raise":
        raise DataError(message + " Remove the copies or pass on_leakage='drop'.")
    if on_leakage == "warn":
        warnings.warn(message + " Pass on_leakage='drop' to remove them from val/test.", DataWarning,
                      stacklevel=user_stacklevel())


def imbalance_report(counts: Mapping[str, int], *, ratio: float = IMBALANCE_RATIO) -> dict:
    """How unbalanced the classes are: max/min ratio and the minority classes.

    A class is a minority class if its count is below ``max_count / ratio``.
    """
    if not counts:
        return {"ratio": None, "imbalanced": False, "minority_classes": [], "counts": {}}
    values = np.array(list(counts.values()), dtype=np.float64)
    biggest, smallest = float(values.max()), float(values.min())
    r = round(biggest / smallest, 4) if smallest > 0 else float("inf")
    minority = [k for k, v in counts.items() if v < biggest / ratio]
    return {"ratio": r, "imbalanced": bool(r >= ratio), "minority_classes": minority,
            "counts": dict(counts), "threshold": ratio}


def class_weights(counts: Mapping[str, int], class_names: Sequence[str]) -> dict[int, float]:
    """Balanced class weights ``n / (k * n_c)`` keyed by class id, for ``model.fit(class_weight=)``.

    Classes absent from ``counts`` raise `DataError` (a weight would be infinite).
    """
    n = float(sum(counts.get(c, 0) for c in class_names))
    k = len(class_names)
    missing = [c for c in class_names if counts.get(c, 0) == 0]
    if missing:
        raise DataError(f"Cannot compute class weights: no training items for class(es) {missing}")
    return {i: round(n / (k * counts[c]), 4) for i, c in enumerate(class_names)}


def check_class_counts(
    counts_by_split: Mapping[str, Mapping[str, int]],
    class_names: Sequence[str],
    *,
    min_per_class: int = 1,
    what: str = "images",
    min_classes: int = 2,
) -> None:
    """Raise `DataError` for too few classes (a single class), an empty class, too few items, or differing
    label sets.

    Args:
        counts_by_split: ``{split: {class_name: count}}`` after skipping bad items.
        class_names: all classes the user declared (folder names, table labels).
        min_per_class: the least number of items every class needs in train.
        min_classes: the least number of classes: 2 to train a classifier; 1 for evaluation data, which
            may hold a single class of the model's (its recall is what is measured).
    """
    if len(class_names) < min_classes:
        found = f"a single class {bounded_repr(list(class_names))}" if class_names else "no class"
        raise DataError(
            f"Found {found}: classification needs at least {min_classes} "
            f"{'class' if min_classes == 1 else 'classes'}. "
            "Put each class in its own sub-folder (or label column value)."
        )
    all_counts = collections.Counter()
    for counts in counts_by_split.values():
        all_counts.update(counts)
    empty = [c for c in class_names if all_counts.get(c, 0) == 0]
    if empty:
        raise DataError(f"Class(es) {bounded_repr(empty)} have no usable {what} (after skipping unreadable files).")
    splits = list(counts_by_split)
    if len(splits) > 1:
        present = {s: {c for c, v in counts_by_split[s].items() if v > 0} for s in splits}
        for s in splits[1:]:
            if present[s] != present[splits[0]]:
                only_a = sorted(present[splits[0]] - present[s])
                only_b = sorted(present[s] - present[splits[0]])
                raise DataError(
                    f"Label sets differ between splits {splits[0]!r} and {s!r}: only in "
                    f"{splits[0]!r}: {bounded_repr(only_a)}; only in {s!r}: {bounded_repr(only_b)}. Every split needs "
                    "every class."
                )
    train = counts_by_split.get("train", all_counts)
    few = {c: int(train.get(c, 0)) for c in class_names if train.get(c, 0) < min_per_class}
    if few:
        raise DataError(
            f"Too few {what} per class: {bounded_repr(few)} (need at least {min_per_class} per class in train). "
            "Add data or lower `min_per_class`."
        )


def count_by_class(labels: Iterable, class_names: Sequence[str]) -> dict[str, int]:
    """``{class_name: count}`` from class ids or multi-hot rows (a row counts for each label)."""
    arr = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels)
    if arr.size == 0:
        return {c: 0 for c in class_names}
    if arr.ndim == 2:
        totals = (arr > 0.5).sum(axis=0)
        return {c: int(totals[i]) for i, c in enumerate(class_names)}
    totals = np.bincount(arr.astype(np.int64), minlength=len(class_names))
    return {c: int(totals[i]) for i, c in enumerate(class_names)}


def summary_json(summary: DataSummary) -> str:
    """The summary as a JSON string (what ``to_json`` writes)."""
    return json.dumps(summary.to_dict(), indent=2, sort_keys=True, default=str)
