"""The image data a pipeline run trains and evaluates on, from any `Source`.

Packaged data sets keep their fixed splits (optionally subsampled with ``data.max_train`` /
``data.max_eval``); folders and CSV tables go through `tfxfer.data.image_dataset_from_folder` /
`image_dataset_from_csv` (file hygiene, stratified split, leakage report). Augmentation is added
to the training pipeline only (`tfxfer.augment.augment_dataset`); feature extraction, evaluation
and export always see un-augmented images.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from tfxfer.errors import DataError


@dataclasses.dataclass
class ImageSplits:
    """Batched ``tf.data`` pipelines per split plus what the loader found.

    Attributes:
        train: augmented (if asked) and shuffled training batches.
        train_plain: the same images without augmentation (features, calibration).
        val, test: fixed-order batches or None; ``eval_split`` names the held-out split used for
            evaluation and the export gate ("test", else "val").
        files: ``{split: [path, ...]}`` in dataset order for file sources, else None.
    """

    train: object
    train_plain: object
    val: object
    test: object
    class_names: list
    summary: object
    image_size: tuple
    channels: int
    files: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def eval_split(self) -> str:
        return "test" if self.test is not None else "val"

    @property
    def eval(self):
        return self.test if self.test is not None else self.val

    def sizes(self) -> dict:
        return {s: int(sum(c.values())) for s, c in self.summary.class_counts.items()}

    def held_out_arrays(self):
        """``(images, labels)`` of every held-out image (validation and test): the export gate's data.
        No gradient step and no int8 calibration (training split only) saw them; the more images, the
        narrower the gate's interval on the accuracy change."""
        parts = [take_images(d) for d in (self.val, self.test) if d is not None]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _subsample(x, y, limit, seed):
    if limit is None or len(y) <= limit:
        return x, y
    from tfxfer.data import stratified_split

    keep = 1.0 - limit / len(y)
    idx = stratified_split(y, validation_split=keep, seed=seed)["train"] if 0 < keep < 1 else np.arange(len(y))
    idx = np.sort(idx)[:limit]
    return x[idx], y[idx]


def _augmented(cfg, train, num_classes: int):
    """``data.augment`` on the training pipeline; with ``train.deterministic`` one batch after another,
    so a seeded (or resumed) run draws the same augmentations (the pipeline reseeds them per epoch)."""
    if cfg.data.augment == "none":
        return train
    from tfxfer.augment import augment_dataset

    return augment_dataset(train, cfg.data.augment, num_classes=num_classes, seed=cfg.seed,
                           deterministic=bool(cfg.train.deterministic))


def _packaged(cfg, name, image_size, channels):
    from tfxfer.data import DataSummary, class_weights, find_duplicates, imbalance_report
    from tfxfer.data import load as data_load
    from tfxfer.data.hygiene import count_by_class, handle_leakage
    from tfxfer.data.tfdata import array_pipeline

    loaded = data_load(name)
    d, seed, batch = cfg.data, cfg.seed, cfg.train.batch_size
    parts = {"train": _subsample(*loaded.train, d.max_train, seed),
             "val": _subsample(*loaded.val, d.max_eval, seed + 1),
             "test": _subsample(*loaded.test, d.max_eval, seed + 2)}
    names = list(loaded.class_names)
    summary = DataSummary(source=f"packaged data set {name!r} ({loaded.info.licence})",
                          scanned=int(sum(len(y) for _, y in parts.values())))
    keys, split_of, item_names = [], [], []
    for split, (x, y) in parts.items():
        for i, image in enumerate(x):
            keys.append(hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest())
            split_of.append(split)
            item_names.append(f"{split}#{i}")
    summary.duplicates, summary.leakage = find_duplicates(keys, split_of, item_names)
    handle_leakage(summary.leakage, "ignore" if d.on_leakage == "drop" else d.on_leakage, summary)
    summary.class_counts = {s: count_by_class(y, names) for s, (_, y) in parts.items()}
    summary.imbalance = imbalance_report(summary.class_counts["train"])
    summary.class_weights = class_weights(summary.class_counts["train"], names)
    summary.notes.append(f"fixed splits of the packaged data set ({loaded.info.split_policy})")
    if d.max_train or d.max_eval:
        summary.notes.append(f"subsampled: max_train={d.max_train}, max_eval={d.max_eval} (stratified, seed {seed})")

    def pipe(split, training):
        x, y = parts[split]
        return array_pipeline(x, y, image_size=image_size, batch_size=batch, training=training, seed=seed,
                              num_classes=len(names), channels=channels)

    return ImageSplits(train=_augmented(cfg, pipe("train", True), len(names)), train_plain=pipe("train", False),
                       val=pipe("val", False), test=pipe("test", False), class_names=names, summary=summary,
                       image_size=image_size, channels=channels)


def load_image_data(cfg, source, *, image_size) -> ImageSplits:
    """Load ``source`` for ``cfg`` at ``image_size`` (the model's input size)."""
    from tfxfer.data import image_dataset_from_csv, image_dataset_from_folder

    channels = 1 if cfg.data.color_mode == "grayscale" else 3
    if source.kind == "packaged":
        return _packaged(cfg, source.value, image_size, channels)
    d = cfg.data
    common = dict(image_size=image_size, batch_size=cfg.train.batch_size, validation_split=d.validation_split,
                  test_split=d.test_split, seed=cfg.seed, color_mode=d.color_mode, on_leakage=d.on_leakage)
    if source.kind == "folder":
        data = image_dataset_from_folder(source.value, **common)
    else:
        data = image_dataset_from_csv(source.value, path_column=d.path_column, label_column=d.label_column,
                                      allow_outside_root=d.allow_outside_root, **common)
    if data.val is None and data.test is None:
        raise DataError(f"{source.value} gives no held-out images: set data.validation_split or "
                        "data.test_split > 0 (or provide val/ or test/ folders); the export gate needs them")
    return ImageSplits(train=_augmented(cfg, data.train, data.num_classes), train_plain=data.train, val=data.val,
                       test=data.test, class_names=list(data.class_names), summary=data.summary,
                       image_size=tuple(image_size), channels=channels, files=data.files)


def take_images(dataset, limit: int | None = None):
    """``(images, labels)`` numpy arrays from a batched dataset (at most ``limit`` images), as the
    export gate reads data (`tfxfer.export.data.as_arrays`)."""
    from tfxfer.export.data import as_arrays
    from tfxfer.reliability.shuffle import fixed_order

    with fixed_order(dataset):  # a shuffled training pipeline: the same sample in a resumed run
        return as_arrays(dataset, name="dataset", limit=limit)
