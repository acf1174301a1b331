"""`selective_int8` and `export_compressed` never leave a file that failed its gate looking deliverable:
it is not written (an earlier file at ``path`` stays), or kept with ``"passed": false`` in its sidecar,
which the device runner refuses."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import GateError
from tfxfer.quantize import selective_int8
from tfxfer.quantize.compressed_export import export_compressed

FAIL = {"int8": {"max_abs_error": 0.0}, "float32": {"min_top1_agreement": 1.01}}  # nothing meets these
RUNNER = os.path.join(os.path.dirname(__file__), "..", "..", "export", "litert_runner.py")


@pytest.fixture(scope="module")
def task():
    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=1)
    return model, tiny_images(32, size=16, classes=3, seed=1)


def _earlier(folder, stem):
    (folder / f"{stem}.tflite").write_bytes(b"the earlier, gated file")
    (folder / f"{stem}.json").write_text('{"gate": {"passed": true}}')


def _runner_refuses(path, image_dir, pixels):
    from PIL import Image

    Image.fromarray(np.round(pixels).astype("uint8")).save(image_dir / "img.png")
    run = subprocess.run([sys.executable, RUNNER, str(path), str(image_dir / "img.png"), "--repeat", "1"],
                         capture_output=True, text=True, timeout=120)
    return run.returncode != 0 and "failed its verification gate" in run.stderr


def test_a_failed_selective_search_writes_nothing(task, tmp_path):
    model, (x, y) = task
    _earlier(tmp_path, "sel")
    with pytest.raises(GateError, match="still fails.*was not written"):
        selective_int8(model, tmp_path / "sel.tflite", representative_data=x, eval_data=(x, y), max_float_nodes=1,
                       num_calibration=16, num_debug=8, thresholds=FAIL)
    assert sorted(os.listdir(tmp_path)) == ["sel.json", "sel.tflite"]  # no full-int8 file, no staging folder
    assert (tmp_path / "sel.tflite").read_bytes() == b"the earlier, gated file"


def test_a_kept_failed_selective_file_is_marked_and_refused(task, tmp_path):
    model, (x, y) = task
    result = selective_int8(model, tmp_path / "sel.tflite", representative_data=x, eval_data=(x, y),
                            max_float_nodes=1, num_calibration=16, num_debug=8, thresholds=FAIL,
                            raise_on_failure=False)
    assert not result.gate.passed and result.export.path == str(tmp_path / "sel.tflite")
    assert [r.path for r in result.gate.results.values()] == [result.export.path]
    assert sorted(os.listdir(tmp_path)) == ["sel.json", "sel.tflite", "sel_full_int8.json", "sel_full_int8.tflite"]
    for stem in ("sel", "sel_full_int8"):
        assert json.loads((tmp_path / f"{stem}.json").read_text())["gate"]["passed"] is False
    assert result.cost["full_int8_path"] == str(tmp_path / "sel_full_int8.tflite")
    assert _runner_refuses(tmp_path / "sel.tflite", tmp_path, x[0])


def test_a_passing_selective_file_carries_its_verdict(task, tmp_path):
    model, (x, y) = task
    result = selective_int8(model, tmp_path / "ok.tflite", representative_data=x, eval_data=(x, y),
                            num_calibration=16, thresholds={"int8": {"max_accuracy_drop": 100.0}})
    assert result.gate.passed and result.cost["full_int8_path"] == result.export.path
    assert sorted(os.listdir(tmp_path)) == ["ok.json", "ok.tflite"]
    assert json.loads((tmp_path / "ok.json").read_text())["gate"]["passed"] is True


def test_a_failed_compressed_export_writes_nothing_or_is_marked(task, tmp_path):
    model, (x, y) = task
    _earlier(tmp_path, "c")
    with pytest.raises(GateError, match="was not written"):
        export_compressed(model, tmp_path / "c.tflite", variant="float32", eval_data=(x, y), thresholds=FAIL)
    assert sorted(os.listdir(tmp_path)) == ["c.json", "c.tflite"]
    assert (tmp_path / "c.tflite").read_bytes() == b"the earlier, gated file"
    kept = export_compressed(model, tmp_path / "k.tflite", variant="float32", eval_data=(x, y), thresholds=FAIL,
                             raise_on_failure=False)
    assert not kept.gate.passed and kept.export.path == str(tmp_path / "k.tflite")
    assert json.loads((tmp_path / "k.json").read_text())["gate"]["passed"] is False
    assert _runner_refuses(tmp_path / "k.tflite", tmp_path, x[0])
    ok = export_compressed(model, tmp_path / "ok.tflite", variant="float32", eval_data=(x, y))
    assert ok.gate.passed and json.loads((tmp_path / "ok.json").read_text())["gate"]["passed"] is True
