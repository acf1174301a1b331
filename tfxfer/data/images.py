"""Image loaders over files: a folder of class sub-folders, or a CSV table of (path, label) rows.

Both scan every file first (see `tfxfer.data.scan`): unreadable, empty, truncated and non-image
files are skipped and listed per file in ``result.summary``; exact duplicates are found by content
hash and kept in the same split when tfxfer makes the split (so they cannot leak), and reported
as leakage when the data came pre-split.

Example:
    >>> import os, tempfile, numpy as np
    >>> from PIL import Image
    >>> from tfxfer.data import image_dataset_from_folder
    >>> root = tempfile.mkdtemp()
    >>> for c, colour in (("cat", 40), ("dog", 200)):
    ...     os.makedirs(os.path.join(root, c))
    ...     for i in range(4):
    ...         pixels = np.full((20, 30, 3), colour + i, "uint8")
    ...         Image.fromarray(pixels).save(os.path.join(root, c, f"{i}.png"))
    >>> open(os.path.join(root, "cat", "broken.jpg"), "wb").close()
    >>> data = image_dataset_from_folder(root, image_size=(16, 16), batch_size=4,
    ...                                  validation_split=0.25, seed=0)
    >>> data.class_names, data.summary.skip_counts
    (['cat', 'dog'], {'empty_file': 1})
    >>> images, labels = next(iter(data.train))
    >>> tuple(images.shape), images.dtype.name
    ((4, 16, 16, 3), 'float32')
    >>> {split: sum(c.values()) for split, c in data.counts.items()}
    {'train': 6, 'val': 2}
"""

from __future__ import annotations

import collections
import csv
import os

import numpy as np

from tfxfer.data.build import SPLIT_ALIASES, build_image_data, resolve_image_size
from tfxfer.data.hygiene import sort_class_names
from tfxfer.data.result import ImageData
from tfxfer.data.scan import skip_reason_for_name
from tfxfer.data.scan import read_regular_file
from tfxfer.data.tables import check_unique_columns, table_records
from tfxfer.data.text import MAX_TABLE_BYTES
from tfxfer.errors import ArgumentError, DataError, bounded_repr

_IGNORED_DIRS = ("__MACOSX",)


def shown_path(path) -> str:
    """A path as text that any JSON writer and terminal takes (non-UTF-8 bytes escaped)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8_name(name) -> bool:
    """Whether a file or folder name (or path) is valid UTF-8 (a name of other bytes cannot become a tf.string)."""
    try:
        os.fspath(name).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inside(path, root_real) -> bool:
    real = os.path.realpath(path)
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _link_skip(path, follow_links, root, root_real):
    """None when ``path`` may be read, else the skip entry (a link not followed, or leading out)."""
    if os.path.islink(path) and not follow_links:
        return {"path": shown_path(os.path.relpath(path, root)), "reason": "symlink",
                "detail": f"-> {shown_path(os.readlink(path))}"}
    if os.path.islink(path) and not _inside(path, root_real):
        return {"path": shown_path(os.path.relpath(path, root)), "reason": "outside_root",
                "detail": f"-> {shown_path(os.path.realpath(path))}"}
    return None


def _walk_class(folder, follow_links, skipped, root, notes):
    files = []
    root_real = os.path.realpath(root)
    seen = {os.path.realpath(folder)}

    def unreadable(exc):
        where = getattr(exc, "filename", None) or folder
        skipped.append({"path": shown_path(os.path.relpath(where, root)), "reason": "unreadable",
                        "detail": f"{type(exc).__name__}: {exc.strerror or exc}"})

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=follow_links, onerror=unreadable):
        hidden = sorted(d for d in dirnames if d.startswith(".") or d in _IGNORED_DIRS)
        for d in hidden:
            notes.append(f"ignored hidden folder {shown_path(os.path.relpath(os.path.join(dirpath, d), root))}")
        keep = []
        for d in sorted(d for d in dirnames if d not in hidden):
            sub = os.path.join(dirpath, d)
            entry = _link_skip(sub, follow_links, root, root_real)
            if entry is None and not is_utf8_name(d):
                entry = {"path": shown_path(os.path.relpath(sub, root)), "reason": "undecodable_name",
                         "detail": "a folder name that is not valid UTF-8"}
            if entry is None and os.path.realpath(sub) in seen:  # a link loop: walked already
                notes.append(f"ignored linked folder {shown_path(os.path.relpath(sub, root))} (already read)")
                continue
            if entry is not None:
                skipped.append(entry)
                continue
            seen.add(os.path.realpath(sub))
            keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not is_utf8_name(name):
                skipped.append({"path": shown_path(os.path.relpath(path, root)), "reason": "undecodable_name",
                                "detail": f"name bytes {os.fsencode(name)[-60:]!r} are not UTF-8"})
                continue
            reason = skip_reason_for_name(path)
            if reason:
                skipped.append({"path": os.path.relpath(path, root), "reason": reason, "detail": name})
                continue
            entry = _link_skip(path, follow_links, root, root_real)
            if entry is not None:
                skipped.append(entry)
                continue
            files.append(path)
    return files


def _list_dirs(folder, *, follow_links=False, root=None, skipped=None):
    """Sub-folders and loose files of ``folder``; links and bad names become skips when ``skipped``."""
    root = root or folder
    root_real = os.path.realpath(root)
    dirs, loose = [], []
    for e in sorted(os.listdir(folder)):
        full = os.path.join(folder, e)
        if not os.path.isdir(full):
            if os.path.isfile(full) or os.path.islink(full) or os.path.exists(full):
                loose.append(e)
            continue
        if e.startswith(".") or e in _IGNORED_DIRS:
            continue
        entry = _link_skip(full, follow_links, root, root_real)
        if entry is None and not is_utf8_name(e):
            entry = {"path": shown_path(os.path.relpath(full, root)), "reason": "undecodable_name",
                     "detail": "a folder name that is not valid UTF-8"}
        if entry is not None:
            if skipped is not None:
                skipped.append(entry)
            continue
        dirs.append(e)
    return dirs, loose


def image_dataset_from_folder(
    directory,
    *,
    image_size=None,
    backbone=None,
    batch_size: int = 32,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = 0,
    label_mode: str = "int",
    class_names=None,
    color_mode: str = "rgb",
    augment=None,
    cache="auto",
    shuffle: bool = True,
    interpolation: str = "bilinear",
    crop_to_aspect_ratio: bool = False,
    on_leakage: str = "warn",
    min_per_class: int | None = None,
    follow_links: bool = False,
    drop_remainder: bool = False,
    summary_path=None,
    min_classes: int = 2,
) -> ImageData:
    """Load a folder of class sub-folders (``root/<class>/<image>``) into train/val/test datasets.

    If the folder's sub-folders are split names (``train/``, ``val/`` or ``validation/``,
    ``test/``), each holding class sub-folders, those splits are used as given (and leakage
    between them is reported); a split fraction > 0 for a missing split carves it from train.

    Args:
        directory: the top folder.
        image_size: (height, width) or an int; or pass ``backbone`` to use its input size.
        backbone: a catalog name or `BackboneSpec` whose ``input_size`` sets ``image_size``.
        batch_size: batch size of every split.
        validation_split, test_split: fractions of each class (stratified, seeded).
        seed: seeds the split, the shuffling and the augmentation policy.
        label_mode: "int" (class ids) or "categorical" (one-hot).
        class_names: optional explicit class order, kept as given; must match the sub-folder names
            (default: the sub-folder names sorted, numerically if all are numbers: "2" before "10").
        color_mode: "rgb" (3 channels) or "grayscale" (1 channel).
        augment: None, a policy name ("light", ...) or a list of layers, applied to train only.
        cache: "auto" (memory if the decoded images fit in 2 GiB), "memory"/True, False/None,
            or a file path for ``tf.data`` file caching.
        shuffle: shuffle train every epoch.
        interpolation: resize method ("bilinear", "nearest", "bicubic", "area", ...).
        crop_to_aspect_ratio: centre-crop to the target aspect ratio before resizing.
        on_leakage: "warn" (`DataWarning`), "raise" (`DataError`), "drop" (remove later copies),
            or "ignore".
        min_per_class: require at least this many training images per class.
        follow_links: follow symbolic links (to files and sub-folders) that stay inside
            ``directory``; links are skipped (reason "symlink") when False, and links leading
            outside ``directory`` are always skipped ("outside_root").
        drop_remainder: drop the last incomplete training batch.
        summary_path: write ``summary`` as JSON here.
        min_classes: the least number of classes: 2 (training needs two); 1 for evaluation data that
            may hold a single class (``tfxfer evaluate`` on a folder of only ``defective/``).

    Returns:
        `ImageData` with ``train``/``val``/``test`` datasets, ``class_names`` and ``summary``.

    Raises:
        DataError: no class folders, fewer than ``min_classes`` classes, an empty class, too few images
            per class, or classes that differ between given splits.
    """
    image_size = resolve_image_size(image_size, backbone)
    root = os.fspath(directory)
    if not os.path.isdir(root):
        raise ArgumentError("directory", root, "must be an existing folder")
    if label_mode not in ("int", "categorical"):
        raise ArgumentError("label_mode", label_mode, 'must be "int" or "categorical"')
    skipped, notes = [], []
    dirs, loose = _list_dirs(root, follow_links=follow_links, skipped=skipped)
    for name in loose:
        reason = "hidden_file" if skip_reason_for_name(name) == "hidden_file" else "outside_class_folder"
        skipped.append({"path": shown_path(name), "reason": reason, "detail": shown_path(name)})
    presplit = bool(dirs) and all(d.lower() in SPLIT_ALIASES for d in dirs)
    layout = {}  # split -> {class: folder}
    if presplit:
        for d in dirs:
            split = SPLIT_ALIASES[d.lower()]
            if split in layout:
                raise DataError(f"Two folders map to split {split!r} in {root}: rename one")
            sub, sub_loose = _list_dirs(os.path.join(root, d), follow_links=follow_links, root=root,
                                        skipped=skipped)
            for name in sub_loose:
                reason = "hidden_file" if skip_reason_for_name(name) == "hidden_file" else "outside_class_folder"
                skipped.append({"path": shown_path(os.path.join(d, name)), "reason": reason, "detail": shown_path(name)})
            layout[split] = {c: os.path.join(root, d, c) for c in sub}
        if "train" not in layout:
            raise DataError(f"{root} has split folders {dirs} but no 'train' folder")
    else:
        layout[None] = {c: os.path.join(root, c) for c in dirs}
    found = sort_class_names({c for classes in layout.values() for c in classes})
    if not found:
        links = [s["path"] for s in skipped if s["reason"] in ("symlink", "outside_root")]
        hint = (f" ({len(links)} linked folder(s) skipped, e.g. {links[0]!r}: pass follow_links=True to follow "
                "links that stay inside the folder)") if links else ""
        raise DataError(f"No class sub-folders in {root}: expected {root}/<class_name>/<images>{hint}")
    if class_names is not None:
        if sorted(class_names) != sorted(found) or len(set(class_names)) != len(class_names):
            raise DataError(f"`class_names` {list(class_names)} must match the class folders {found}")
        found = list(class_names)
    ids = {c: i for i, c in enumerate(found)}
    items = []
    for split, classes in layout.items():
        for c, folder in sorted(classes.items()):
            for path in _walk_class(folder, follow_links, skipped, root, notes):
                items.append((path, ids[c], split))
    return build_image_data(
        items, class_names=found, source=root, root=root, image_size=image_size,
        batch_size=batch_size, validation_split=validation_split, test_split=test_split, seed=seed,
        label_mode=label_mode, color_mode=color_mode, augment=augment, cache=cache, shuffle=shuffle,
        interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
        on_leakage=on_leakage, min_per_class=min_per_class, drop_remainder=drop_remainder,
        summary_path=summary_path, skipped=skipped, notes=notes, min_classes=min_classes)


def _drop_conflicting_rows(parsed, skipped, multi):
    """One row per file: a file listed twice with the same labels keeps its first row (the repeat
    is skipped as "bad_row"); a file listed under different labels is a "label_conflict" (every row
    of it skipped, each naming the other lines)."""
    by_file: dict = {}
    for entry in parsed:
        by_file.setdefault(os.path.realpath(entry[0]), []).append(entry)
    out = []
    for entry in parsed:
        rows = by_file[os.path.realpath(entry[0])]
        labels = {tuple(sorted(r[1])) if multi else r[1][0] for r in rows}
        if len(labels) > 1:
            others = ", ".join(f"line {r[3]} ({'|'.join(r[1])}: {r[4]})" for r in rows if r is not entry)
            skipped.append({"path": entry[4], "reason": "label_conflict",
                            "detail": f"line {entry[3]} says {bounded_repr('|'.join(entry[1]))}; also "
                                      f"{bounded_repr(others)[1:-1]}"})
        elif rows[0] is not entry:
            skipped.append({"path": entry[4], "reason": "bad_row",
                            "detail": f"line {entry[3]} repeats line {rows[0][3]} (same file, same label)"})
        else:
            out.append(entry[:3])
    return out


def image_dataset_from_csv(
    csv_path,
    *,
    image_size=None,
    backbone=None,
    root=None,
    path_column: str = "path",
    label_column: str = "label",
    label_separator: str | None = None,
    split_column: str | None = None,
    delimiter: str = ",",
    batch_size: int = 32,
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = 0,
    label_mode: str | None = None,
    color_mode: str = "rgb",
    augment=None,
    cache="auto",
    shuffle: bool = True,
    interpolation: str = "bilinear",
    crop_to_aspect_ratio: bool = False,
    on_leakage: str = "warn",
    min_per_class: int | None = None,
    drop_remainder: bool = False,
    summary_path=None,
    allow_outside_root: bool = False,
    min_classes: int = 2,
) -> ImageData:
    """Load images listed in a CSV/TSV table of (path, label) rows, single- or multi-label.

    Args:
        csv_path: the table (UTF-8, header row required).
        root: folder relative paths are resolved against (default: the table's folder).
        path_column, label_column: column names.
        label_separator: makes the table multi-label: the label cell is split on it
            (e.g. ``"|"`` for ``cat|dog``); labels become multi-hot vectors.
        split_column: optional column with "train"/"val"/"test" per row (pre-made splits).
        delimiter: "," for CSV, "\\t" for TSV.
        label_mode: "int" or "categorical" (single-label; default "int"); multi-label is always
            "multi_hot". The class order is the labels sorted, numerically if all are numbers.
        allow_outside_root: read rows whose path is absolute or leads outside ``root`` (``..``,
            a link); by default such rows are skipped with reason "outside_root".
        Other arguments: as in `image_dataset_from_folder`.

    Returns:
        `ImageData`; missing files are skipped with reason "missing_file", FIFOs and devices with
        "not_a_regular_file", and a file listed under two labels with "label_conflict" (every row
        of it, each naming the other lines).

    Example:
        >>> import os, tempfile, numpy as np
        >>> from PIL import Image
        >>> from tfxfer.data import image_dataset_from_csv
        >>> d = tempfile.mkdtemp()
        >>> rows = ["path,label"]
        >>> for i in range(6):
        ...     Image.fromarray(np.full((8, 8, 3), 40 * i, "uint8")).save(os.path.join(d, f"{i}.png"))
        ...     rows.append(f"{i}.png,{'sun|sea' if i % 2 else 'sea'}")
        >>> _ = open(os.path.join(d, "labels.csv"), "w").write("\\n".join(rows))
        >>> data = image_dataset_from_csv(os.path.join(d, "labels.csv"), image_size=8, batch_size=6,
        ...                               label_separator="|")
        >>> data.class_names, data.label_mode, next(iter(data.train))[1].shape
        (['sea', 'sun'], 'multi_hot', TensorShape([6, 2]))
    """
    image_size = resolve_image_size(image_size, backbone)
    csv_path = os.fspath(csv_path)
    if not os.path.isfile(csv_path):
        raise ArgumentError("csv_path", csv_path, "must be an existing file")
    multi = label_separator is not None
    if multi and label_mode not in (None, "multi_hot"):
        raise ArgumentError("label_mode", label_mode, "must be None or 'multi_hot' for multi-label tables")
    if not multi and label_mode not in (None, "int", "categorical"):
        raise ArgumentError("label_mode", label_mode, 'must be "int" or "categorical"')
    label_mode = "multi_hot" if multi else (label_mode or "int")
    root = os.fspath(root) if root is not None else os.path.dirname(os.path.abspath(csv_path))
    root_real = os.path.realpath(root)
    try:
        raw = read_regular_file(csv_path, max_bytes=MAX_TABLE_BYTES)
    except DataError as exc:
        raise DataError(f"`csv_path`: {exc}") from None
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path} is not valid utf-8 text (byte {exc.start}): is it really a CSV "
                        "table? Save it as UTF-8") from None
    content = content[1:] if content.startswith("\ufeff") else content
    records = table_records(content, delimiter=delimiter, tsv=delimiter == "\t", single_line=True)
    try:
        first = next(records, None)
        columns = first[1] if first else []
        for col in (path_column, label_column, split_column):
            if col is not None and col not in columns:
                raise DataError(f"Column {col!r} not found in {csv_path}; columns are {bounded_repr(columns)}")
        check_unique_columns(columns, (path_column, label_column, split_column), source=csv_path)
        rows = [(line, dict(zip(columns, cells))) for line, cells in records if cells]
    except csv.Error as exc:
        raise DataError(f"{csv_path} is not a readable CSV table: {exc}") from None
    skipped, parsed = [], []
    for line_no, row in rows:
        path = (row.get(path_column) or "").strip()
        raw = (row.get(label_column) or "").strip()
        split = None
        if split_column is not None:
            value = (row.get(split_column) or "").strip().lower()
            if value not in SPLIT_ALIASES:
                raise DataError(f"{csv_path} line {line_no}: split {bounded_repr(value)} is not one of "
                                f"{sorted(SPLIT_ALIASES)}")
            split = SPLIT_ALIASES[value]
        names = [t.strip() for t in raw.split(label_separator)] if multi else [raw]
        names = [t for t in names if t]
        if not path or (not multi and not names):
            skipped.append({"path": path or f"line {line_no}", "reason": "bad_row",
                            "detail": f"line {line_no}: empty path or label"})
            continue
        full = path if os.path.isabs(path) else os.path.join(root, path)
        if "\0" in path:
            skipped.append({"path": bounded_repr(path), "reason": "bad_row", "detail": f"line {line_no}: NUL in path"})
            continue
        if not allow_outside_root and (os.path.isabs(path) or not _inside(full, root_real)):
            skipped.append({"path": path, "reason": "outside_root",
                            "detail": f"line {line_no}: leads outside {root} (pass allow_outside_root=True to read it)"})
            continue
        if not os.path.isfile(full):
            reason = "not_a_regular_file" if os.path.exists(full) and not os.path.isdir(full) else "missing_file"
            skipped.append({"path": path, "reason": reason, "detail": f"line {line_no}"})
            continue
        parsed.append((full, names, split, line_no, path))
    parsed = _drop_conflicting_rows(parsed, skipped, multi)
    class_names = sort_class_names({n for _, names, _ in parsed for n in names})
    ids = {c: i for i, c in enumerate(class_names)}
    items = []
    for full, names, split in parsed:
        if multi:
            row = np.zeros(len(class_names), np.float32)
            row[[ids[n] for n in names]] = 1.0
            items.append((full, row, split))
        else:
            items.append((full, ids[names[0]], split))
    if not items:
        reasons = collections.Counter(s.get("reason", "?") for s in skipped)
        detail = ", ".join(f"{n} {r}" for r, n in reasons.most_common())
        hint = (" (rows leading outside the table's folder are read only with allow_outside_root=True, in a "
                "recipe `data.allow_outside_root: true`)" if reasons.get("outside_root") else "")
        raise DataError(f"No usable rows in {csv_path} ({len(skipped)} skipped: {detail or 'none'}){hint}")
    return build_image_data(
        items, class_names=class_names, source=csv_path, root=root, image_size=image_size,
        batch_size=batch_size, validation_split=validation_split, test_split=test_split, seed=seed,
        label_mode=label_mode, color_mode=color_mode, augment=augment, cache=cache, shuffle=shuffle,
        interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
        on_leakage=on_leakage, min_per_class=min_per_class, drop_remainder=drop_remainder,
        summary_path=summary_path, skipped=skipped, min_classes=min_classes)
