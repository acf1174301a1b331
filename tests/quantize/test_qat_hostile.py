"""`train_qat` on hostile inputs: eval_data is checked before any QAT work, and a file that fails its
gate is never left at ``path`` looking valid (not written, or kept with ``"passed": false``)."""

import json
import os

import pytest

from tests.factories import tiny_images, tiny_nested_model
from tfxfer.errors import ArgumentError, DataError, GateError
from tfxfer.quantize import train_qat

FAIL = {"int8": {"max_abs_error": 1e-9}}  # no int8 file meets it


@pytest.fixture(scope="module")
def task():
    model = tiny_nested_model(body="plain", size=16, classes=4, top=8, dropout=None, seed=0)
    data = tiny_images(32, size=16, classes=4, signal="dominant_channel", seed=0)
    held_out = tiny_images(32, size=16, classes=4, signal="dominant_channel", seed=1)
    return model, data, held_out


def test_a_failed_file_is_not_written_and_an_earlier_file_stays(task, tmp_path):
    model, data, held_out = task
    path = tmp_path / "q.tflite"
    path.write_bytes(b"the earlier, gated file")
    (tmp_path / "q.json").write_text('{"gate": {"passed": true}}')
    with pytest.raises(GateError, match="was not written") as info:
        train_qat(model, data, eval_data=held_out, path=path, epochs=1, thresholds=FAIL)
    assert not info.value.report.passed
    assert path.read_bytes() == b"the earlier, gated file"
    assert json.loads((tmp_path / "q.json").read_text()) == {"gate": {"passed": True}}
    assert sorted(os.listdir(tmp_path)) == ["q.json", "q.tflite"]  # no staging folder left behind


def test_a_kept_failed_file_says_so_in_its_sidecar(task, tmp_path):
    model, data, held_out = task
    result = train_qat(model, data, eval_data=held_out, path=tmp_path / "kept.tflite", epochs=1, thresholds=FAIL,
                       raise_on_failure=False)
    assert not result.gate.passed and result.export.path == str(tmp_path / "kept.tflite")
    assert result.export.sidecar_path == str(tmp_path / "kept.json")
    assert [r.path for r in result.gate.results.values()] == [result.export.path]
    gate = json.loads((tmp_path / "kept.json").read_text())["gate"]
    assert gate["passed"] is False and gate["failures"]
    assert sorted(os.listdir(tmp_path)) == ["kept.json", "kept.tflite"]


def test_a_passing_file_carries_its_verdict(task, tmp_path):
    model, data, held_out = task
    result = train_qat(model, data, eval_data=held_out, path=tmp_path / "sub" / "ok.tflite", epochs=1,
                       thresholds={"int8": {"max_accuracy_drop": 100.0}})
    assert result.gate.passed and os.path.isfile(result.export.path)
    assert json.loads((tmp_path / "sub" / "ok.json").read_text())["gate"]["passed"] is True


@pytest.mark.parametrize("bad,error,match", [
    (lambda x, y: (x[:, :8, :8], y), DataError, r"`eval_data` images have shape \(8, 8, 3\)"),
    (lambda x, y: (x[..., :1], y), DataError, r"`eval_data` images have shape \(16, 16, 1\)"),
    (lambda x, y: (x, y + 4), DataError, r"`eval_data` labels must be in \[0, 4\)"),
    (lambda x, y: (x, None), ArgumentError, "eval_data"),
])
def test_eval_data_is_checked_before_any_qat_work(task, tmp_path, monkeypatch, bad, error, match):
    import tfxfer.quantize.qat_train as qat_train

    def no_work(*args, **kwargs):
        raise AssertionError("QAT started before eval_data was checked")

    monkeypatch.setattr(qat_train, "quantize_model", no_work)
    model, data, held_out = task
    with pytest.raises(error, match=match):
        train_qat(model, data, eval_data=bad(*held_out), path=tmp_path / "q.tflite", epochs=1)
    with pytest.raises(ArgumentError, match="class_names"):
        train_qat(model, data, eval_data=held_out, path=tmp_path / "q.tflite", class_names=["one"])
    assert os.listdir(tmp_path) == []
