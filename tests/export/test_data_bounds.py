"""Data the exporters read stays bounded: an infinite tf.data eval set is refused up front (it would be
read forever), calibration picks its images before converting them (a large uint8 array is never
copied whole as float32), and ``variants="float32"`` is one variant, not seven characters."""

import tracemalloc

import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import ArgumentTypeError, DataError
from tfxfer.export import convert_tflite, export_all, verify
from tfxfer.export.data import as_arrays, sample_images


def test_an_infinite_dataset_is_refused_naming_the_argument(tmp_path):
    import tensorflow as tf

    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=1)
    x, y = tiny_images(16, size=16, classes=3, seed=1)
    endless = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    with pytest.raises(DataError, match="`data` is an infinite tf.data.Dataset"):
        verify(model, convert_tflite(model), endless)
    with pytest.raises(DataError, match="`eval_data` is an infinite tf.data.Dataset"):
        export_all(model, tmp_path / "out", variants="float32", eval_data=endless, benchmark=False)
    assert len(sample_images(endless, num_samples=4)) == 4  # a calibration draw reads a bounded number
    assert len(as_arrays(endless.take(3), name="data")[0]) == 16 + 8


def test_calibration_converts_only_the_images_it_draws():
    x = np.random.default_rng(0).integers(0, 256, (2000, 32, 32, 3), dtype=np.uint8)  # 5.9 MiB, 23 MiB as float32
    tracemalloc.start()
    try:
        sample = sample_images(x, num_samples=50, seed=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2 ** 20, peak
    index = np.sort(np.random.default_rng(3).choice(len(x), size=50, replace=False))
    np.testing.assert_array_equal(sample, x[index].astype("float32"))  # the same draw as before
    x = x[:100].astype("float32")
    drawn = np.sort(np.random.default_rng(3).choice(100, size=50, replace=False))
    x[drawn[4], 1, 2, 0] = np.nan
    with pytest.raises(DataError, match=rf"non-finite value \(nan\) at index \({drawn[4]}, 1, 2, 0\)"):
        sample_images(x, num_samples=50, seed=3)  # the original row is named, not the row of the draw


def test_a_single_variant_name_is_one_variant(tmp_path):
    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=1)
    x, y = tiny_images(16, size=16, classes=3, seed=1)
    table = export_all(model, tmp_path / "out", variants="float32", eval_data=(x, y), benchmark=False)
    assert list(table.exports) == ["float32"] and table.passed
    with pytest.raises(ArgumentTypeError, match="`variants` must be a variant name or a list"):
        export_all(model, tmp_path / "out2", variants=3, eval_data=(x, y), benchmark=False)
