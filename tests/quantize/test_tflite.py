"""tf_keras -> TFLite adapter: the files feed tfxfer.export's gate and benchmark like any export."""

import os

import numpy as np
import pytest

from tests.factories import tiny_nested_model
from tests.quantize.helpers import recalibrate_batchnorm
from tfxfer.errors import ArgumentError, DataError, ModelError
from tfxfer.export import read_sidecar, verify
from tfxfer.quantize import convert_tf_keras, export_tf_keras_tflite, to_tf_keras


@pytest.fixture(scope="module")
def bridged():
    model = tiny_nested_model()
    x = np.random.default_rng(0).uniform(0, 255, (32, 16, 16, 3)).astype("float32")
    recalibrate_batchnorm(model, x)
    return to_tf_keras(model, check_data=x), x


def test_float32_file_matches_the_keras3_model(bridged, tmp_path):
    b, x = bridged
    y = b.source.predict(x, verbose=0).argmax(1)
    export = export_tf_keras_tflite(b.model, tmp_path / "m.tflite", variant="float32", class_names=["a", "b"])
    assert export.variant == "float32" and os.path.exists(export.path)
    assert read_sidecar(export.path)["class_names"] == ["a", "b"]
    report = verify(b.source, export, (x, y))  # default float32 gate: max abs error <= 1e-4
    assert report.passed and report["float32"].max_abs_error < 1e-5


@pytest.mark.parametrize("variant", ["float16", "dynamic", "int8"])
def test_other_variants_convert(bridged, variant):
    b, x = bridged
    content = convert_tf_keras(b.model, variant=variant, representative_data=x if variant == "int8" else None)
    assert content[4:8] == b"TFL3"


def test_errors(bridged, tmp_path):
    import tf_keras

    b, x = bridged
    with pytest.raises(ArgumentError, match="variant"):
        convert_tf_keras(b.model, variant="int4")
    with pytest.raises(ArgumentError, match="representative_data"):
        convert_tf_keras(b.model, variant="int8")
    with pytest.raises(ArgumentError, match="input_type"):
        convert_tf_keras(b.model, variant="int8", representative_data=x, input_type="int16")
    with pytest.raises(DataError, match="input size"):
        convert_tf_keras(b.model, variant="int8", representative_data=x[:, :8, :8])
    flat = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2)])
    with pytest.raises(ModelError, match="images"):
        convert_tf_keras(flat, variant="float32")
