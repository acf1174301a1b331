"""ONNX export through the TFLite files' gate: a trained tiny classifier -> .onnx -> onnxruntime."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.export.conftest import CLASS_NAMES

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")


@pytest.fixture(scope="module")
def onnx_file(trained_model, color_data, tmp_path_factory):
    from tfxfer.export import export_onnx

    _, test = color_data
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return export_onnx(trained_model, path, eval_data=test, class_names=CLASS_NAMES)


def test_export_passes_the_gate_and_agrees_with_keras(onnx_file, trained_model, color_data):
    from tfxfer.export import predict_onnx

    _, (xt, yt) = color_data
    gate = onnx_file.gate
    assert gate.passed and gate.examples == len(yt)
    assert gate.top1_agreement == 1.0 and gate.max_abs_error <= 1e-4
    assert gate.keras_accuracy > 0.95 and gate.accuracy_drop == 0.0
    assert [c["name"] for c in gate.per_class] == CLASS_NAMES
    keras_out = trained_model.predict(xt, verbose=0)
    np.testing.assert_allclose(predict_onnx(onnx_file.path, xt, batch_size=17), keras_out, atol=1e-5)
    assert (onnx_file.input_name, onnx_file.output_name) == ("image", "probabilities")


def test_sidecar_and_embedded_labels(onnx_file):
    import onnx

    side = json.loads(open(onnx_file.sidecar_path, encoding="utf-8").read())
    assert onnx_file.sidecar_path.endswith("tiny.json")
    assert side["format"] == "tfxfer-onnx-sidecar" and side["class_names"] == CLASS_NAMES
    assert side["input"]["shape"] == [-1, 32, 32, 3] and side["input"]["pixel_range"] == [0, 255]
    assert side["gate"]["passed"] is True and side["gate"]["top1_agreement"] == 1.0
    import hashlib

    assert side["sha256"] == hashlib.sha256(open(onnx_file.path, "rb").read()).hexdigest()
    meta = {p.key: p.value for p in onnx.load(onnx_file.path).metadata_props}
    assert json.loads(meta["tfxfer"])["class_names"] == CLASS_NAMES


def test_fresh_process_without_tensorflow_gives_the_same_outputs(onnx_file, color_data, tmp_path):
    _, (xt, _) = color_data
    np.save(tmp_path / "x.npy", xt[:8])
    code = ("import sys, numpy as np, onnxruntime as ort\n"
            "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
            "out = s.run(['probabilities'], {'image': np.load(sys.argv[2])})[0]\n"
            "np.save(sys.argv[3], out)\n"
            "assert 'tensorflow' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code, onnx_file.path, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                   check=True, timeout=120)
    from tfxfer.export import predict_onnx

    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), predict_onnx(onnx_file.path, xt[:8]))


def test_same_gate_and_same_numbers_as_the_float32_tflite_file(onnx_file, trained_model, exported, color_data):
    from tfxfer.export import verify, verify_onnx
    from tfxfer.export.gate import VariantResult

    _, test = color_data
    tflite = verify(trained_model, exported["float32"].path, test)["float32"]
    ours = verify_onnx(trained_model, onnx_file.path, test)["onnx"]
    assert type(ours) is VariantResult
    assert ours.keras_accuracy == tflite.keras_accuracy and ours.examples == tflite.examples
    assert ours.thresholds == tflite.thresholds  # float32's limits: agreement >= 0.99, max abs error <= 1e-4
    assert [c["name"] for c in ours.per_class] == CLASS_NAMES  # read from the sidecar


def test_corrupted_and_truncated_files_are_model_errors(onnx_file, trained_model, color_data, tmp_path):
    from tfxfer.errors import ModelError
    from tfxfer.export import predict_onnx, verify_onnx

    _, test = color_data
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not an onnx model" * 20)
    with pytest.raises(ModelError, match="garbage.onnx.*not a loadable ONNX model"):
        verify_onnx(trained_model, garbage, test)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(open(onnx_file.path, "rb").read()[: os.path.getsize(onnx_file.path) // 2])
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        predict_onnx(truncated, test[0][:2])


def test_file_from_another_model_is_refused_or_fails_the_gate(onnx_file, trained_model, color_data, tmp_path):
    import keras

    from tfxfer.errors import GateError, ModelError
    from tfxfer.export import export_onnx, verify_onnx
    from tests.export.conftest import TINY_MODEL
    from tests.factories import tiny_nested_model

    _, (xt, yt) = color_data
    other = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(4, activation="softmax")])
    small = export_onnx(other, tmp_path / "small.onnx", eval_data=None)
    assert small.gate is None and json.load(open(small.sidecar_path))["gate"] is None
    with pytest.raises(ModelError, match=r"takes images of shape \(16, 16, 3\).*\(32, 32, 3\)"):
        verify_onnx(trained_model, small.path, (xt, yt))
    untrained = tiny_nested_model(**TINY_MODEL)  # same shapes, other weights
    with pytest.raises(GateError) as info:
        verify_onnx(untrained, onnx_file.path, (xt, yt))
    assert not info.value.report["onnx"].passed
    assert any("top-1 agreement" in f for f in info.value.report["onnx"].failures)


def test_a_failing_file_is_not_written_unless_kept(trained_model, color_data, tmp_path):
    from tfxfer.errors import GateError
    from tfxfer.export import export_onnx

    _, test = color_data
    impossible = {"onnx": {"min_top1_agreement": 1.5}}
    path = tmp_path / "m.onnx"
    with pytest.raises(GateError, match="was not written") as info:
        export_onnx(trained_model, path, eval_data=test, thresholds=impossible)
    assert info.value.report["onnx"].top1_agreement == 1.0
    assert not path.exists() and not (tmp_path / "m.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary left behind
    kept = export_onnx(trained_model, path, eval_data=test, thresholds=impossible, keep_failed=True)
    assert path.exists() and not kept.gate.passed
    assert json.load(open(kept.sidecar_path))["gate"]["passed"] is False


def test_bad_arguments_name_the_argument(trained_model, color_data, tmp_path):
    from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError
    from tfxfer.export import export_onnx

    (x, _), test = color_data
    with pytest.raises(ArgumentError, match="path"):
        export_onnx(trained_model, tmp_path / "m.tflite", eval_data=test)
    with pytest.raises(ArgumentError, match="eval_data"):
        export_onnx(trained_model, tmp_path / "m.onnx", eval_data=x)
    with pytest.raises(UnknownNameError, match="min_agreement"):
        export_onnx(trained_model, tmp_path / "m.onnx", eval_data=test, thresholds={"onnx": {"min_agreement": 1}})
    with pytest.raises(ArgumentError, match="class_names"):
        export_onnx(trained_model, tmp_path / "m.onnx", eval_data=test, class_names=["a", "b"])
    with pytest.raises(ArgumentError, match="opset"):
        export_onnx(trained_model, tmp_path / "m.onnx", eval_data=test, opset=3)
    with pytest.raises(ArgumentTypeError, match="path"):
        export_onnx(trained_model, 5, eval_data=test)
    assert list(tmp_path.iterdir()) == []


def test_benchmark_onnx_times_one_and_two_threads(onnx_file):
    from tfxfer.export import benchmark_onnx

    result = benchmark_onnx(onnx_file.path, threads=(1, 2), runs=5, warmup=1)
    assert result["size_bytes"] == onnx_file.size_bytes
    assert set(result["latency"]) == {"1", "2"}
    assert all(0 < v["median_ms"] <= v["p90_ms"] for v in result["latency"].values())


def test_multilabel_models_are_gated_per_label_and_regression_refused(tmp_path):
    from tests.factories import tiny_model, tiny_spec
    from tfxfer.errors import ModelError
    from tfxfer.export import export_onnx

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    multi_hot = np.zeros((16, 3), int)
    multi_hot[:, 0], multi_hot[::2, 2] = 1, 1
    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, task="multilabel", seed=0)
    result = export_onnx(model, tmp_path / "multi.onnx", eval_data=(x, multi_hot))
    assert result.gate.passed and result.gate.task == "multilabel"
    side = json.loads((tmp_path / "multi.json").read_text(encoding="utf-8"))
    assert side["output"]["kind"] == "label_probabilities" and side["output"]["task"] == "multilabel"
    assert result.output_name == side["output"]["name"] == "label_probabilities"  # named for what it holds
    regression = tiny_model(1, backbone=tiny_spec("convs"), size=16, task="regression", seed=0)
    with pytest.raises(ModelError, match="regression"):
        export_onnx(regression, tmp_path / "reg.onnx", eval_data=(x, rng.normal(size=16)))
    assert not (tmp_path / "reg.onnx").exists()


def test_a_linear_classifier_output_is_named_logits_not_probabilities(tmp_path):
    import keras

    from tests.factories import tiny_model, tiny_spec
    from tfxfer.export import export_onnx

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    base = tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=0)
    logits = keras.Model(base.inputs, keras.layers.Dense(3, name="scores_out")(base.layers[-2].output))
    result = export_onnx(logits, tmp_path / "logits.onnx", eval_data=(x, np.arange(16) % 3))
    side = json.loads((tmp_path / "logits.json").read_text(encoding="utf-8"))
    assert result.output_name == side["output"]["name"] == "logits" and side["output"]["kind"] == "logits"
