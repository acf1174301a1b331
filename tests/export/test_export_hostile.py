"""`export_all` and its parts under hostile input: reruns into the same folder, bad data found after
conversion, NaN pixels, a folder that is a file, models whose output the argmax gate cannot judge.

The product's rule: the files in the folder are what the report and sidecars describe; bad input is a
typed error naming the argument, raised before any file is touched. Tiny untrained models at 16 px:
the float32 gate compares a file with its own Keras model, so no training is needed.
"""

import hashlib
import json
import os

import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_nested_model, tiny_spec
from tfxfer.errors import ArgumentError, DataError, GateError, ModelError

SIZE = 16


def _model(seed=0, classes=4):
    return tiny_nested_model(body="plain", size=SIZE, classes=classes, top=8, dropout=None, seed=seed)


def _data(n=32, seed=0):
    return tiny_images(n, size=SIZE, classes=4, signal="dominant_channel", seed=seed)


def _strict_json(path):
    """The file parsed as strict JSON (a NaN or Infinity token is an error)."""
    def refuse(token):
        raise ValueError(f"{path} holds the non-JSON token {token}")

    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_constant=refuse)


def _snapshot(folder):
    """``{file name: sha256}`` of every file in ``folder`` (recursively), to show nothing changed."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """Model A exported to float32 and int8 once; tests copy the folder before running over it."""
    from tfxfer.export import export_all

    out = tmp_path_factory.mktemp("first")
    x, _ = _data(32, seed=0)
    xt, yt = _data(32, seed=1)
    export_all(_model(seed=0), out, variants=("float32", "int8"), representative_data=x, eval_data=(xt, yt),
               benchmark=False, keep_failed=True)
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_rerun_removes_the_files_of_an_earlier_run(first_run, tmp_path):
    from tfxfer.export import export_all

    out = _copy(first_run, tmp_path / "out")
    xt, yt = _data(32, seed=1)
    table = export_all(_model(seed=3), out, variants=("float32",), eval_data=(xt, yt), benchmark=False)
    assert sorted(os.listdir(out)) == ["model_export_report.json", "model_float32.json", "model_float32.tflite"]
    report = _strict_json(out / "model_export_report.json")
    assert list(report["exports"]) == ["float32"] and report["removed"] == []
    sidecar = _strict_json(out / "model_float32.json")
    with open(out / "model_float32.tflite", "rb") as f:
        assert sidecar["sha256"] == hashlib.sha256(f.read()).hexdigest()
    assert sidecar["gate"]["passed"] is True
    assert table.exports["float32"].path == os.path.join(out, "model_float32.tflite")
    assert table.gate["float32"].path == table.exports["float32"].path


@pytest.mark.parametrize("bad, error, match", [
    (lambda xt, yt: {"eval_data": (xt[:, :8, :8], yt)}, DataError, r"`eval_data` images have shape \(8, 8, 3\)"),
    (lambda xt, yt: {"eval_data": (xt[..., :1], yt)}, DataError, r"`eval_data` images have shape \(16, 16, 1\)"),
    (lambda xt, yt: {"eval_data": (xt, yt + 10)}, DataError, r"`eval_data` labels must be in \[0, 4\)"),
    (lambda xt, yt: {"eval_data": (xt, np.eye(4)[yt] + np.eye(4)[(yt + 1) % 4])}, DataError, "not one-hot"),
    (lambda xt, yt: {"eval_data": (xt, yt), "variants": ("float32", "int8"), "representative_data": xt[:, :8]},
     DataError, r"`representative_data` images have shape \(8, 16, 3\)"),
    (lambda xt, yt: {"eval_data": (xt, yt), "thresholds": {"float32": {"max_abs_error": float("nan")}}},
     ArgumentError, r"thresholds\['float32'\]\.max_abs_error"),
])
def test_bad_input_is_refused_before_any_file_changes(first_run, tmp_path, bad, error, match):
    from tfxfer.export import export_all

    out = _copy(first_run, tmp_path / "out")
    before = _snapshot(out)
    xt, yt = _data(32, seed=1)
    kwargs = {"variants": ("float32",), "benchmark": False, **bad(xt, yt)}
    with pytest.raises(error, match=match):
        export_all(_model(seed=9), out, **kwargs)
    assert _snapshot(out) == before


def test_a_failure_after_conversion_leaves_the_folder_as_it_was(first_run, tmp_path, monkeypatch):
    import tfxfer.export.workflow as workflow

    out = _copy(first_run, tmp_path / "out")
    before = _snapshot(out)

    def broken(*args, **kwargs):
        raise RuntimeError("benchmark died")

    monkeypatch.setattr(workflow, "benchmark_variants", broken)
    xt, yt = _data(32, seed=1)
    with pytest.raises(RuntimeError, match="benchmark died"):
        workflow.export_all(_model(seed=3), out, variants=("float32",), eval_data=(xt, yt), benchmark=True)
    assert _snapshot(out) == before  # no new file moved in, no staging folder left behind
    assert sorted(os.listdir(out)) == sorted(os.listdir(first_run))


def test_a_gate_failure_removes_the_file_and_says_so_in_the_report(tmp_path):
    from tfxfer.export import export_all

    xt, yt = _data(32, seed=1)
    with pytest.raises(GateError, match="keep_failed=True"):
        export_all(_model(), tmp_path, variants=("float32",), eval_data=(xt, yt), benchmark=False,
                   thresholds={"float32": {"min_top1_agreement": 1.5}})
    assert sorted(os.listdir(tmp_path)) == ["model_export_report.json"]
    assert _strict_json(tmp_path / "model_export_report.json")["removed"] == ["float32"]


def test_a_nan_pixel_is_a_data_error_naming_its_position(tmp_path):
    from tfxfer.export import export_all

    xt, yt = _data(32, seed=1)
    xt[3, 1, 2, 0] = np.nan
    with pytest.raises(DataError, match=r"`eval_data` images hold a non-finite value \(nan\) at index \(3, 1, 2, 0\)"):
        export_all(_model(), tmp_path / "out", variants=("float32",), eval_data=(xt, yt), benchmark=False)
    assert not os.path.exists(tmp_path / "out")


def test_non_finite_calibration_images_are_refused(tmp_path):
    from tfxfer.export import export_all, export_tflite

    x, _ = _data(16, seed=0)
    x[5, 0, 0, 1] = np.inf
    with pytest.raises(DataError, match=r"`representative_data` images hold a non-finite value \(inf\) at index \(5, 0, 0, 1\)"):
        export_tflite(_model(), tmp_path / "m_int8.tflite", variant="int8", representative_data=x)
    xt, yt = _data(32, seed=1)
    with pytest.raises(DataError, match="`representative_data`"):
        export_all(_model(), tmp_path / "out", variants=("float32", "int8"), representative_data=x,
                   eval_data=(xt, yt), benchmark=False)
    assert os.listdir(tmp_path) == []


def test_reports_and_sidecars_are_valid_json_with_non_finite_measurements(tmp_path):
    from tfxfer.export.gate import VariantResult
    from tfxfer.export.table import write_verdicts

    result = VariantResult("float32", None, False, ["x"], 4, float("nan"), float("inf"), 1.0, 0.5, 0.5, 0.0,
                           None, None, [], {})
    path = tmp_path / "m_float32.json"
    write_verdicts({"float32": str(path)}, {"float32": result})
    gate = _strict_json(path)["gate"]
    assert gate["max_abs_error"] is None and gate["passed"] is False


def test_out_dir_or_base_dir_that_is_a_file_is_an_argument_error(tmp_path):
    from tfxfer.export import export_all, export_saved_model

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    xt, yt = _data(8, seed=1)
    model = _model()
    with pytest.raises(ArgumentError, match="`out_dir` must be a folder"):
        export_all(model, a_file, variants=("float32",), eval_data=(xt, yt), benchmark=False)
    with pytest.raises(ArgumentError, match="`out_dir` must be a folder"):
        export_all(model, a_file / "sub", variants=("float32",), eval_data=(xt, yt), benchmark=False)
    with pytest.raises(ArgumentError, match="`base_dir` must be a folder"):
        export_saved_model(model, a_file, name="tiny")
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "tiny").write_text("x")
    with pytest.raises(ArgumentError, match="`base_dir` holds a file named 'tiny'"):
        export_saved_model(model, tmp_path / "repo", name="tiny")
    assert a_file.read_text() == "x" and os.listdir(tmp_path / "repo") == ["tiny"]


def test_a_regression_model_is_refused_naming_its_task(tmp_path):
    from tfxfer.export import export_all, export_tflite, verify

    model = tiny_model(1, backbone=tiny_spec("convs"), size=SIZE, task="regression", seed=0)
    xt, _ = _data(16, seed=1)
    with pytest.raises(ModelError, match="task='regression'"):
        export_all(model, tmp_path / "out", variants=("float32",), eval_data=(xt, np.zeros(16, int)),
                   benchmark=False)
    assert not os.path.exists(tmp_path / "out")
    exported = export_tflite(model, tmp_path / "r_float32.tflite", variant="float32")  # ungated file: allowed
    assert _strict_json(exported.sidecar_path)["output"]["kind"] == "values"
    with pytest.raises(ModelError, match="task='regression'"):
        verify(model, exported.path, (xt, np.zeros(16, int)))


def test_a_multilabel_model_is_gated_per_label(tmp_path):
    from tfxfer.export import export_all
    from tfxfer.export.gate import DEFAULT_THRESHOLDS, compare_outputs

    model = tiny_model(3, backbone=tiny_spec("convs"), size=SIZE, task="multilabel", seed=0)
    xt, _ = _data(32, seed=1)
    multi_hot = np.zeros((32, 3), int)
    multi_hot[:, 0] = 1
    multi_hot[::2, 2] = 1
    table = export_all(model, tmp_path, variants=("float32",), eval_data=(xt, multi_hot), benchmark=False)
    result = table.gate["float32"]
    assert result.passed and result.task == "multilabel" and result.top1_agreement == 1.0
    keras_on = model.predict(xt, verbose=0) >= 0.5
    assert result.keras_accuracy == pytest.approx(float((keras_on == (multi_hot == 1)).mean()))
    output = _strict_json(tmp_path / "model_float32.json")["output"]
    assert output["kind"] == "label_probabilities"
    with pytest.raises(DataError, match="multi-hot rows of 3 labels"):
        export_all(model, tmp_path, variants=("float32",), eval_data=(xt, np.zeros(32, int)), benchmark=False)

    # a file whose second label flips on one example in four: argmax agreement would not see it
    reference = np.tile(np.array([[0.9, 0.6, 0.2]], "float32"), (8, 1))
    flipped = reference.copy()
    flipped[::4, 1] = 0.4
    labels = np.tile([[1, 1, 0]], (8, 1))
    bad = compare_outputs("float16", None, reference, flipped, labels, ["a", "b", "c"], DEFAULT_THRESHOLDS["float16"],
                          task="multilabel")
    assert not bad.passed and bad.failures == ["label agreement 0.9167 < 0.99"]
    assert bad.per_class[1]["tflite_accuracy"] == 0.75 and bad.confusion is None


def test_softmax_and_logits_sidecars_say_what_the_output_is(tmp_path):
    import keras

    from tfxfer.export import export_tflite

    inputs = keras.Input((SIZE, SIZE, 3))
    logits = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
    kinds = {}
    for label, model in (("softmax", _model()), ("logits", keras.Model(inputs, logits)),
                         ("softmax_layer", keras.Model(inputs, keras.layers.Softmax()(logits)))):
        exported = export_tflite(model, tmp_path / f"{label}.tflite", variant="float32")
        kinds[label] = _strict_json(exported.sidecar_path)["output"]["kind"]
    assert kinds == {"softmax": "probabilities", "logits": "logits", "softmax_layer": "probabilities"}
