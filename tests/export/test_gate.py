"""The verification gate: passes a healthy export, fails a broken one with the per-class report."""

import json
import os

import numpy as np
import pytest

from tfxfer.errors import ArgumentError, ArgumentTypeError, GateError, UnknownNameError
from tfxfer.export import Thresholds, export_all, export_tflite, verify
from tfxfer.metrics import expected_calibration_error, looks_like_probabilities, per_class_accuracy

from .conftest import CLASS_NAMES


@pytest.fixture(scope="module")
def broken_int8(trained_model, tmp_path_factory):
    """int8 calibrated on constant gray images: its activation ranges are wrong for real data."""
    path = tmp_path_factory.mktemp("broken") / "broken_int8.tflite"
    return export_tflite(trained_model, path, variant="int8", class_names=CLASS_NAMES,
                         representative_data=np.full((32, 32, 32, 3), 128.0, "float32"))


def test_healthy_exports_pass(trained_model, exported, color_data):
    _, (xt, yt) = color_data
    report = verify(trained_model, list(exported.values()), (xt, yt))
    assert report.passed and report.failed == []
    assert list(report.results) == ["float32", "float16", "dynamic", "int8"]
    for name, result in report.results.items():
        assert result.examples == len(yt)
        assert result.top1_agreement >= 0.99
        assert result.keras_accuracy > 0.95
        assert abs(result.accuracy_drop) <= 1.0
        assert 0 <= result.ece_keras < 0.2 and 0 <= result.ece_tflite < 0.2
        assert [c["name"] for c in result.per_class] == CLASS_NAMES
        assert sum(c["support"] for c in result.per_class) == len(yt)
    assert report["float32"].max_abs_error < 1e-5
    assert report["float32"].max_abs_error < report["int8"].max_abs_error
    assert report["int8"].mean_abs_error <= report["int8"].max_abs_error
    json.dumps(report.to_dict())  # serializable


def test_broken_int8_fails_with_per_class_report(trained_model, broken_int8, color_data):
    _, (xt, yt) = color_data
    with pytest.raises(GateError, match=r"int8 .*FAIL") as info:
        verify(trained_model, broken_int8, (xt, yt))
    report = info.value.report
    result = report["int8"]
    assert not report.passed and report.failed == ["int8"]
    assert result.accuracy_drop > 10.0
    assert any("accuracy drop" in f for f in result.failures)
    message = str(info.value)
    assert "per class" in message
    for name in CLASS_NAMES:
        assert name in message
    assert min(c["delta_points"] for c in result.per_class) < -50
    assert result.ece_tflite > result.ece_keras


def test_raise_on_failure_false_returns_the_report(trained_model, broken_int8, exported, color_data):
    _, (xt, yt) = color_data
    report = verify(trained_model, {"good": exported["int8"].path, "bad": broken_int8.path}, (xt, yt),
                    raise_on_failure=False, thresholds={"good": Thresholds(max_accuracy_drop=1.0),
                                                        "bad": {"max_accuracy_drop": 1.0}})
    assert report.failed == ["bad"]
    assert "bad per class" in report.format() and "good per class" not in report.format()
    assert "good per class" in report.format(per_class="all")


def test_thresholds_are_configurable(trained_model, exported, color_data):
    _, (xt, yt) = color_data
    strict = {"int8": {"max_abs_error": 1e-6}}
    with pytest.raises(GateError, match="max abs error"):
        verify(trained_model, exported["int8"], (xt, yt), thresholds=strict)
    lenient = verify(trained_model, exported["int8"], (xt, yt),
                     thresholds={"int8": Thresholds(max_accuracy_drop=5.0, max_class_accuracy_drop=5.0,
                                                     max_ece_increase=0.05)})
    assert lenient["int8"].thresholds["max_class_accuracy_drop"] == 5.0


def test_variant_is_detected_without_a_sidecar(trained_model, exported, color_data, tmp_path):
    _, (xt, yt) = color_data
    for variant in ("float16", "dynamic", "int8"):
        bare = tmp_path / f"bare_{variant}.tflite"
        with open(exported[variant].path, "rb") as f:
            bare.write_bytes(f.read())
        report = verify(trained_model, str(bare), (xt[:50], yt[:50]))
        assert list(report.results) == [variant]
        assert [c["name"] for c in report[variant].per_class] == ["0", "1", "2", "3"]


def test_one_hot_labels_and_datasets(trained_model, exported, color_data):
    import tensorflow as tf

    _, (xt, yt) = color_data
    one_hot = np.eye(4)[yt]
    a = verify(trained_model, exported["float32"], (xt, one_hot))
    b = verify(trained_model, exported["float32"], tf.data.Dataset.from_tensor_slices((xt, yt)).batch(16))
    assert a["float32"].keras_accuracy == b["float32"].keras_accuracy


def test_gate_argument_errors(trained_model, exported, color_data):
    _, (xt, yt) = color_data
    with pytest.raises(ArgumentError, match="must carry labels"):
        verify(trained_model, exported["float32"], xt)
    with pytest.raises(UnknownNameError, match="max_acuracy_drop"):
        verify(trained_model, exported["float32"], (xt, yt), thresholds={"int8": {"max_acuracy_drop": 1}})
    with pytest.raises(ArgumentTypeError, match="thresholds"):
        verify(trained_model, exported["float32"], (xt, yt), thresholds=[1])
    with pytest.raises(ArgumentTypeError, match="exports"):
        verify(trained_model, 42, (xt, yt))
    with pytest.raises(ArgumentError, match="class_names"):
        verify(trained_model, exported["float32"], (xt, yt), class_names=["a", "b"])
    with pytest.raises(ArgumentError, match="batch_size"):
        verify(trained_model, exported["float32"], (xt, yt), batch_size=0)
    from tfxfer.errors import DataError

    with pytest.raises(DataError, match="labels must be in"):
        verify(trained_model, exported["float32"], (xt, yt + 4))


def test_export_all_removes_failing_files_and_raises(trained_model, color_data, tmp_path):
    _, (xt, yt) = color_data
    constant = np.full((16, 32, 32, 3), 128.0, "float32")
    with pytest.raises(GateError, match="keep_failed=True") as info:
        export_all(trained_model, tmp_path, variants=("float32", "int8"), representative_data=constant,
                   eval_data=(xt, yt), class_names=CLASS_NAMES, benchmark=False)
    assert info.value.report.failed == ["int8"]
    names = sorted(os.listdir(tmp_path))
    assert "model_int8.tflite" not in names and "model_int8.json" not in names
    assert "model_float32.tflite" in names and "model_export_report.json" in names


def test_export_all_keep_failed(trained_model, color_data, tmp_path):
    _, (xt, yt) = color_data
    constant = np.full((16, 32, 32, 3), 128.0, "float32")
    table = export_all(trained_model, tmp_path, variants=("float32", "int8"), representative_data=constant,
                       eval_data=(xt, yt), class_names=CLASS_NAMES, benchmark=False, keep_failed=True)
    assert not table.passed
    assert [r["gate"] for r in table.rows] == ["pass", "FAIL"]
    with open(tmp_path / "model_int8.json") as f:
        assert json.load(f)["gate"]["passed"] is False


def test_ece_and_per_class_accuracy():
    confident_right = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(confident_right, np.array([0, 1])) == 0.0
    confident_wrong = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert expected_calibration_error(confident_wrong, np.array([0, 1])) == 1.0
    accuracy, support = per_class_accuracy(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 4)
    assert support.tolist() == [1, 1, 2, 0]
    assert accuracy[:3].tolist() == [1.0, 1.0, 0.5] and np.isnan(accuracy[3])
    assert looks_like_probabilities(confident_right)
    assert not looks_like_probabilities(np.array([[3.0, -1.0]]))


def test_accuracy_drop_is_judged_with_a_paired_interval():
    """The demo's case, 7 of 262 images lost (2.67 points), is too few to decide (interval 0.6 to 4.7;
    about 358 images would); 12 lost is a failure the interval confirms; identical outputs on 524
    images pass outright, on 50 they do not decide."""
    from tfxfer.export.gate import DEFAULT_THRESHOLDS, compare_outputs
    from tfxfer.export.gate_statistics import examples_needed, paired_drop_interval

    def run(n, lost, gained=0):
        labels = np.zeros(n, int)
        reference = np.tile([[0.9, 0.1]], (n, 1)).astype("float32")
        reference[-30:] = [0.1, 0.9]  # Keras wrong on the last 30
        outputs = reference.copy()
        outputs[:lost] = [0.2, 0.8]
        outputs[n - 30: n - 30 + gained] = [0.8, 0.2]
        return compare_outputs("int8", None, reference, outputs, labels, ["a", "b"], DEFAULT_THRESHOLDS["int8"])

    demo = run(262, 7)
    assert demo.accuracy_drop == pytest.approx(2.6718, abs=1e-3) and demo.drop_verdict == "undecided"
    assert not demo.passed and demo.examples_needed == 358
    fail = run(262, 12)
    assert fail.drop_verdict == "fail" and not fail.passed
    assert fail.drop_interval[0] > 1.0 and "whole 95 % interval is above" in fail.failures[0]
    unsure = run(262, 4, gained=1)
    assert unsure.drop_verdict == "undecided" and unsure.examples_needed > 262
    assert not unsure.passed and "too few to decide; about" in unsure.failures[0]
    within = run(524, 3, gained=2)
    assert within.drop_verdict == "undecided" and within.passed  # 0.19 points: the documented limit decides
    same = run(524, 0)
    assert same.drop_verdict == "pass" and same.passed and same.drop_interval[1] < 1.0
    tiny = run(50, 0)
    assert tiny.drop_verdict == "undecided" and tiny.examples_needed == 196
    k = np.ones(100, bool)
    drop, low, high = paired_drop_interval(k, k)
    assert drop == 0.0 and low < 0 < high and examples_needed(k, k, 1.0) == 196
