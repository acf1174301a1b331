"""`ImageData`: what every image loader returns (datasets per split, class names, summary)."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tfxfer.data.hygiene import DataSummary, class_weights
from tfxfer.data.splits import Split  # noqa: F401 - tfxfer.data.domains still imports it from here
from tfxfer.errors import ArgumentError, DataError


#: Label encodings a loader can produce.
LABEL_MODES = ("int", "categorical", "multi_hot")


@dataclasses.dataclass
class ImageData:
    """Train/val/test ``tf.data.Dataset`` s of ``(images, labels)`` batches plus what was found.

    Images are float32 RGB in 0-255 (the model's ``Preprocess`` layer does the scaling), resized
    to ``image_size``. Labels are class ids (``label_mode="int"``), one-hot vectors
    ("categorical") or multi-hot vectors ("multi_hot", multi-label tables).

    Attributes:
        train, val, test: batched datasets; ``val`` / ``test`` are None when not requested.
            ``train`` is shuffled each epoch (seeded) and augmented if asked; val/test are in a
            fixed order.
        class_names: class names; label ``i`` means ``class_names[i]``.
        summary: the `DataSummary` (skips per file, duplicates, leakage, imbalance).
        image_size: (height, width).
        label_mode: "int", "categorical" or "multi_hot".
        files: ``{split: [path, ...]}`` in dataset order (before shuffling), or None for arrays.
        labels: ``{split: labels array}`` in the same order.

    Example:
        >>> import numpy as np
        >>> from tfxfer.data import image_dataset_from_arrays
        >>> x = np.random.default_rng(0).integers(0, 255, (20, 8, 8, 3), dtype="uint8")
        >>> data = image_dataset_from_arrays(x, np.array([0] * 15 + [1] * 5), batch_size=4,
        ...                                  validation_split=0.2, seed=0)
        >>> data
        ImageData(classes=['0', '1'], image_size=(8, 8), label_mode='int', sizes={'train': 16, 'val': 4}, skipped=0)
        >>> data.counts["train"], data.class_weights()  # weights opt-in: model.fit(..., class_weight=)
        ({'0': 12, '1': 4}, {0: 0.6667, 1: 2.0})
        >>> data.split("val").element_spec[0].shape
        TensorShape([None, 8, 8, 3])
    """

    train: tf.data.Dataset
    val: tf.data.Dataset | None
    test: tf.data.Dataset | None
    class_names: list
    summary: DataSummary
    image_size: tuple
    label_mode: str = "int"
    files: dict | None = None
    labels: dict = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def counts(self) -> dict:
        """``{split: {class_name: count}}`` (also in ``summary.class_counts``)."""
        return self.summary.class_counts

    def class_weights(self) -> dict[int, float]:
        """Balanced class weights from the training counts, for ``model.fit(class_weight=...)``.

        Raises:
            DataError: for multi-label data (use per-label sample weights instead).
        """
        if self.label_mode == "multi_hot":
            raise DataError("class_weight needs single-label data; for multi-label data weight "
                            "the loss per label (e.g. sample weights) instead")
        return class_weights(self.summary.class_counts["train"], self.class_names)

    def split(self, name: str) -> tf.data.Dataset:
        """The dataset of split ``name`` ("train", "val" or "test"); error if it was not made."""
        if name not in ("train", "val", "test"):
            raise ArgumentError("name", name, 'must be "train", "val" or "test"')
        ds = getattr(self, name)
        if ds is None:
            raise DataError(f"No {name!r} split: pass {'validation_split' if name == 'val' else 'test_split'}"
                            " > 0 (or provide that split) when loading")
        return ds

    def __repr__(self) -> str:
        sizes = {k: int(sum(v.values())) for k, v in self.summary.class_counts.items()}
        return (f"ImageData(classes={self.class_names}, image_size={self.image_size}, "
                f"label_mode={self.label_mode!r}, sizes={sizes}, skipped={len(self.summary.skipped)})")


def encode_labels(ids, *, label_mode: str, num_classes: int) -> np.ndarray:
    """Class ids (or multi-hot rows) -> the arrays a dataset yields for ``label_mode``."""
    if label_mode not in LABEL_MODES:
        raise ArgumentError("label_mode", label_mode, "must be one of " + ", ".join(LABEL_MODES))
    ids = np.asarray(ids)
    if label_mode == "multi_hot":
        return ids.astype(np.float32)
    if label_mode == "categorical":
        out = np.zeros((len(ids), num_classes), np.float32)
        out[np.arange(len(ids)), ids.astype(np.int64)] = 1.0
        return out
    return ids.astype(np.int32)
