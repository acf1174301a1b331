"""What ``tfxfer evaluate --groups COLUMN`` and ``--target DATA`` read: the group column aligned with
the evaluation examples, and the deployment data of a shift test (`tfxfer.cli.audit` prints them).

Group columns come from

* a packaged data set's per-example extras (``elpv``: ``module_type``, the cell type, mono / poly;
  ``sentiment_*``: ``rating``), cut to the same split and ``--limit`` as the evaluation;
* an image CSV / TSV table (``path,label,<column>``): each loaded file's row, matched by path;
* a text CSV / TSV / JSONL table: each kept row's value, matched by line number (rows the loader
  skipped are skipped here too; a row without a value is the group ``(missing)``);
* a packaged domain pair as DATA (``elpv_mono_to_poly``, ``sentiment_movies_to_tweets``, ...: see
  `tfxfer.data.domains`): both domains' test examples, grouped by ``domain``.

A folder of class sub-folders has no group column: that is a usage error naming the option.

Example:
    >>> packaged_key("elpv"), pair_key("elpv_mono_to_poly") is not None
    ('elpv', True)
"""

from __future__ import annotations

import json
import os

import numpy as np

from tfxfer.errors import ArgumentError, DataError

#: The group of a row whose group cell is empty or absent.
MISSING_GROUP = "(missing)"
TEXT_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson")


def packaged_key(source: str) -> str | None:
    """``source`` as a packaged data set name, or None (TensorFlow-free)."""
    from tfxfer.recipes.catalog import dataset_key

    return dataset_key(source)


def _group_value(value) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return MISSING_GROUP
    return str(value).strip() if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) \
        else str(value)


def packaged_groups(source: str, column: str, *, split: str, limit: int | None, count: int,
                    indices=None) -> np.ndarray:
    """The ``column`` extra of a packaged data set's ``split``: its first ``limit`` examples, or those at
    ``indices`` (a sample `tfxfer.recipes.inference.evaluation_data` drew)."""
    from tfxfer.data import load

    loaded = load(packaged_key(source))
    extras = (loaded.extras or {}).get(split) or {}
    if column not in extras and GROUP_ALIASES.get(column) in extras:
        column = GROUP_ALIASES[column]
    if column not in extras:
        known = ", ".join(sorted(extras)) or "none"
        raise ArgumentError("--groups", column, f"must be a per-example column of {source} (it has: {known})")
    column_values = np.asarray(extras[column])
    column_values = column_values[np.asarray(indices, np.int64)] if indices is not None else column_values[:limit]
    values = np.asarray([_group_value(v) for v in column_values], dtype=object)
    if len(values) != count:
        raise DataError(f"{source}: {len(values)} values of {column!r} for {count} evaluated examples")
    return values


#: Other names of a packaged data set's group column.
GROUP_ALIASES = {"cell_type": "module_type"}
#: The group column of a domain pair.
PAIR_GROUP = "domain"


def pair_key(source: str) -> str | None:
    """``source`` as a packaged domain pair's name (``*_to_*``, not an existing path), else None;
    TensorFlow-free (`tfxfer.data.domains.domain_pair` checks the name itself)."""
    key = str(source).strip().lower().replace("-", "_")
    if "_to_" not in key or os.path.exists(os.path.expanduser(str(source))) or packaged_key(source) is not None:
        return None
    return key


def pair_data(source: str, column: str | None, *, class_names, limit: int | None):
    """``(x, labels, groups)`` of a domain pair's `audit_test` (both domains' test examples, the
    source domain first; with ``limit``, the first ``limit // 2`` of each); labels are ids into the
    model's ``class_names``."""
    from tfxfer.data.domains import domain_pair

    if column not in (None, PAIR_GROUP):
        raise ArgumentError("--groups", column, f"must be {PAIR_GROUP!r} for a domain pair ({source})")
    pair = domain_pair(source)
    split = pair.audit_test
    unknown = sorted(set(pair.class_names) - set(class_names))
    if unknown:
        raise DataError(f"Labels {unknown} of {source} are not among the model's labels {list(class_names)}")
    lookup = np.array([list(class_names).index(n) for n in pair.class_names], np.int64)
    groups = np.asarray(pair.audit_groups, dtype=object)
    rows = np.arange(len(groups))
    if limit is not None:  # at most `limit` examples, shared equally by the two domains
        rows = np.concatenate([np.flatnonzero(groups == d)[:max(1, limit // 2)]
                               for d in (pair.source_domain, pair.target_domain)])
    return split.x[rows], lookup[np.asarray(split.y, np.int64)][rows], groups[rows]


def pair_images(source: str, column: str | None, *, model, limit: int | None):
    """`pair_data` with the images resized as the model takes them (as ``evaluation_data`` does)."""
    from tfxfer.data.tfdata import array_pipeline
    from tfxfer.recipes.image_data import take_images

    x, y, groups = pair_data(source, column, class_names=model.class_names, limit=limit)
    ds = array_pipeline(x, y, image_size=tuple(model.image_size), batch_size=64, training=False,
                        channels=model.channels)
    images, labels = take_images(ds)
    return images, np.asarray(labels), groups


def _table_format(path: str) -> str:
    suffix = os.path.splitext(path)[1].lower()
    return "jsonl" if suffix in (".jsonl", ".ndjson") else "tsv" if suffix in (".tsv", ".tab") else "csv"


def table_column(path: str, column: str, *, option: str = "--groups") -> dict[int, object]:
    """``{line number: value of column}`` for every record of a CSV / TSV / JSONL table (the line a
    record starts on, as the loaders number rows); raises `ArgumentError` for an unknown column."""
    from tfxfer.data.tables import check_unique_columns, table_records
    from tfxfer.data.text import read_text_file

    content = read_text_file(path)
    fmt = _table_format(path)
    out: dict[int, object] = {}
    if fmt == "jsonl":
        seen = False
        for line_no, line in enumerate(content.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line.rstrip("\r"))
            except (ValueError, RecursionError):
                continue  # the loader counts it as a bad row
            if isinstance(obj, dict):
                seen = seen or column in obj
                out[line_no] = obj.get(column)
        if out and not seen:
            raise ArgumentError(option, column, f"must be a field of the rows of {path}")
        return out
    rows = table_records(content, delimiter="\t" if fmt == "tsv" else ",", tsv=fmt == "tsv")
    first = next(rows, None)
    if first is None:
        return out
    header = first[1]
    if column not in header:
        raise ArgumentError(option, column, f"must be a column of {path} (columns: {', '.join(header[:20])})")
    check_unique_columns(header, [column], source=path)
    index = header.index(column)
    for line_no, row in rows:
        if row:
            out[line_no] = row[index] if len(row) > index else None
    return out


def text_table_groups(path: str, column: str, *, summary, count: int) -> np.ndarray:
    """Group values of the rows a text loader kept (its ``summary.skipped`` names the others)."""
    values = table_column(path, column)
    base = os.path.basename(path)
    skipped = {s.get("path") for s in summary.skipped}
    kept = [line for line in sorted(values) if f"{base}:{line}" not in skipped]
    if len(kept) != count:
        raise DataError(f"{path}: cannot match the {column!r} column to the {count} rows loaded "
                        f"({len(kept)} rows remain after the loader's {len(skipped)} skips)")
    return np.asarray([_group_value(values[line]) for line in kept], dtype=object)


def image_table_groups(path: str, column: str, *, files, count: int) -> np.ndarray:
    """Group values of the files an image CSV / TSV table listed, matched by resolved path; a file
    listed twice takes its first row's value, as the loader keeps the first row (the repeat is a
    ``bad_row`` skip there)."""
    from tfxfer.data.tables import check_unique_columns, table_records
    from tfxfer.data.text import read_text_file

    fmt = _table_format(path)
    rows = table_records(read_text_file(path), delimiter="\t" if fmt == "tsv" else ",", tsv=fmt == "tsv")
    first = next(rows, None)
    header = first[1] if first else []
    for name, wanted in (("--groups", column), ("path column", "path")):
        if wanted not in header:
            raise ArgumentError(name, wanted, f"must be a column of {path} (columns: {', '.join(header[:20])})")
    check_unique_columns(header, ["path", column], source=path)
    pi, gi = header.index("path"), header.index(column)
    root = os.path.dirname(os.path.abspath(path))
    by_path = {}
    for _, row in rows:
        if len(row) > pi and row[pi].strip():
            full = row[pi] if os.path.isabs(row[pi]) else os.path.join(root, row[pi])
            by_path.setdefault(os.path.realpath(full), row[gi] if len(row) > gi else None)
    out = [by_path.get(os.path.realpath(f), None) for f in files[:count]]
    if len(out) != count:
        raise DataError(f"{path}: {len(out)} files listed for {count} evaluated images")
    return np.asarray([_group_value(v) for v in out], dtype=object)


def image_groups(source: str, column: str, *, split: str, limit: int | None, count: int,
                 channels: int, image_size, indices=None) -> np.ndarray:
    """The group of each image `tfxfer.recipes.inference.evaluation_data` returned for ``source``:
    the first ``count``, or those at ``indices`` when it drew a sample (its ``sample["indices"]``)."""
    if packaged_key(source) is not None:
        return packaged_groups(source, column, split=split, limit=limit, count=count, indices=indices)
    path = os.path.abspath(os.path.expanduser(source))
    if os.path.isdir(path):
        raise ArgumentError("--groups", column, "needs a table (CSV / TSV with a path, a label and this column) or "
                            "a packaged data set; a folder of class sub-folders has no group column")
    from tfxfer.data import image_dataset_from_csv

    data = image_dataset_from_csv(path, image_size=tuple(image_size), batch_size=64, shuffle=False,
                                  color_mode="grayscale" if channels == 1 else "rgb",
                                  delimiter="\t" if _table_format(path) == "tsv" else ",", min_classes=1)
    files = list((data.files or {}).get("train") or [])
    if indices is not None:
        files = [files[i] for i in indices]
    return image_table_groups(path, column, files=files, count=count)


def text_data(model, source: str, *, split: str, limit: int | None, text_column: str, label_column: str,
              groups: str | None):
    """``(texts, labels, groups or None, skipped rows)`` of a text classifier's evaluation data;
    labels are ids into the model's class names."""
    from tfxfer.recipes.text_eval import classification_data

    if pair_key(source) is not None:
        texts, labels, values = pair_data(source, groups, class_names=model.class_names, limit=limit)
        return np.asarray([str(t) for t in texts], dtype=object), labels, values, 0
    if packaged_key(source) is not None or not groups:
        texts, labels, skipped = classification_data(source, model.class_names, split=split,
                                                     text_column=text_column, label_column=label_column)
        texts, labels = texts[:limit], np.asarray(labels)[:limit]
        values = None if not groups else packaged_groups(source, groups, split=split, limit=limit, count=len(labels))
        return texts, labels, values, skipped
    from tfxfer.data import load_texts

    path = os.path.abspath(os.path.expanduser(source))
    if not os.path.isfile(path) or not path.lower().endswith(TEXT_SUFFIXES):
        raise ArgumentError("data", source, "must be a CSV / TSV / JSONL table or a packaged data set for --groups")
    data = load_texts(path, text_column=text_column, label_column=label_column, on_leakage="ignore",
                      min_classes=1)  # a table may hold one label of the model's
    if data.multi_label:
        raise DataError(f"{source} has multi-label rows; the model is a single-label classifier")
    unknown = sorted(set(data.class_names) - set(model.class_names))
    if unknown:
        raise DataError(f"Labels {unknown} in {source} are not among the model's labels {list(model.class_names)}")
    lookup = np.array([list(model.class_names).index(n) for n in data.class_names], np.int64)
    labels = lookup[np.asarray(data.train.y, np.int64)]
    values = text_table_groups(path, groups, summary=data.summary, count=len(labels))
    texts = np.asarray(data.train.x, dtype=object)
    return texts[:limit], labels[:limit], values[:limit], len(data.summary.skipped)


def target_images(target: str, *, model, split: str, skipped: list | None = None):
    """Deployment images for a shift test: ``x``, or ``(x, y)`` for a packaged set or labelled table
    (the labels only score the measured target accuracy). ``skipped``, a list, receives the loader's
    ``{"path", "reason", "detail"}`` entry of each file or row left out (a name that is not UTF-8, an
    unreadable table row), as the evaluation data's are counted."""
    from tfxfer.recipes.image_inputs import image_files, read_images
    from tfxfer.recipes.inference import evaluation_data

    path = os.path.abspath(os.path.expanduser(target))
    if packaged_key(target) is not None or (os.path.isfile(path) and path.lower().endswith((".csv", ".tsv", ".tab"))):
        x, y, _ = evaluation_data(target, image_size=model.image_size, channels=model.channels, split=split,
                                  class_names=model.class_names, skipped=skipped)
        return (x, y)
    from tfxfer.data.scan import scan_images
    from tfxfer.recipes.image_inputs import skip_note

    skipped = [] if skipped is None else skipped
    scan = scan_images(image_files([target], skipped=skipped))  # the training loaders' hygiene: empty,
    skipped.extend(scan.skipped)  # truncated, corrupt or oversized files are counted skips, not an abort
    if not scan.ok:
        raise DataError(f"{target}: no readable image" + (f" ({len(skipped)} skipped: {skip_note(skipped)})"
                                                          if skipped else ""))
    return read_images([r.path for r in scan.ok], image_size=model.image_size, channels=model.channels)


def target_texts(target: str, *, model, split: str, text_column: str, label_column: str):
    """Deployment texts for a shift test: a ``.txt`` file (one text a line), a table (labels used
    for scoring when its label column exists) or a packaged set."""
    path = os.path.abspath(os.path.expanduser(target))
    if packaged_key(target) is None and os.path.isfile(path) and not path.lower().endswith(TEXT_SUFFIXES):
        from tfxfer.data.text import read_text_file

        texts = [line.strip() for line in read_text_file(path).splitlines() if line.strip()]
        if len(texts) < 2:
            raise DataError(f"{target}: {len(texts)} non-empty line(s); a shift test needs at least 2 texts")
        return np.asarray(texts, dtype=object)
    from tfxfer.recipes.text_eval import classification_data

    try:
        texts, labels, _ = classification_data(target, model.class_names, split=split, text_column=text_column,
                                               label_column=label_column)
        return (texts, np.asarray(labels))
    except DataError:  # no label column (or no usable labels): the texts alone
        if packaged_key(target) is not None:
            raise
        column = table_column(path, text_column, option="--text-column")
        texts = [v for _, v in sorted(column.items()) if isinstance(v, str) and v.strip()]
        if len(texts) < 2:
            raise DataError(f"{target}: {len(texts)} text(s) in column {text_column!r}; a shift test needs 2") from None
        return np.asarray(texts, dtype=object)
