"""Image data from numpy arrays and from an existing tf.data.Dataset."""

import numpy as np
import pytest
import tensorflow as tf

from tfxfer.data import image_dataset_from_arrays, image_dataset_from_dataset
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError


def test_grayscale_arrays_become_rgb_at_size(rng):
    x = rng.integers(0, 256, (30, 12, 12), dtype=np.uint8)
    y = np.arange(30) % 3
    data = image_dataset_from_arrays(x, y, image_size=(20, 20), batch_size=6, validation_split=0.2,
                                     class_names=["a", "b", "c"], seed=1)
    images, labels = next(iter(data.val))
    assert tuple(images.shape) == (6, 20, 20, 3) and images.dtype == tf.float32
    assert np.array_equal(images[..., 0], images[..., 2])  # grey repeated to RGB
    assert data.counts == {"train": {"a": 8, "b": 8, "c": 8}, "val": {"a": 2, "b": 2, "c": 2}}


def test_arrays_at_native_size_keep_pixels(rng):
    x = rng.integers(0, 256, (8, 5, 5, 3), dtype=np.uint8)
    data = image_dataset_from_arrays(x, [0, 1] * 4, batch_size=8, shuffle=False)
    images, labels = next(iter(data.train))
    assert np.array_equal(images.numpy().astype(np.uint8), x) and list(labels.numpy()) == [0, 1] * 4


def test_string_labels_and_one_hot_and_categorical_mode(rng):
    x = rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8)
    data = image_dataset_from_arrays(x, np.array(["dog", "cat"] * 3), label_mode="categorical", batch_size=6)
    assert data.class_names == ["cat", "dog"]
    assert next(iter(data.train))[1].shape == (6, 2)
    numbers = image_dataset_from_arrays(x, np.array(["10", "2", "1"] * 2), batch_size=6)
    assert numbers.class_names == ["1", "2", "10"]  # numerically, as the file and text loaders sort them
    one_hot = np.eye(2)[[0, 1] * 3]
    assert image_dataset_from_arrays(x, one_hot, batch_size=2).class_names == ["0", "1"]


def test_duplicate_arrays_are_grouped(rng):
    x = rng.integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    x[1] = x[0]
    data = image_dataset_from_arrays(x, np.arange(20) % 2 * 0 + (np.arange(20) >= 10), test_split=0.3,
                                     batch_size=4, seed=0)
    assert data.summary.leakage == [] and data.summary.duplicates[0]["paths"] == ["#0", "#1"]


ARRAY_ERRORS = [
    (np.zeros((4, 4)), [0, 1, 0, 1], {}, ArgumentError, "`x` must have shape"),
    (np.zeros((4, 4, 4, 2)), [0, 1, 0, 1], {}, ArgumentError, "`x` must have shape"),
    (np.zeros((4, 4, 4)), [0, 1, 0], {}, ArgumentError, "must have one label per image"),
    (np.zeros((4, 4, 4)), [0, 0, 0, 0], {}, DataError, "single class"),
    (np.zeros((4, 4, 4)), [0, 1, 0, -1], {}, ArgumentError, "class ids >= 0"),
    (np.zeros((4, 4, 4)), [0.5, 1, 0, 1], {}, ArgumentError, "integer class ids"),
    (np.zeros((4, 4, 4)), np.full((4, 2), 0.5), {}, ArgumentError, "not one-hot"),
    (np.zeros((4, 4, 4)), ["a", "b", "a", "c"], {"class_names": ["a", "b"]}, DataError, r"Labels \['c'\]"),
    (np.full((4, 4, 4), np.nan), [0, 1, 0, 1], {}, ArgumentError, "finite"),
    (np.arange(64).reshape(4, 4, 4), [0, 1, 0, 1], {"validation_split": 0.3, "test_split": 0.3}, DataError,
     "Too few images per class"),
    (np.zeros((6, 4, 4)), [0, 1] * 3, {"test_split": 0.3}, DataError, "Class '0' has only 1 distinct item"),
]


def test_array_errors():
    for x, y, kwargs, error, match in ARRAY_ERRORS:
        with pytest.raises(error, match=match):
            image_dataset_from_arrays(x, y, batch_size=2, **kwargs)


def test_from_dataset_batched_any_size(rng):
    x = rng.integers(0, 256, (12, 9, 7, 3), dtype=np.uint8)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(12) % 2)).batch(5)
    data = image_dataset_from_dataset(ds, image_size=(6, 6), batch_size=4, test_split=0.25, seed=0)
    assert data.counts == {"train": {"0": 4, "1": 4}, "test": {"0": 2, "1": 2}}
    assert tuple(next(iter(data.train))[0].shape) == (4, 6, 6, 3)


def test_from_dataset_errors():
    with pytest.raises(ArgumentTypeError, match="`dataset` must be a tf.data.Dataset"):
        image_dataset_from_dataset([1, 2], image_size=4)
    with pytest.raises(ArgumentError, match="must yield \\(image, label\\) pairs"):
        image_dataset_from_dataset(tf.data.Dataset.from_tensor_slices(np.zeros((2, 4, 4, 3))), image_size=4)


def test_drop_remainder_with_a_batch_above_the_training_split_names_batch_size_and_train(rng):
    x = rng.integers(0, 255, (12, 8, 8, 3)).astype("uint8")
    y = np.arange(12) % 2
    with pytest.raises(ArgumentError, match=r"`batch_size` must be at most the 8 examples of the `train` split when "
                                            r"drop_remainder=True"):
        image_dataset_from_arrays(x, y, batch_size=16, validation_split=0.25, drop_remainder=True)
    data = image_dataset_from_arrays(x, y, batch_size=3, validation_split=0.25, drop_remainder=True)
    assert [int(b[0].shape[0]) for b in data.train] == [3, 3]  # 8 training examples: the last 2 are dropped
