"""Pre-flight: op listing; augmentation layers, random ops and Flex-only ops are named early."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_nested_model
from tfxfer.errors import ExportError
from tfxfer.export import export_saved_model, export_tflite, preflight

from .conftest import TINY_MODEL


class GaussianJitter(keras.layers.Layer):
    """Adds noise on every call, training or not (a random op in the inference graph)."""

    def call(self, x):
        return x + keras.random.normal(keras.ops.shape(x), stddev=0.1)


class Angle(keras.layers.Layer):
    """arctan has no TFLite builtin kernel: it would need Flex (select TF ops)."""

    def call(self, x):
        return keras.ops.arctan(x)


def test_clean_model_lists_its_ops():
    report = preflight(tiny_nested_model(**TINY_MODEL))
    assert report.ok and report.problems() == []
    assert report.ops["CONV_2D"] == 2 and report.ops["SOFTMAX"] == 1
    assert report.to_dict()["ok"] is True


def test_augmentation_layer_is_named(tmp_path):
    model = tiny_nested_model(**TINY_MODEL, extra=keras.layers.RandomFlip("horizontal", name="flip_aug"))
    report = preflight(model, raise_on_error=False)
    assert not report.ok
    assert report.augmentation_layers == ["flip_aug (RandomFlip)"]
    with pytest.raises(ExportError, match=r"augmentation layers.*flip_aug \(RandomFlip\).*tf\.data"):
        export_tflite(model, tmp_path / "m.tflite", variant="float32")
    assert not (tmp_path / "m.tflite").exists()


def test_augmentation_inside_a_nested_model_is_named():
    augment = keras.Sequential([keras.layers.RandomRotation(0.1, name="rot"),
                                keras.layers.RandomContrast(0.2, name="contrast")], name="augment")
    model = tiny_nested_model(**TINY_MODEL, extra=augment)
    report = preflight(model, raise_on_error=False)
    assert report.augmentation_layers == ["augment/rot (RandomRotation)", "augment/contrast (RandomContrast)"]


def test_random_op_is_named(tmp_path):
    model = tiny_nested_model(**TINY_MODEL, extra=GaussianJitter(name="jitter"))
    report = preflight(model, raise_on_error=False)
    assert report.random_ops and all("Random" in op for op in report.random_ops)
    assert report.random_op_layers == ["jitter"]
    with pytest.raises(ExportError, match=r"random ops .* in layers: jitter"):
        export_tflite(model, tmp_path / "m.tflite", variant="float32")


def test_flex_op_is_named():
    model = tiny_nested_model(**TINY_MODEL, extra=Angle(name="angle"))
    report = preflight(model, raise_on_error=False)
    assert report.unsupported_ops == ["Atan"] and report.flex_ops == ["Atan"]
    assert report.unsupported_layers == ["angle"]
    with pytest.raises(ExportError, match=r"not in TFLite builtins \['Atan'\] in layers: angle; Flex"):
        preflight(model)


def test_saved_model_export_rejects_augmentation(tmp_path):
    model = tiny_nested_model(**TINY_MODEL, extra=keras.layers.RandomZoom(0.1, name="zoom"))
    with pytest.raises(ExportError, match=r"zoom \(RandomZoom\)"):
        export_saved_model(model, tmp_path, name="m")
    assert not (tmp_path / "m").exists()


def test_dropout_is_not_flagged():
    """Dropout is inactive at inference: not an augmentation layer, no random op in the graph."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.GaussianNoise(0.1)(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    assert preflight(model).ok
    out = model.predict(np.ones((2, 8, 8, 3)), verbose=0)
    np.testing.assert_allclose(out[0], out[1])
