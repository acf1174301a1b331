"""Quantization-aware training through the bridge, and the int8 file through the export gate."""

import json

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_nested_model
from tests.quantize.helpers import train
from tfxfer.errors import ArgumentError, GateError, UnknownNameError
from tfxfer.quantize import quantize_model, to_tf_keras, train_qat


def _hard_swish(y):
    """MobileNetV3's hard-sigmoid gate (raw Keras ops) and hard-swish activation."""
    gate = keras.layers.ReLU(6.0, name="hs_relu")(y + 3.0) * (1.0 / 6.0)
    y = keras.layers.Multiply(name="hs_mul")([y, gate])
    return keras.layers.Activation("hard_silu", name="hswish")(y)


@pytest.fixture(scope="module")
def task():
    keras.utils.set_random_seed(7)
    data, held_out = tiny_images(320, size=16, signal="bars", seed=0), tiny_images(200, size=16, signal="bars", seed=1)
    model = train(tiny_nested_model(extra=_hard_swish), data, epochs=6)
    assert (model.predict(held_out[0], verbose=0).argmax(1) == held_out[1]).mean() > 0.9
    return model, data, held_out


def test_plan_annotates_what_tfmot_cannot_quantize(task):
    model, (x, _), _ = task
    qat = quantize_model(model, calibration_data=x)
    treatment = {name: t for name, (t, _) in qat.plan.items()}
    assert treatment["stem_conv"] == treatment["stem_bn"] == treatment["head"] == "int8"
    for name in ("preprocess", "hswish", "hs_mul"):
        assert treatment[name] == "annotate"
    assert "Preprocess" in qat.plan["preprocess"][1]
    assert any(t == "annotate" and "raw Keras op" in reason for t, reason in qat.plan.values())
    assert set(qat.layers_with("annotate")) >= {"preprocess", "hswish"}
    floats = quantize_model(qat.bridged, unsupported="float", float_layers=["top_conv"])
    assert floats.plan["preprocess"][0] == floats.plan["top_conv"][0] == "float"


def test_ranges_start_from_float_statistics(task):
    import tf_keras

    model, (x, _), (xt, _) = task
    qat = quantize_model(model, calibration_data=x[:64])
    assert qat.ranges_initialised > 5
    wrapper = qat.model.get_layer("quant_preprocess")
    ranges = {v.name.split("/")[-1].split(":")[0]: float(v.numpy()) for v in wrapper.weights}
    scaled = x[:64] / 127.5 - 1.0  # Preprocess("tf")
    assert ranges["output_min"] == pytest.approx(min(0.0, scaled.min()), abs=1e-5)
    assert ranges["output_max"] == pytest.approx(scaled.max(), abs=1e-5)
    assert ranges["output_max"] != 6.0  # not TFMOT's initial [-6, 6]
    float_out = model.predict(xt, verbose=0)
    qat_out = qat.model.predict(xt, verbose=0)
    assert (float_out.argmax(1) == qat_out.argmax(1)).mean() >= 0.95
    assert np.abs(float_out - qat_out).max() < 0.2
    assert isinstance(qat.model, tf_keras.Model)


def test_train_qat_int8_file_passes_the_gate(task, tmp_path):
    model, data, held_out = task
    result = train_qat(model, data, eval_data=held_out, path=tmp_path / "qat_int8.tflite", epochs=1,
                       learning_rate=1e-4, class_names=["horizontal", "vertical"])
    assert result.gate.passed
    assert result.export.variant == "int8" and result.export.input_dtype == "uint8"
    assert result.gate["int8"].accuracy_drop <= 1.0
    assert result.gate["int8"].tflite_accuracy > 0.9
    assert "HARD_SWISH" in result.export.ops
    assert not any(op.startswith("Flex") for op in result.export.ops)
    with open(result.export.sidecar_path) as f:
        sidecar = json.load(f)
    assert sidecar["class_names"] == ["horizontal", "vertical"]
    assert "preprocess" in sidecar["annotated_layers"]
    summary = result.summary()
    assert summary["passed"] and summary["bridge_max_abs_diff"] <= 1e-4
    assert len(result.history["loss"]) == 1


def test_gate_failure_raises_with_report(task, tmp_path):
    model, data, held_out = task
    with pytest.raises(GateError, match="max abs error") as info:
        train_qat(model, data, eval_data=held_out, path=tmp_path / "q.tflite", epochs=1,
                  thresholds={"int8": {"max_abs_error": 1e-9}})
    assert info.value.report is not None and not info.value.report.passed


def test_errors(task, tmp_path):
    model, data, held_out = task
    bridged = to_tf_keras(model)
    with pytest.raises(ArgumentError, match="unsupported"):
        quantize_model(bridged, unsupported="skip")
    with pytest.raises(UnknownNameError, match="top_cnv"):
        quantize_model(bridged, float_layers=["top_cnv"])
    with pytest.raises(ArgumentError, match="epochs"):
        train_qat(model, data, eval_data=held_out, path=tmp_path / "q.tflite", epochs=0)
    with pytest.raises(ArgumentError, match="learning_rate"):
        train_qat(model, data, eval_data=held_out, path=tmp_path / "q.tflite", learning_rate=-1.0)
    with pytest.raises(ArgumentError, match="path"):
        train_qat(model, data, eval_data=held_out, path=None)
