"""Selective quantization: full int8 unless the gate fails, then the harmful layers stay in float."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_nested_model
from tests.quantize.helpers import train
from tfxfer.errors import ArgumentError, ArgumentTypeError, GateError, UnknownNameError
from tfxfer.preprocess import Preprocess
from tfxfer.quantize import rank_layers, selective_int8


def _op_dtypes(path):
    """``{layer scope in the tensor name: output dtype}`` of every op in a .tflite file."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    return [(op["op_name"], tensors[op["outputs"][0]]["name"], tensors[op["outputs"][0]]["dtype"].__name__)
            for op in interpreter._get_ops_details()]


def _wide_range_model():
    """One channel of ``spread`` is ~1000x the others, so per-tensor int8 wipes out the useful ones."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 256)
    x = rng.uniform(0, 255, (256, 8, 8, 3))
    x[..., 1] = np.where(y[:, None, None] == 1, 140.0, 115.0) + rng.normal(0, 5, (256, 8, 8))
    x = np.clip(x, 0, 255).astype("float32")
    inputs = keras.Input((8, 8, 3), name="image")
    h = Preprocess("unit", name="preprocess")(inputs)
    h = keras.layers.Conv2D(4, 1, name="spread")(h)
    h = keras.layers.Conv2D(4, 1, activation="relu", name="mix")(h)
    out = keras.layers.Dense(2, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D(name="pool")(h))
    model = keras.Model(inputs, out, name="wide_range")
    k = np.zeros((1, 1, 3, 4), "float32")
    k[0, 0, 0, 0], k[0, 0, 1, 1], k[0, 0, 1, 2], k[0, 0, 2, 3] = 2000.0, 1.0, -1.0, 0.001
    model.get_layer("spread").set_weights([k, np.array([0, -0.5, 0.5, 0], "float32")])
    k2 = np.zeros((1, 1, 4, 4), "float32")
    k2[0, 0, 1, 0], k2[0, 0, 2, 1], k2[0, 0, 0, 2], k2[0, 0, 3, 3] = 20, 20, 1e-4, 1
    model.get_layer("mix").set_weights([k2, np.zeros(4, "float32")])
    model.get_layer("head").set_weights([np.array([[-1, 1], [1, -1], [0, 0], [0, 0]], "float32"), np.zeros(2, "float32")])
    assert (model.predict(x, verbose=0).argmax(1) == y).mean() == 1.0
    return model, x, y


def test_failing_full_int8_is_fixed_by_keeping_the_worst_layers_in_float(tmp_path):
    model, x, y = _wide_range_model()
    result = selective_int8(model, tmp_path / "m.tflite", representative_data=x, eval_data=(x, y))
    assert result.attempts[0]["float_nodes"] == 0 and not result.attempts[0]["passed"]
    assert result.attempts[0]["accuracy_drop"] > 20  # full int8 really fails
    assert result.gate.passed and result.attempts[-1]["passed"]
    assert result.ranking[0]["layer"] == "spread"  # the debugger statistics point at the culprit
    assert result.ranking[0]["nsr"] > 100 * result.ranking[1]["nsr"]
    assert "spread" in result.float_layers and "mix" in result.float_layers  # plus its consumer
    dtypes = {name: dtype for _, name, dtype in _op_dtypes(result.export.path)}
    assert any("spread" in n and d == "float32" for n, d in dtypes.items())
    assert result.cost["full_int8_bytes"] > 0 and result.cost["size_bytes"] > 0


def test_named_layers_stay_float_and_the_file_passes_the_gate(tmp_path):
    keras.utils.set_random_seed(5)
    data, held_out = tiny_images(256, size=16, signal="bars", seed=0), tiny_images(128, size=16, signal="bars", seed=1)
    model = train(tiny_nested_model(), data, epochs=5)
    result = selective_int8(model, tmp_path / "named.tflite", representative_data=data[0], eval_data=held_out,
                            float_layers=["top_conv", "stem_conv"], benchmark=True)
    assert result.float_layers == ["backbone/stem_conv", "backbone/top_conv"]
    assert result.gate.passed
    ops = _op_dtypes(result.export.path)
    float_convs = [name for op, name, dtype in ops if op == "CONV_2D" and dtype == "float32"]
    int8_convs = [name for op, name, dtype in ops if op == "CONV_2D" and dtype == "int8"]
    assert len(float_convs) == 2 and all("stem_conv" in n or "top_conv" in n for n in float_convs)
    assert int8_convs and not any("top_conv" in n or "stem_conv" in n.split(";")[-1] for n in int8_convs)
    assert result.cost["latency_ms"] > 0 and result.cost["full_int8_latency_ms"] > 0
    assert result.cost["size_bytes"] > result.cost["full_int8_bytes"]  # float kernels cost bytes


def test_full_int8_that_passes_is_kept(tmp_path):
    keras.utils.set_random_seed(5)
    data, held_out = tiny_images(256, size=16, signal="bars", seed=0), tiny_images(128, size=16, signal="bars", seed=1)
    model = train(tiny_nested_model(), data, epochs=5)
    result = selective_int8(model, tmp_path / "full.tflite", representative_data=data[0], eval_data=held_out)
    assert result.float_nodes == [] and result.gate.passed
    assert result.export.path.endswith("full.tflite") and result.cost["size_ratio"] == 1.0


def test_rank_layers_and_errors(tmp_path):
    model, x, y = _wide_range_model()
    ranking, debugger = rank_layers(model, x, num_samples=16)
    assert ranking[0]["layer"] == "spread" and {"tensor", "op", "nsr", "rmse_over_scale"} <= set(ranking[0])
    assert debugger.calibrated_model
    with pytest.raises(UnknownNameError, match="sprad"):
        selective_int8(model, tmp_path / "a.tflite", representative_data=x, eval_data=(x, y), float_layers=["sprad"])
    with pytest.raises(ArgumentTypeError, match="float_layers"):
        selective_int8(model, tmp_path / "a.tflite", representative_data=x, eval_data=(x, y), float_layers="spread")
    with pytest.raises(ArgumentError, match="max_float_nodes"):
        selective_int8(model, tmp_path / "a.tflite", representative_data=x, eval_data=(x, y), max_float_nodes=0)
    with pytest.raises(GateError, match="still fails"):
        selective_int8(model, tmp_path / "a.tflite", representative_data=x, eval_data=(x, y),
                       thresholds={"int8": {"max_abs_error": 1e-12}}, max_float_nodes=1)


def test_selective_file_takes_the_raw_pixel_bytes_exactly(tmp_path):
    """The selective file's input is uint8 with scale 1 / zero point 0 (not float -> QUANTIZE), so a device
    feeds the pixel bytes as they are; the file runs in LiteRT and gives what predict_tflite gives."""
    from ai_edge_litert.interpreter import Interpreter

    from tfxfer.export.litert import predict_tflite
    from tfxfer.export.metadata import read_sidecar
    from tfxfer.export.flatbuffer import METADATA_NAME, read_metadata

    model, x, y = _wide_range_model()
    result = selective_int8(model, tmp_path / "m.tflite", representative_data=x, eval_data=(x, y),
                            calibration_record={"source": "unit", "split": "train"}, class_names=["a", "b"])
    assert result.float_nodes and result.gate.passed  # really selective: some tensors are float
    assert result.input == {"dtype": "uint8", "scale": 1.0, "zero_point": 0, "exact_raw_pixels": True}
    interpreter = Interpreter(model_path=result.export.path)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.uint8 and tuple(detail["quantization"]) == (1.0, 0)
    first_op = interpreter._get_ops_details()[0]["op_name"]
    assert first_op != "QUANTIZE" or interpreter.get_tensor_details()[detail["index"]]["dtype"] == np.uint8
    pixels = np.round(x[:4]).astype(np.uint8)
    interpreter.resize_tensor_input(detail["index"], pixels.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], pixels)
    interpreter.invoke()
    raw = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(raw, predict_tflite(result.export.path, pixels.astype("float32")), atol=1e-6)
    side = read_sidecar(result.export.path)
    assert side["calibration"]["source"] == "unit" and side["calibration"]["samples"] == 200  # num_calibration of 256
    assert side["class_names"] == ["a", "b"]
    assert b'"class_names": ["a", "b"]' in read_metadata(result.export.path)[METADATA_NAME]  # travels in the file
    assert all("top1_agreement" in a for a in result.attempts)


def test_float_input_on_request_and_the_agreement_target_keeps_searching(tmp_path):
    model, x, y = _wide_range_model()
    floating = selective_int8(model, tmp_path / "f.tflite", representative_data=x, eval_data=(x, y),
                              input_type="float32", float_layers=["spread", "mix"])
    assert floating.input["dtype"] == "float32" and not floating.input["exact_raw_pixels"]
    # a gate loose enough for full int8 (drop limit 100 points): it is kept, unless the agreement target asks more
    loose = {"int8": {"max_accuracy_drop": 100.0}}
    kept = selective_int8(model, tmp_path / "k.tflite", representative_data=x, eval_data=(x, y), thresholds=loose)
    assert len(kept.attempts) == 1 and kept.float_nodes == [] and kept.attempts[0]["top1_agreement"] < 0.9
    searched = selective_int8(model, tmp_path / "s.tflite", representative_data=x, eval_data=(x, y), thresholds=loose,
                              min_top1_agreement=0.99)
    assert len(searched.attempts) >= 2 and searched.float_nodes
    assert searched.gate["int8"].top1_agreement >= 0.99 and searched.input["exact_raw_pixels"]
    with pytest.raises(ArgumentError, match="input_type"):
        selective_int8(model, tmp_path / "a.tflite", representative_data=x, eval_data=(x, y), input_type="int16")
    with pytest.raises(ArgumentError, match="min_top1_agreement"):
        selective_int8(model, tmp_path / "a.tflite", representative_data=x, eval_data=(x, y), min_top1_agreement=98)


def test_the_recipe_remedy_searches_on_validation_and_gates_on_all_held_out(tmp_path):
    from tfxfer.recipes.export_stages import selective_remedy

    model, x, y = _wide_range_model()
    export, gated, summary = selective_remedy(
        model, tmp_path / "m_int8_selective.tflite", calibration=x[:128], selection_data=(x[128:192], y[128:192]),
        eval_data=(x[128:], y[128:]), class_names=["a", "b"], thresholds=None, num_calibration=128,
        calibration_record={"source": "unit", "split": "train"})
    assert gated.variant == "int8_selective" and gated.examples == 128 and gated.agreement_target == 0.98
    assert summary["search_examples"] == 64 and summary["input"]["exact_raw_pixels"]
    assert summary["search_attempts"][0]["float_nodes"] == 0 and not summary["search_attempts"][0]["passed"]
    assert gated.passed and "spread" in summary["float_layers"] and summary["made"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m_int8_selective.json", "m_int8_selective.tflite"]


def test_the_recipe_remedy_makes_no_file_when_full_int8_meets_the_target_on_validation(tmp_path):
    """The search selects on the validation split; where full int8 already reaches the agreement target there
    (the chain ran the remedy because it missed on all held-out images), the search would stop at full int8
    and its "selective" file would be the post-training file again: none is made, and the summary says why."""
    from tfxfer.recipes.export_stages import selective_remedy

    model, x, y = _wide_range_model()
    k = model.get_layer("spread").get_weights()
    k[0][0, 0, 0, 0] = 2.0  # no outlier channel: per-tensor int8 keeps every useful one
    model.get_layer("spread").set_weights(k)
    assert (model.predict(x, verbose=0).argmax(1) == y).mean() == 1.0
    export, gated, summary = selective_remedy(
        model, tmp_path / "m_int8_selective.tflite", calibration=x[:128], selection_data=(x[128:192], y[128:192]),
        eval_data=(x[128:], y[128:]), class_names=["a", "b"], thresholds=None, num_calibration=128)
    assert export is None and gated is None and summary["made"] is False
    assert summary["float_nodes"] == 0 and summary["search_attempts"][0]["top1_agreement"] >= 0.98
    assert "no selective file made: full int8 already agrees" in summary["reason"]
    assert list(tmp_path.iterdir()) == []  # neither the copy of full int8 nor its sidecar stays
