"""Augmentation for the tf.data training pipeline, and its removal from models before export.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfxfer import augment
    >>> ds = tf.data.Dataset.from_tensor_slices((np.zeros((4, 8, 8, 3), "float32"), [0, 1, 0, 1])).batch(2)
    >>> train = augment.augment_dataset(ds, [augment.flip(), augment.mixup()], num_classes=2, seed=1)
    >>> next(iter(train))[1].shape
    TensorShape([2, 2])
"""

from tfxfer.augment.apply import augment_batch, augment_dataset, mixes_labels
from tfxfer.augment.policies import (
    color_jitter,
    cutmix,
    flip,
    list_policies,
    mixup,
    policy,
    rand_augment,
    random_erasing,
    rotation,
    translation,
    zoom,
)
from tfxfer.augment.strip import find_augmentation_layers, is_augmentation_layer, strip_augmentation

__all__ = [
    "augment_batch",
    "augment_dataset",
    "color_jitter",
    "cutmix",
    "find_augmentation_layers",
    "flip",
    "is_augmentation_layer",
    "list_policies",
    "mixes_labels",
    "mixup",
    "policy",
    "rand_augment",
    "random_erasing",
    "rotation",
    "strip_augmentation",
    "translation",
    "zoom",
]
