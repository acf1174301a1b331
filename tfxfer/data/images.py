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

import csv
import os

import numpy as np

from tfxfer.data.build import SPLIT_ALIASES, build_image_data, resolve_image_size
from tfxfer.data.result import ImageData
from tfxfer.data.scan import skip_reason_for_name
from tfxfer.errors import ArgumentError, DataError

_IGNORED_DIRS = ("__MACOSX",)


def _walk_class(folder, follow_links, skipped, root, notes):
    files = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=follow_links):
        hidden = sorted(d for d in dirnames if d.startswith(".") or d in _IGNORED_DIRS)
        for d in hidden:
            notes.append(f"ignored hidden folder {os.path.relpath(os.path.join(dirpath, d), root)}")
        dirnames[:] = sorted(d for d in dirnames if d not in hidden)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            reason = skip_reason_for_name(path)
            if reason:
                skipped.append({"path": os.path.relpath(path, root), "reason": reason, "detail": name})
            else:
                files.append(path)
    return files


def _list_dirs(folder):
    entries = sorted(os.listdir(folder))
    dirs = [e for e in entries if os.path.isdir(os.path.join(folder, e))
            and not e.startswith(".") and e not in _IGNORED_DIRS]
    loose = [e for e in entries if os.path.isfile(os.path.join(folder, e))]
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
        class_names: optional explicit class order; must match the sub-folder names.
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
        follow_links: follow symbolic links to sub-folders.
        drop_remainder: drop the last incomplete training batch.
        summary_path: write ``summary`` as JSON here.

    Returns:
        `ImageData` with ``train``/``val``/``test`` datasets, ``class_names`` and ``summary``.

    Raises:
        DataError: no class folders, a single class, an empty class, too few images per class,
            or classes that differ between given splits.
    """
    image_size = resolve_image_size(image_size, backbone)
    root = os.fspath(directory)
    if not os.path.isdir(root):
        raise ArgumentError("directory", root, "must be an existing folder")
    if label_mode not in ("int", "categorical"):
        raise ArgumentError("label_mode", label_mode, 'must be "int" or "categorical"')
    skipped, notes = [], []
    dirs, loose = _list_dirs(root)
    for name in loose:
        reason = "hidden_file" if skip_reason_for_name(name) == "hidden_file" else "outside_class_folder"
        skipped.append({"path": name, "reason": reason, "detail": name})
    presplit = bool(dirs) and all(d.lower() in SPLIT_ALIASES for d in dirs)
    layout = {}  # split -> {class: folder}
    if presplit:
        for d in dirs:
            split = SPLIT_ALIASES[d.lower()]
            if split in layout:
                raise DataError(f"Two folders map to split {split!r} in {root}: rename one")
            sub, sub_loose = _list_dirs(os.path.join(root, d))
            for name in sub_loose:
                reason = "hidden_file" if skip_reason_for_name(name) == "hidden_file" else "outside_class_folder"
                skipped.append({"path": os.path.join(d, name), "reason": reason, "detail": name})
            layout[split] = {c: os.path.join(root, d, c) for c in sub}
        if "train" not in layout:
            raise DataError(f"{root} has split folders {dirs} but no 'train' folder")
    else:
        layout[None] = {c: os.path.join(root, c) for c in dirs}
    found = sorted({c for classes in layout.values() for c in classes})
    if not found:
        raise DataError(f"No class sub-folders in {root}: expected {root}/<class_name>/<images>")
    if class_names is not None:
        if sorted(class_names) != found or len(set(class_names)) != len(class_names):
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
        summary_path=summary_path, skipped=skipped, notes=notes)


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
            "multi_hot".
        Other arguments: as in `image_dataset_from_folder`.

    Returns:
        `ImageData`; missing files are skipped with reason "missing_file".

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
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            columns = reader.fieldnames or []
            for col in (path_column, label_column, split_column):
                if col is not None and col not in columns:
                    raise DataError(f"Column {col!r} not found in {csv_path}; columns are {columns}")
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise DataError(f"{csv_path} is not valid utf-8 text (byte {exc.start}): is it really a CSV "
                        "table? Save it as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{csv_path} is not a readable CSV table: {exc}") from None
    skipped, parsed = [], []
    for line_no, row in enumerate(rows, start=2):
        path = (row.get(path_column) or "").strip()
        raw = (row.get(label_column) or "").strip()
        split = None
        if split_column is not None:
            value = (row.get(split_column) or "").strip().lower()
            if value not in SPLIT_ALIASES:
                raise DataError(f"{csv_path} line {line_no}: split {value!r} is not one of "
                                f"{sorted(SPLIT_ALIASES)}")
            split = SPLIT_ALIASES[value]
        names = [t.strip() for t in raw.split(label_separator)] if multi else [raw]
        names = [t for t in names if t]
        if not path or (not multi and not names):
            skipped.append({"path": path or f"line {line_no}", "reason": "bad_row",
                            "detail": f"line {line_no}: empty path or label"})
            continue
        full = path if os.path.isabs(path) else os.path.join(root, path)
        if not os.path.isfile(full):
            skipped.append({"path": path, "reason": "missing_file", "detail": f"line {line_no}"})
            continue
        parsed.append((full, names, split))
    class_names = sorted({n for _, names, _ in parsed for n in names})
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
        raise DataError(f"No usable rows in {csv_path} ({len(skipped)} skipped)")
    return build_image_data(
        items, class_names=class_names, source=csv_path, root=root, image_size=image_size,
        batch_size=batch_size, validation_split=validation_split, test_split=test_split, seed=seed,
        label_mode=label_mode, color_mode=color_mode, augment=augment, cache=cache, shuffle=shuffle,
        interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
        on_leakage=on_leakage, min_per_class=min_per_class, drop_remainder=drop_remainder,
        summary_path=summary_path, skipped=skipped)
