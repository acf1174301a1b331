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
