"""TFLite variants: conversion, input/output types, calibration, sidecar, errors, atomic writes."""

import json
import os

import numpy as np
import pytest

from tfxfer.errors import ArgumentError, DataError, ExportError, ModelError
from tfxfer.export import convert_tflite, export_tflite, read_sidecar
from tfxfer.export.flatbuffer import detect_variant, tensor_types, tflite_ops
from tfxfer.export.litert import load_interpreter, predict_tflite

from .conftest import CLASS_NAMES


def test_a_built_transfer_model_converts_and_runs(tmp_path):
    """build_model's structure (Preprocess + nested MobileNetV2) as float32 and full int8."""
    from tfxfer.models import build_model

    model = build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    for variant in ("float32", "int8"):
        result = export_tflite(model, tmp_path / f"m_{variant}.tflite", variant=variant,
                               representative_data=x if variant == "int8" else None,
                               class_names=["a", "b", "c"], run_preflight=False)
        assert os.path.getsize(result.path) == result.size_bytes > 0
        assert detect_variant(result.path) == variant
        assert result.ops["CONV_2D"] > 30 and result.ops["DEPTHWISE_CONV_2D"] == 17
        assert not [op for op in result.ops if op.startswith("Flex") or op == "CUSTOM"]
        out = predict_tflite(result.path, x)
        assert out.shape == (8, 3) and np.all(np.isfinite(out))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=0.02)


def test_each_variant_converts_and_runs(trained_model, exported, color_data):
    _, (xt, _) = color_data
    assert {v: detect_variant(e.path) for v, e in exported.items()} == {v: v for v in exported}
    reference = trained_model.predict(xt, verbose=0)
    sizes = {v: e.size_bytes for v, e in exported.items()}
    assert sizes["float16"] < sizes["float32"] and sizes["dynamic"] < sizes["float32"]
    assert "FLOAT16" in tensor_types(exported["float16"].path)
    for variant, export in exported.items():
        out = predict_tflite(export.path, xt)
        tol = {"float32": 1e-5, "float16": 1e-2, "dynamic": 2e-2, "int8": 0.1}[variant]
        assert np.abs(out - reference).max() < tol, variant
        assert (out.argmax(1) == reference.argmax(1)).mean() >= 0.98, variant


def test_one_export_traces_each_graph_once_and_writes_the_same_files(trained_model, exported, color_data, tmp_path,
                                                                      monkeypatch):
    """`convert_variants` shares one trace among its pre-flight and the float variants, and its float32 file
    is the pre-flight's trial conversion; only int8's pinned-input graph is traced again. The files are
    byte for byte those of four separate `export_tflite` calls."""
    from tfxfer.export import _trace, converter, convert_variants, tflite

    (x, _), _ = color_data
    traced, converted = [], []
    trace, base_converter = _trace.inference_function, converter.base_converter

    def counted(fn, variant):
        converted.append(variant)
        return base_converter(fn, variant)

    monkeypatch.setattr(_trace, "inference_function", lambda model, **kw: traced.append(kw) or trace(model, **kw))
    for module in (converter, tflite):  # the pre-flight imports it when it runs; tflite when it is imported
        monkeypatch.setattr(module, "base_converter", counted)
    shared = convert_variants(trained_model, tmp_path, variants=list(exported), representative_data=x,
                              class_names=CLASS_NAMES, name="tiny")
    assert traced == [{"batch_size": None, "exact_uint8_input": False}, {"batch_size": None, "exact_uint8_input": True}]
    assert converted == ["float32", "float16", "dynamic", "int8"]  # the first is the pre-flight's
    for variant, alone in exported.items():
        with open(shared[variant].path, "rb") as a, open(alone.path, "rb") as b:
            assert a.read() == b.read(), variant


def test_int8_uint8_input_is_the_raw_pixel_bytes(exported):
    export = exported["int8"]
    assert export.input_dtype == "uint8" and export.output_dtype == "float32"
    assert tuple(export.input_quantization) == (1.0, 0)
    details = load_interpreter(export.path).get_input_details()[0]
    assert details["dtype"] == np.uint8 and tuple(details["quantization"]) == (1.0, 0)


@pytest.mark.parametrize("channels,backbone", [(1, "efficientnet_lite0"), (3, "efficientnet_lite0"),
                                               (1, "mobilenet_v2"), (3, "mobilenet_v2")])
def test_int8_input_is_exact_for_grayscale_and_rgb_models_on_narrow_calibration_data(tmp_path, channels, backbone):
    """Calibration pixels in 30..200 (like ELPV) used to give scale 0.78-1.5 with zero point 83-85
    (a grayscale model's concatenation and the folded (x - 127) / 128): now exactly (1, 0)."""
    from tfxfer.models import build_model

    model = build_model(backbone, 2, input_size=(32, 32), channels=channels, weights=None)
    x = np.random.default_rng(0).uniform(30, 200, (16, 32, 32, channels)).astype("float32")
    result = export_tflite(model, tmp_path / "m.tflite", variant="int8", representative_data=x,
                           run_preflight=False)
    details = load_interpreter(result.path).get_input_details()[0]
    assert details["dtype"] == np.uint8 and tuple(details["quantization"]) == (1.0, 0), details["quantization"]
    float_file = export_tflite(model, tmp_path / "f.tflite", variant="float32", run_preflight=False)
    pixels = np.round(x[:4])
    np.testing.assert_allclose(predict_tflite(float_file.path, pixels), model.predict(pixels, verbose=0), atol=1e-5)


@pytest.mark.parametrize("input_type,output_type", [("int8", "int8"), ("float32", "uint8"), ("uint8", "uint8")])
def test_int8_input_and_output_types(trained_model, color_data, tmp_path, input_type, output_type):
    (x, _), (xt, _) = color_data
    result = export_tflite(trained_model, tmp_path / "m.tflite", variant="int8", representative_data=x,
                           num_calibration=64, input_type=input_type, output_type=output_type,
                           run_preflight=False)
    interpreter = load_interpreter(result.path)
    assert interpreter.get_input_details()[0]["dtype"] == np.dtype(input_type)
    assert interpreter.get_output_details()[0]["dtype"] == np.dtype(output_type)
    reference = trained_model.predict(xt[:64], verbose=0)
    out = predict_tflite(result.path, xt[:64])
    assert (out.argmax(1) == reference.argmax(1)).mean() >= 0.95


def _activation_scales(path):
    interpreter = load_interpreter(path)
    return {d["name"]: d["quantization"][0] for d in interpreter.get_tensor_details()
            if d["dtype"] == np.int8 and d["quantization"][0] > 0 and len(d["shape"]) == 4}


def test_int8_calibration_uses_the_representative_set(trained_model, color_data, tmp_path):
    (x, _), _ = color_data
    full = export_tflite(trained_model, tmp_path / "full.tflite", variant="int8", representative_data=x,
                         num_calibration=50, run_preflight=False)
    dark = export_tflite(trained_model, tmp_path / "dark.tflite", variant="int8",
                         representative_data=x * 0.25, num_calibration=50, run_preflight=False)
    assert full.calibration_samples == 50 and dark.calibration_samples == 50
    assert read_sidecar(full.path)["calibration_samples"] == 50
    # The input stays the raw pixel bytes; the activation scales follow the data.
    assert tuple(full.input_quantization) == tuple(dark.input_quantization) == (1.0, 0)
    a, b = _activation_scales(full.path), _activation_scales(dark.path)
    shared = sorted(set(a) & set(b))
    assert shared
    assert sum(not np.isclose(a[k], b[k], rtol=0.05) for k in shared) >= len(shared) // 2


def test_sidecar_carries_labels_and_input_details(exported):
    export = exported["int8"]
    with open(export.sidecar_path) as f:
        sidecar = json.load(f)
    assert sidecar["class_names"] == CLASS_NAMES
    assert sidecar["variant"] == "int8"
    assert sidecar["input"]["height"] == 32 and sidecar["input"]["channels"] == 3
    assert sidecar["input"]["dtype"] == "uint8" and sidecar["input"]["pixel_range"] == [0, 255]
    assert sidecar["output"]["kind"] == "probabilities"
    import hashlib

    with open(export.path, "rb") as f:
        assert sidecar["sha256"] == hashlib.sha256(f.read()).hexdigest()


def test_grayscale_model_exports(tmp_path):
    import keras

    from tfxfer.preprocess import Preprocess

    inputs = keras.Input((16, 16, 1))
    x = Preprocess("unit")(inputs)
    x = keras.layers.Conv2D(4, 3)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    images = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 1)).astype("float32")
    result = export_tflite(model, tmp_path / "g.tflite", variant="int8", representative_data=images)
    np.testing.assert_array_equal(predict_tflite(result.path, images).argmax(1),
                                  model.predict(images, verbose=0).argmax(1))


def test_dataset_as_representative_data(trained_model, color_data, tmp_path):
    import tensorflow as tf

    (x, y), _ = color_data
    ds = tf.data.Dataset.from_tensor_slices((x[:40], y[:40])).batch(8)
    result = export_tflite(trained_model, tmp_path / "m.tflite", variant="int8", representative_data=ds,
                           num_calibration=20, run_preflight=False)
    assert result.calibration_samples == 20


def test_fixed_batch_size(trained_model, color_data, tmp_path):
    _, (xt, _) = color_data
    content = convert_tflite(trained_model, variant="float32", batch_size=1)
    interpreter = load_interpreter(content)
    assert list(interpreter.get_input_details()[0]["shape_signature"]) == [1, 32, 32, 3]
    out = predict_tflite(content, xt[:5])
    np.testing.assert_allclose(out, trained_model.predict(xt[:5], verbose=0), atol=1e-5)
    assert sorted(tflite_ops(content)) == sorted(tflite_ops(convert_tflite(trained_model)))


ARGUMENT_ERRORS = [
    ({"variant": "int4"}, "variant"),
    ({"variant": "float16", "input_type": "uint8"}, "input_type"),
    ({"variant": "dynamic", "output_type": "int8"}, "output_type"),
    ({"variant": "int8", "input_type": "int16", "representative_data": np.zeros((1, 32, 32, 3))}, "input_type"),
    ({"variant": "int8"}, "representative_data"),
    ({"variant": "float32", "representative_data": np.zeros((1, 32, 32, 3))}, "only used by variant='int8'"),
    ({"variant": "float32", "class_names": ["a", "b"]}, "class_names"),
    ({"variant": "float32", "class_names": ["a", "a", "b", "c"]}, "duplicates"),
    ({"variant": "int8", "representative_data": np.zeros((4, 32, 32, 3)), "num_calibration": 0}, "num_calibration"),
    ({"variant": "float32", "batch_size": 0}, "batch_size"),
]


def test_argument_errors(trained_model, tmp_path):
    for kwargs, match in ARGUMENT_ERRORS:
        with pytest.raises(ArgumentError, match=match):
            export_tflite(trained_model, tmp_path / "m.tflite", run_preflight=False, **kwargs)
        assert not (tmp_path / "m.tflite").exists()


def test_representative_data_of_the_wrong_size(trained_model, tmp_path):
    with pytest.raises(DataError, match="resize them"):
        export_tflite(trained_model, tmp_path / "m.tflite", variant="int8",
                      representative_data=np.zeros((4, 16, 16, 3)), run_preflight=False)


def test_model_errors(tmp_path):
    import keras

    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    two = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(a + b)))
    with pytest.raises(ModelError, match="one image input"):
        export_tflite(two, tmp_path / "m.tflite", variant="float32")
    from tfxfer.errors import ArgumentTypeError

    with pytest.raises(ArgumentTypeError, match="keras.Model"):
        export_tflite("model.keras", tmp_path / "m.tflite", variant="float32")


def test_failed_conversion_leaves_no_partial_file(trained_model, color_data, tmp_path, monkeypatch):
    """Calibration dies half-way: the earlier file at the path survives, nothing else is left."""
    import tfxfer.export.tflite as tflite_module

    (x, _), _ = color_data
    path = tmp_path / "model.tflite"
    path.write_bytes(b"previous good file")
    calls = {"n": 0}
    original = tflite_module.sample_images

    def exploding_samples(*args, **kwargs):
        samples = original(*args, **kwargs)

        class Rows:
            shape = samples.shape

            def __len__(self):
                return len(samples)

            def __getitem__(self, index):
                calls["n"] += 1
                if calls["n"] > 5:
                    raise OSError("disk went away mid-calibration")
                return samples[index]

        return Rows()

    monkeypatch.setattr(tflite_module, "sample_images", exploding_samples)
    with pytest.raises(ExportError, match="mid-calibration"):
        export_tflite(trained_model, path, variant="int8", representative_data=x, run_preflight=False)
    assert calls["n"] > 5
    assert path.read_bytes() == b"previous good file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]


def test_interrupted_write_leaves_no_partial_file(trained_model, tmp_path, monkeypatch):
    """The sidecar write fails after the .tflite bytes went to the temporary file: nothing is published."""
    import tfxfer.utils.atomic as atomic

    def broken(path, obj, **kwargs):
        raise OSError("no space left on device")

    monkeypatch.setattr(atomic, "atomic_write_json", broken)
    with pytest.raises(OSError, match="no space"):
        export_tflite(trained_model, tmp_path / "m.tflite", variant="float32", run_preflight=False)
    assert list(tmp_path.iterdir()) == []
