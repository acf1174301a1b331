"""Error paths of the helpers every exporter shares: data, sidecars, file inspection, model checks."""

import numpy as np
import pytest

from tfxfer.errors import ArgumentTypeError, DataError, ModelError
from tfxfer.export import preflight, read_sidecar
from tfxfer.export.data import as_arrays, sample_images, sparse_labels
from tfxfer.export.flatbuffer import tflite_ops
from tfxfer.export.litert import load_interpreter


def test_data_errors():
    with pytest.raises(DataError, match="3 images but 2 labels"):
        as_arrays((np.zeros((3, 4, 4, 3)), np.zeros(2)))
    with pytest.raises(DataError, match=r"shape \(n, height, width, channels\)"):
        as_arrays(np.zeros((3, 4, 4)))
    with pytest.raises(DataError, match="is empty"):
        as_arrays(np.zeros((0, 4, 4, 3)))
    with pytest.raises(ArgumentTypeError, match="numpy array of images"):
        as_arrays([1, 2, 3])
    with pytest.raises(DataError, match="integer class ids"):
        sparse_labels(np.array([0.5, 1.0]), num_classes=2)
    with pytest.raises(DataError, match="class ids or one-hot"):
        sparse_labels(np.zeros((2, 3, 4)), num_classes=2)
    assert sparse_labels(np.eye(3)[[2, 0]], num_classes=3).tolist() == [2, 0]


def test_dataset_errors():
    import tensorflow as tf

    with pytest.raises(DataError, match="yielded no images"):
        as_arrays(tf.data.Dataset.from_tensor_slices(np.zeros((0, 4, 4, 3), "float32")))
    with pytest.raises(ArgumentTypeError, match="not of dicts"):
        as_arrays(tf.data.Dataset.from_tensor_slices({"image": np.zeros((2, 4, 4, 3), "float32")}))
    x, y = as_arrays(tf.data.Dataset.from_tensor_slices((np.zeros((5, 4, 4, 3), "float32"), np.arange(5))))
    assert x.shape == (5, 4, 4, 3) and y.tolist() == [0, 1, 2, 3, 4]


def test_calibration_subset_is_seeded():
    images = np.arange(50, dtype="float32").reshape(50, 1, 1, 1) * np.ones((1, 2, 2, 3), "float32")
    a = sample_images(images, num_samples=10, seed=3)
    b = sample_images(images, num_samples=10, seed=3)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a[:, 0, 0, 0])) == 10


def test_sidecar_errors(tmp_path):
    assert read_sidecar(tmp_path / "none.tflite") is None
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        read_sidecar(tmp_path / "bad.tflite")
    (tmp_path / "other.json").write_text('{"format": "something-else"}')
    with pytest.raises(DataError, match="not a tfxfer-tflite-sidecar"):
        read_sidecar(tmp_path / "other.tflite")


def test_file_inspection_type_errors():
    with pytest.raises(ArgumentTypeError, match="bytes or the path"):
        tflite_ops(12)
    with pytest.raises(ArgumentTypeError, match=".tflite path or its bytes"):
        load_interpreter(3.5)


def test_model_shape_errors():
    import keras

    inputs = keras.Input((None, None, 3))
    flexible = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(ModelError, match="fixed"):
        preflight(flexible)
    square = keras.Input((8, 8, 3))
    dense_map = keras.Model(square, keras.layers.Dense(2)(square))
    with pytest.raises(ModelError, match=r"needs \(batch, classes\)"):
        preflight(dense_map)
