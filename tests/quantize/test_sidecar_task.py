"""The sidecars of QAT and selective files say what the output is, as `export_tflite`'s do: a sigmoid
model's file gives label probabilities, a linear classifier's gives logits (the device runner reads
``output.kind`` to show them)."""

import json

import keras
import numpy as np

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.quantize import selective_int8, to_tf_keras, train_qat
from tfxfer.quantize.post_training import export_tf_keras_tflite

LOOSE = {"int8": {"max_accuracy_drop": 100.0}}


def _output(export):
    entry = json.loads(open(export.sidecar_path).read())["output"]
    return entry["kind"], entry["task"]


def test_a_selective_file_of_a_sigmoid_model_gives_label_probabilities(tmp_path):
    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, task="multilabel", seed=1)
    x, _ = tiny_images(32, size=16, classes=3, seed=1)
    labels = (np.random.default_rng(0).random((32, 3)) > 0.5).astype(int)
    result = selective_int8(model, tmp_path / "sel.tflite", representative_data=x, eval_data=(x, labels),
                            float_layers=["head"], num_calibration=16, thresholds=LOOSE)
    assert _output(result.export) == ("label_probabilities", "multilabel")
    bridged = to_tf_keras(model).model
    assert _output(export_tf_keras_tflite(bridged, tmp_path / "b.tflite", variant="float32")) == (
        "label_probabilities", "multilabel")


def test_a_qat_file_of_a_logits_model_gives_logits(tmp_path):
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255.0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling2D()(h)))
    x, _ = tiny_images(32, size=16, classes=3, seed=1)
    y = np.arange(32) % 3
    result = train_qat(model, (x, y), eval_data=(x, y), path=tmp_path / "qat.tflite", epochs=1, num_calibration=16,
                       thresholds=LOOSE)
    assert _output(result.export) == ("logits", "logits")
