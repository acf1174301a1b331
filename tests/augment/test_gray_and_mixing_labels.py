"""Augmentation on gray images and label mixing with ordinary label shapes and bad class counts."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfxfer.augment import augment_dataset, cutmix, mixup, random_erasing
from tfxfer.data import image_dataset_from_arrays
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.reliability.inputs import data_errors

X = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype("float32")


def test_every_policy_runs_on_gray_images():
    x = np.random.default_rng(0).integers(0, 255, (12, 16, 16)).astype("uint8")
    data = image_dataset_from_arrays(x, np.arange(12) % 2, color_mode="grayscale", augment="medium", batch_size=4)
    images, _ = next(iter(data.train))
    assert images.shape == (4, 16, 16, 1)
    gray = tf.data.Dataset.from_tensor_slices((x[..., None].astype("float32"), np.arange(12) % 2)).batch(4)
    for name in ("light", "medium", "heavy", "flips"):
        images, _ = next(iter(augment_dataset(gray, name, num_classes=2, seed=0)))
        assert images.shape == (4, 16, 16, 1), name


def test_mixing_takes_a_column_of_ids_and_refuses_bad_class_counts_and_ids():
    column = tf.data.Dataset.from_tensor_slices((X, np.array([[0], [1], [1], [0]]))).batch(4)
    _, labels = next(iter(augment_dataset(column, [mixup(seed=0)], num_classes=2)))
    assert labels.shape == (4, 2)
    ids = tf.data.Dataset.from_tensor_slices((X, np.array([0, 1, 5, 0]))).batch(4)
    for bad in (0, -2, 2.7, "two"):
        with pytest.raises(ArgumentError, match=r"`num_classes` must be an int >= 1"):
            augment_dataset(ids, [cutmix(seed=0)], num_classes=bad)
    with pytest.raises(DataError, match="class id outside the head's classes"):
        with data_errors():
            next(iter(augment_dataset(ids, [mixup(seed=0)], num_classes=2)))


def test_random_erasing_checks_its_scale():
    with pytest.raises(ArgumentError, match=r"`scale` must be \(low, high\) with low <= high"):
        random_erasing(scale=(0.5, 0.1))
    with pytest.raises(ArgumentError, match=r"`scale` must be a finite number in \(0, 1\]"):
        random_erasing(scale=(-1, 5))
    with pytest.raises(ArgumentTypeError, match="`scale` must be a \\(low, high\\) pair"):
        random_erasing(scale="ab")
