"""Shared core of the file-based image loaders: scan -> split -> check -> pipelines -> summary."""

from __future__ import annotations

import os

import numpy as np

from tfxfer.backbones.catalog import get_spec
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
)
from tfxfer.data.tfdata import check_batch_size, check_image_size, check_interpolation, file_pipeline
from tfxfer.data.result import ImageData, encode_labels
from tfxfer.data.scan import scan_images
from tfxfer.data.splits import SPLIT_NAMES, check_fractions, stratified_split
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.utils.validate import check_int

#: Folder / column values accepted as split names.
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def resolve_image_size(image_size, backbone):
    """``image_size`` or the input size of ``backbone`` (a catalog name or BackboneSpec)."""
    if backbone is not None:
        if image_size is not None:
            raise ArgumentError("image_size", image_size, "must be None when `backbone` is given")
        return tuple(get_spec(backbone).input_size)
    if image_size is None:
        raise ArgumentError("image_size", None, "is required (or pass backbone=... to use its input size)")
    return check_image_size(image_size)


def build_image_data(items, *, class_names, source, root, image_size, batch_size, validation_split,
                     test_split, seed, label_mode, color_mode, augment, cache, shuffle, interpolation,
                     crop_to_aspect_ratio, on_leakage, min_per_class, drop_remainder, summary_path,
                     skipped=(), notes=(), min_classes=2):
    """Turn ``items`` (path, label, split-or-None) into an `ImageData`.

    ``label`` is a class id, or a multi-hot row when ``label_mode == "multi_hot"``. ``min_classes``: the
    least number of classes the data must hold (2 to train; 1 lets evaluation data hold a single class).
    """
    image_size = check_image_size(image_size)
    batch_size = check_batch_size(batch_size)
    check_fractions(validation_split, test_split)
    check_interpolation(interpolation)
    if color_mode not in ("rgb", "grayscale"):
        raise ArgumentError("color_mode", color_mode, 'must be "rgb" or "grayscale"')
    check_int("seed", seed, low=None)
    check_int("min_classes", min_classes, low=1)
    if summary_path is not None:  # checked before the scan: a wrong path failed only after it
        if not isinstance(summary_path, (str, os.PathLike)):
            raise ArgumentTypeError("summary_path", summary_path, "a file path or None")
        if os.path.isdir(summary_path):
            raise ArgumentError("summary_path", os.fspath(summary_path), "must name a file, not a folder",
                                hint="e.g. summary_path=<folder>/data_summary.json")
    try:
        return _build(items, class_names=class_names, source=source, root=root, image_size=image_size,
                      batch_size=batch_size, validation_split=validation_split, test_split=test_split, seed=seed,
                      label_mode=label_mode, color_mode=color_mode, augment=augment, cache=cache, shuffle=shuffle,
                      interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio, on_leakage=on_leakage,
                      min_per_class=min_per_class, drop_remainder=drop_remainder, summary_path=summary_path,
                      skipped=skipped, notes=notes, min_classes=min_classes)
    except DataError as exc:
        links = sum(1 for s in skipped if s.get("reason") in ("symlink", "outside_root"))
        if not links:
            raise
        raise DataError(f"{exc} ({links} item(s) were skipped as symbolic links or as leading outside the data "
                        "root: links are followed only with follow_links=True and never out of the folder; a "
                        "table's paths are read outside its root only with allow_outside_root=True)") from None


def _build(items, *, class_names, source, root, image_size, batch_size, validation_split, test_split, seed,
           label_mode, color_mode, augment, cache, shuffle, interpolation, crop_to_aspect_ratio, on_leakage,
           min_per_class, drop_remainder, summary_path, skipped, notes, min_classes):
    if on_leakage not in ("warn", "raise", "drop", "ignore"):
        raise ArgumentError("on_leakage", on_leakage, 'must be "warn", "raise", "drop" or "ignore"')
    summary = DataSummary(source=str(source), scanned=len(items) + len(skipped),
                          skipped=list(skipped), notes=list(notes))

    scan = scan_images([it[0] for it in items], root=root)
    summary.skipped.extend(scan.skipped)
    summary.skipped.sort(key=lambda s: s["path"])
    summary.converted = scan.converted
    by_path = {it[0]: it for it in items}
    paths = [r.path for r in scan.ok]
    blobs = [r.blob for r in scan.ok]
    hashes = [r.sha256 for r in scan.ok]
    labels = np.array([by_path[p][1] for p in paths]) if paths else np.zeros((0,), np.int64)
    given = [by_path[p][2] for p in paths]
    multi = label_mode == "multi_hot"
    if multi and labels.size == 0:
        labels = np.zeros((0, len(class_names)), np.float32)

    # --- splits ---------------------------------------------------------------------------------
    presplit = any(g is not None for g in given)
    n_splits = 1 + (validation_split > 0) + (test_split > 0)
    need = max(int(min_per_class or 0), 1 if presplit else n_splits)
    if presplit:
        split_of = np.array([g or "train" for g in given], dtype=object)
        for name, frac in (("val", validation_split), ("test", test_split)):
            if frac > 0 and np.any(split_of == name):
                raise ArgumentError(
                    "validation_split" if name == "val" else "test_split", frac,
                    f"must be 0 because the data already has a {name!r} split")
        train_idx = np.flatnonzero(split_of == "train")
        if (validation_split > 0 or test_split > 0) and len(train_idx):
            check_class_counts({"train": count_by_class(labels[train_idx], class_names)}, class_names,
                               min_per_class=n_splits, min_classes=min_classes)
            carved = stratified_split(labels[train_idx], validation_split=validation_split,
                                      test_split=test_split, seed=seed, class_names=class_names,
                                      groups=[hashes[i] for i in train_idx])
            for name, idx in carved.items():
                split_of[train_idx[idx]] = name
    else:
        check_class_counts({"all": count_by_class(labels, class_names)}, class_names,
                           min_per_class=need, min_classes=min_classes)
        parts = stratified_split(labels, validation_split=validation_split, test_split=test_split,
                                 seed=seed, groups=hashes, class_names=class_names)
        split_of = np.empty(len(paths), dtype=object)
        for name, idx in parts.items():
            split_of[idx] = name

    # --- duplicates and leakage -------------------------------------------------------------------
    rel = [os.path.relpath(p, root) if root else p for p in paths]
    named = [tuple(class_names[j] for j in np.flatnonzero(row > 0.5)) if multi else class_names[int(row)]
             for row in labels]
    report_label_problems(summary, class_names, label_conflicts(hashes, named, rel))
    summary.duplicates, summary.leakage = find_duplicates(hashes, list(split_of), rel)
    handle_leakage(summary.leakage, on_leakage, summary)
    keep = np.ones(len(paths), bool)
    if on_leakage == "drop" and summary.leakage:
        order = {s: i for i, s in enumerate(SPLIT_NAMES)}
        first_split = {}
        for i in sorted(range(len(paths)), key=lambda i: order[split_of[i]]):
            first = first_split.setdefault(hashes[i], split_of[i])
            if split_of[i] != first:
                keep[i] = False
                summary.skipped.append({"path": rel[i], "reason": "leaked_copy",
                                        "detail": f"same content as a file in {first!r}"})
        summary.notes.append(f"dropped {int((~keep).sum())} leaked copies from later splits")

    # --- checks, counts, weights -------------------------------------------------------------------
    present = [s for s in SPLIT_NAMES if np.any((split_of == s) & keep) or
               (s == "val" and validation_split > 0) or (s == "test" and test_split > 0)]
    counts = {s: count_by_class(labels[(split_of == s) & keep], class_names) for s in present}
    if "train" not in counts:
        counts = {"train": {c: 0 for c in class_names}, **counts}
    check_class_counts(counts, class_names, min_per_class=max(int(min_per_class or 0), 1), min_classes=min_classes)
    summary.class_counts = counts
    summary.imbalance = imbalance_report(counts["train"])
    summary.class_weights = None if multi else class_weights(counts["train"], class_names)

    # --- pipelines --------------------------------------------------------------------------------
    channels = 3 if color_mode == "rgb" else 1
    datasets, files, split_labels = {}, {}, {}
    for s in present:
        idx = np.flatnonzero((split_of == s) & keep)
        encoded = encode_labels(labels[idx], label_mode=label_mode, num_classes=len(class_names))
        files[s] = [paths[i] for i in idx]
        split_labels[s] = encoded
        datasets[s] = file_pipeline(
            files[s], [blobs[i] for i in idx], encoded, image_size=image_size, batch_size=batch_size,
            training=(s == "train"), seed=seed, cache=cache, shuffle=shuffle,
            augment=augment if s == "train" else None, num_classes=len(class_names), channels=channels,
            interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio,
            drop_remainder=drop_remainder and s == "train")
    data = ImageData(train=datasets["train"], val=datasets.get("val"), test=datasets.get("test"),
                     class_names=list(class_names), summary=summary, image_size=image_size,
                     label_mode=label_mode, files=files, labels=split_labels)
    if summary_path is not None:
        summary.to_json(summary_path)
    return data
