"""Text classification data from CSV, TSV or JSONL: (text, label) rows, single- or multi-label.

Texts are kept exactly as written (no normalisation; UTF-8 by default, a decoding error names the
file and byte offset). Empty texts and texts longer than ``max_length`` characters are handled as
you choose, and every skipped row is listed in the summary. Identical texts are kept in one split.

Example:
    >>> import os, tempfile
    >>> from tfxfer.data import load_texts
    >>> path = os.path.join(tempfile.mkdtemp(), "reviews.csv")
    >>> rows = ["text,label"] + [f"great film {i} 👍,pos" for i in range(5)] + \\
    ...        [f"dull film {i},neg" for i in range(5)] + [" ,pos"]
    >>> _ = open(path, "w", encoding="utf-8").write("\\n".join(rows))
    >>> data = load_texts(path, test_split=0.2, seed=0)
    >>> data.class_names, len(data.train.x), len(data.test.x), data.summary.skip_counts
    (['neg', 'pos'], 8, 2, {'empty_text': 1})
    >>> "👍" in "".join(data.train.x)
    True
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import io
import json
import os

import numpy as np

from tfxfer.data.hygiene import (
    DataSummary,
    check_class_counts,
    class_weights,
    count_by_class,
    find_duplicates,
    handle_leakage,
    imbalance_report,
    label_conflicts,
    report_label_problems,
    sort_class_names,
)
from tfxfer.data.splits import Split, check_fractions, stratified_split
from tfxfer.data.tables import check_unique_columns, table_records
from tfxfer.errors import ArgumentError, DataError, bounded_repr
from tfxfer.utils.validate import check_int, check_unique_names

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


@dataclasses.dataclass
class TextData:
    """Texts and labels per split.

    Attributes:
        train, val, test: `Split` ``(x, y)``: ``x`` an object array of str, ``y`` class ids
            (int64) or multi-hot rows (float32). val/test are None unless requested.
        class_names: label ``i`` means ``class_names[i]``.
        multi_label: True when ``y`` is multi-hot.
        summary: `DataSummary` (skipped rows, truncations, duplicates, leakage, imbalance).
    """

    train: Split
    val: Split | None
    test: Split | None
    class_names: list
    multi_label: bool
    summary: DataSummary

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def class_weights(self) -> dict[int, float]:
        """Balanced class weights from the training counts (single-label only)."""
        if self.multi_label:
            raise DataError("class_weight needs single-label data")
        return class_weights(self.summary.class_counts["train"], self.class_names)

    def to_dataset(self, split: str = "train", *, batch_size: int = 32, shuffle: bool | None = None,
                   seed: int = 0):
        """``tf.data.Dataset`` of (string batch, label batch) for ``split``; train is shuffled."""
        import tensorflow as tf

        part = getattr(self, split, None) if split in ("train", "val", "test") else None
        if part is None:
            raise ArgumentError("split", split, "must name a split that exists (train, val, test)")
        ds = tf.data.Dataset.from_tensor_slices((list(part.x), np.asarray(part.y)))
        if shuffle if shuffle is not None else split == "train":
            ds = ds.shuffle(len(part.y), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
#: Largest text table read (bytes).
MAX_TABLE_BYTES = 2 << 30


def read_text_file(path, encoding="utf-8") -> str:
    """Read a text file strictly; a decoding error becomes a `DataError` naming the offset.

    A byte-order mark (UTF-8, UTF-16 or UTF-32) decides the encoding and is dropped. Only regular
    files are read (a FIFO or a device is a `DataError`, not a hang).
    """
    from tfxfer.data.scan import read_regular_file

    raw = read_regular_file(path, max_bytes=MAX_TABLE_BYTES)
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raw, encoding = raw[len(bom):], name
            break
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not valid {encoding} at byte {exc.start} ({raw[exc.start:exc.start + 8]!r}); "
                        "pass encoding=... (e.g. 'cp1252') if the file uses another encoding") from exc
    except LookupError:
        raise ArgumentError("encoding", encoding, "must be a text encoding Python knows (e.g. 'utf-8')") from None
    return text[1:] if text.startswith("\ufeff") else text


def _rows(path, fmt, text_column, label_column, delimiter, encoding):
    """Yield (line_no, text, raw_label) or (line_no, None, error) for unparseable rows.

    JSONL lines end at "\n" only (U+2028 and friends are valid inside JSON strings). TSV has no
    quoting (IANA TSV: a field cannot hold a tab or a line break), so a stray ``"`` cannot swallow
    the following rows; a field wrapped whole in quotes is unwrapped. CSV follows RFC 4180; a
    quote left open that swallows several lines makes a row of the wrong width, reported with the
    lines it spans.
    """
    content = read_text_file(path, encoding)
    if fmt == "jsonl":
        for line_no, line in enumerate(content.split("\n"), start=1):
            line = line.rstrip("\r")
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                yield line_no, None, f"invalid JSON: {getattr(exc, 'msg', 'nested too deeply')}"
                continue
            if not isinstance(obj, dict) or text_column not in obj:
                yield line_no, None, f"no {text_column!r} field"
                continue
            yield line_no, obj[text_column], obj.get(label_column, _MISSING)
        return
    rows = table_records(content, delimiter=delimiter, tsv=fmt == "tsv")
    try:
        first = next(rows, None)
        if first is None:
            return
        header = first[1]
        for col in (text_column, label_column):
            if col not in header:
                raise DataError(f"Column {bounded_repr(col)} not found in {path}; columns are {bounded_repr(header)}")
        check_unique_columns(header, (text_column, label_column), source=path)
        ti, li = header.index(text_column), header.index(label_column)
        width = len(header)
        for line_no, row in rows:
            if not row:
                continue
            if len(row) <= max(ti, li):
                span = sum(f.rstrip("\r\n").replace("\r\n", "\n").replace("\r", "\n").count("\n") for f in row)
                extra = (f" (lines {line_no}-{line_no + span}: a quote opened here is not closed until line "
                         f"{line_no + span}, so {span} line(s) were read as one field)") if span else ""
                yield line_no, None, f"{len(row)} fields, expected {width}{extra}"
                continue
            yield line_no, row[ti], row[li]
    except csv.Error as exc:
        raise DataError(f"{path} is not a readable {fmt.upper()} table: {exc}") from None


_MISSING = object()


def _label_text(value) -> str:
    """A label as text: a JSON number that is a whole number reads as one (``1.0`` is "1", as ``1`` is) and
    a JSON boolean as "true"/"false" (the spelling a CSV cell would have), so one class is one name."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _no_usable_rows(path, summary) -> None:
    if not summary.scanned:
        raise DataError(f"{path} holds no rows (an empty file, or a header only)")
    counts: dict = {}
    for row in summary.skipped:
        counts[row["reason"]] = counts.get(row["reason"], 0) + 1
    first = summary.skipped[0]
    raise DataError(f"None of the {summary.scanned} rows of {path} is usable ("
                    + ", ".join(f"{k}={v}" for k, v in counts.items())
                    + f"); first: {first['path']}: {first['reason']} {first['detail']}".rstrip())


def load_texts(
    path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    format: str | None = None,
    delimiter: str | None = None,
    label_separator: str | None = None,
    class_names=None,
    max_length: int | None = None,
    on_long: str = "truncate",
    on_empty: str = "skip",
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = 0,
    on_leakage: str = "warn",
    min_per_class: int | None = None,
    encoding: str = "utf-8",
    min_classes: int = 2,
) -> TextData:
    """Load (text, label) rows from a CSV, TSV or JSONL file.

    Args:
        path: the file; the format comes from the suffix (.csv, .tsv/.tab, .jsonl/.ndjson)
            unless ``format`` ("csv", "tsv", "jsonl") is given. CSV/TSV need a header row.
        text_column, label_column: column (CSV/TSV) or field (JSONL) names.
        delimiter: override the CSV/TSV delimiter.
        label_separator: split label cells on this (multi-label); JSONL list labels are
            multi-label automatically.
        class_names: explicit class order (default: sorted labels, numerically if all numbers).
        max_length: maximum text length in characters (None: unlimited).
        on_long: "truncate" (cut to ``max_length``, counted), "skip", "raise" or "keep".
        on_empty: "skip" (counted), "raise" or "keep" for empty/whitespace-only texts.
        validation_split, test_split, seed: stratified seeded split (identical texts stay together).
        on_leakage, min_per_class: as in the image loaders.
        encoding: file encoding (strict decoding).
        min_classes: the least number of classes of single-label rows: 2 (training needs two); 1 for
            evaluation data that may hold a single label.

    Returns:
        `TextData`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ArgumentError("path", path, "must be an existing file")
    fmt = format or _FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt not in ("csv", "tsv", "jsonl"):
        raise ArgumentError("format", format or os.path.splitext(path)[1],
                            'must be "csv", "tsv" or "jsonl" (or use a .csv/.tsv/.jsonl suffix)')
    if on_long not in ("truncate", "skip", "raise", "keep"):
        raise ArgumentError("on_long", on_long, 'must be "truncate", "skip", "raise" or "keep"')
    if on_empty not in ("skip", "raise", "keep"):
        raise ArgumentError("on_empty", on_empty, 'must be "skip", "raise" or "keep"')
    max_length = check_int("max_length", max_length, low=1, allow_none=True)
    check_int("min_classes", min_classes, low=1)
    check_fractions(validation_split, test_split)
    delimiter = delimiter or ("\t" if fmt == "tsv" else ",")
    summary = DataSummary(source=path)
    texts, raw_labels, lines, truncated = [], [], [], 0
    first_kind = None  # ("single" | "multi", where): a file may not mix the two
    base = os.path.basename(path)
    for line_no, text, label in _rows(path, fmt, text_column, label_column, delimiter, encoding):
        summary.scanned += 1
        where = f"{base}:{line_no}"
        if text is None:
            summary.skipped.append({"path": where, "reason": "bad_row", "detail": label})
            continue
        if not isinstance(text, str):
            summary.skipped.append({"path": where, "reason": "bad_row",
                                    "detail": f"the {text_column!r} value is not a string: {bounded_repr(text)}"})
            continue
        if not text.strip():
            if on_empty == "raise":
                raise DataError(f"Empty text at {where}; pass on_empty='skip' to drop such rows")
            if on_empty == "skip":
                summary.skipped.append({"path": where, "reason": "empty_text", "detail": repr(text)})
                continue
        if max_length is not None and len(text) > max_length:
            if on_long == "raise":
                raise DataError(f"Text at {where} has {len(text)} characters > max_length={max_length}")
            if on_long == "skip":
                summary.skipped.append({"path": where, "reason": "too_long", "detail": f"{len(text)} characters"})
                continue
            if on_long == "truncate":
                text, truncated = text[:max_length], truncated + 1
        if label is _MISSING or label is None or (not isinstance(label, list) and str(label).strip() == ""):
            summary.skipped.append({"path": where, "reason": "missing_label", "detail": f"no {label_column!r} value"})
            continue
        if isinstance(label, dict) or (isinstance(label, list) and any(isinstance(p, (dict, list)) for p in label)):
            summary.skipped.append({"path": where, "reason": "bad_label",
                                    "detail": f"a label must be a string or a list of strings: {bounded_repr(label)}"})
            continue
        kind = "multi" if isinstance(label, list) or label_separator is not None else "single"
        if first_kind is None:
            first_kind = (kind, where)
        elif kind != first_kind[0]:
            raise DataError(f"{where}: a {'list of labels' if kind == 'multi' else 'single label'} "
                            f"({bounded_repr(label)}), but {first_kind[1]} has "
                            f"{'a list of labels' if first_kind[0] == 'multi' else 'a single label'}: a file is "
                            "either single-label or multi-label (write every label as a list, or none)")
        if kind == "multi":
            parts = label if isinstance(label, list) else str(label).split(label_separator)
            label = tuple(sorted({_label_text(p) for p in parts if _label_text(p)}))
        else:
            label = _label_text(label)
        texts.append(text)
        raw_labels.append(label)
        lines.append(where)
    if not texts:
        _no_usable_rows(path, summary)
    if truncated:
        summary.notes.append(f"truncated {truncated} text(s) to {max_length} characters")
    multi = any(isinstance(lab, tuple) for lab in raw_labels)
    raw_labels = [lab if isinstance(lab, tuple) or not multi else (lab,) for lab in raw_labels]
    found = {n for lab in raw_labels for n in (lab if multi else (lab,))}
    names = check_unique_names("class_names", class_names) if class_names is not None else sort_class_names(found)
    if not names:
        raise DataError(f"No row of {path} has a label (every label list is empty): nothing to learn")
    unknown = sorted(found - set(names))
    if unknown:
        raise DataError(f"Labels {unknown} in {path} are not in class_names {names}")
    ids = {n: i for i, n in enumerate(names)}
    if multi:
        y = np.zeros((len(raw_labels), len(names)), np.float32)
        for i, lab in enumerate(raw_labels):
            y[i, [ids[n] for n in lab]] = 1.0
    else:
        y = np.array([ids[lab] for lab in raw_labels], np.int64)
    report_label_problems(summary, names, label_conflicts(
        [_sha256(t) for t in texts], raw_labels, lines))
    return split_texts(np.array(texts, dtype=object), y, names, multi, summary, lines,
                       validation_split=validation_split, test_split=test_split, seed=seed,
                       on_leakage=on_leakage, min_per_class=min_per_class, min_classes=min_classes)


def split_texts(x, y, names, multi, summary, row_names, *, validation_split, test_split, seed,
                on_leakage="warn", min_per_class=None, min_classes=2) -> TextData:
    """Check, split (identical texts together) and summarise texts; used by loaders and data sets.
    ``min_classes``: as in `load_texts`."""
    n_splits = 1 + (validation_split > 0) + (test_split > 0)
    if not multi:
        check_class_counts({"all": count_by_class(y, names)}, names,
                           min_per_class=max(int(min_per_class or 0), n_splits), what="texts",
                           min_classes=min_classes)
    elif len(y) == 0:
        raise DataError(f"No usable texts in {summary.source}")
    keys = [_sha256(str(t)) for t in x]
    parts = stratified_split(y, validation_split=validation_split, test_split=test_split, seed=seed,
                             groups=keys, class_names=names)
    split_of = np.empty(len(x), dtype=object)
    for s, idx in parts.items():
        split_of[idx] = s
    summary.duplicates, summary.leakage = find_duplicates(keys, list(split_of), list(row_names))
    handle_leakage(summary.leakage, on_leakage, summary)
    summary.class_counts = {s: count_by_class(y[idx], names) for s, idx in parts.items()}
    if not multi:
        check_class_counts(summary.class_counts, names, min_per_class=1, what="texts", min_classes=min_classes)
    summary.imbalance = imbalance_report(summary.class_counts["train"])
    summary.class_weights = None if multi else class_weights(summary.class_counts["train"], names)
    splits = {s: Split(x[idx], y[idx]) for s, idx in parts.items()}
    return TextData(train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                    class_names=list(names), multi_label=multi, summary=summary)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
