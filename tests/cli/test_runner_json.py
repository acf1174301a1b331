"""One `--json` schema for `tfxfer predict` and the device runner (export/litert_runner.py): the same
document keys and per-image result items on the same .tflite file, and error documents from both."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfxfer import cli
from tfxfer.cli import json_output

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(ROOT, "export", "litert_runner.py")
COMMON = {"schema", "command", "ok", "exit_code", "error"}


def _runner(*args):
    return subprocess.run([sys.executable, RUNNER, *map(str, args)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    import keras
    import tensorflow as tf
    from PIL import Image

    folder = tmp_path_factory.mktemp("runner_json")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers.Constant(
        [[4.0, 0.0, -4.0], [0.0, 4.0, 0.0], [-4.0, 0.0, 4.0]]))(x)
    path = folder / "tiny.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs)).convert())
    image = folder / "red.png"
    Image.fromarray(np.tile(np.array([250, 10, 10], np.uint8), (8, 8, 1))).save(image)
    (folder / "notes.png").write_text("not an image")
    return path, image, folder / "notes.png"


def test_predict_and_runner_print_the_same_document(tiny_tflite, capsys):
    model, image, _ = tiny_tflite
    assert cli.main(["predict", str(model), str(image), "--json", "-q"]) == 0
    ours = json.loads(capsys.readouterr().out)
    proc = _runner(model, image, "--json", "--repeat", "2")
    assert proc.returncode == 0, proc.stderr
    device = json.loads(proc.stdout)
    assert ours["schema"] == device["schema"] == json_output.SCHEMA
    assert (ours["command"], device["command"]) == ("predict", "litert_runner")
    assert COMMON <= set(ours) and COMMON <= set(device) and ours["ok"] and device["ok"]
    assert set(ours) - COMMON == {"model", "results"} and set(device) - COMMON == {"model", "results", "threads"}
    (a,), (b,) = ours["results"], device["results"]
    assert a["image"] == b["image"] == str(image) and set(b) - set(a) == {"inference_ms"}
    assert [(t["index"], t["label"]) for t in a["top"]] == [(t["index"], t["label"]) for t in b["top"][:3]]
    assert a["top"][0]["index"] == 0  # red image -> class 0
    np.testing.assert_allclose([t["probability"] for t in a["top"]], [t["probability"] for t in b["top"][:3]],
                               atol=1e-4)


def test_runner_error_documents(tiny_tflite, tmp_path):
    model, image, notes = tiny_tflite
    proc = _runner(model, image, notes, "--json", "--repeat", "1")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["exit_code"] == 1 and not doc["ok"]
    assert doc["error"] == {"type": "InputError", "message": "1 of 2 inputs could not be read", "exit_code": 1}
    assert "top" in doc["results"][0] and set(doc["results"][1]["error"]) == {"type", "message"}
    for args, code, kind in (((tmp_path / "missing.tflite", image), 2, "UsageError"), ((), 2, "UsageError"),
                             ((model, image, "--labels", tmp_path / "none.txt"), 1, "RunnerError")):
        proc = _runner(*args, "--json")
        doc = json.loads(proc.stdout)
        assert proc.returncode == code and doc["exit_code"] == code and doc["error"]["type"] == kind, proc
        assert doc["error"]["message"] in proc.stderr and "Traceback" not in proc.stderr
