"""``tfxfer benchmark MODEL DATA`` on a tiny saved model and image folders, through the CLI; and
``tfxfer export --format onnx``."""

import json
import os

import numpy as np
import pytest

from tfxfer.cli import main
from tests.factories import tiny_images, tiny_nested_model

CLASS_NAMES = ["red", "green", "blue", "gray"]


def _folder(root, x, y):
    from PIL import Image

    for i in range(len(y)):
        folder = root / CLASS_NAMES[int(y[i])]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i].astype(np.uint8)).save(folder / f"{i}.png")
    return str(root)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A trained colour classifier saved as .keras with labels.json, a held-out and a training folder."""
    import keras

    keras.utils.set_random_seed(7)
    x, y = tiny_images(256, classes=4, signal="dominant_channel", seed=0)
    xt, yt = tiny_images(64, classes=4, signal="dominant_channel", seed=1)
    model = tiny_nested_model(body="plain", size=32, classes=4, top=32, dropout=0.2, extra_at="input",
                              backbone_input_name=None)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("bench")
    (root / "model").mkdir()
    path = root / "model" / "model.keras"
    model.save(path)
    (root / "model" / "labels.json").write_text(json.dumps({"class_names": CLASS_NAMES}))
    return {"model": str(path), "test": _folder(root / "test", xt, yt), "train": _folder(root / "train", x[:48], y[:48]),
            "root": root}


def test_every_format_in_one_table_with_json(setup, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["benchmark", setup["model"], setup["test"], "--calibration", setup["train"], "--num-calibration", "32",
                 "--out", str(out), "--runs", "3", "--max-accuracy-drop", "100", "--json"])
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert code == 0 and doc["ok"] and doc["command"] == "benchmark" and doc["exit_code"] == 0, captured.err
    rows = {r["format"]: r for r in doc["formats"]}
    assert list(rows) == ["keras", "float32", "float16", "dynamic", "int8", "onnx", "saved_model"]
    assert rows["keras"]["floor"] == "ref" and rows["keras"]["latency_ms"] > 0
    for name in ("float32", "onnx", "saved_model"):  # float32 graphs: the Keras outputs, to 1e-4
        assert rows[name]["top1_agreement"] == 1.0 and rows[name]["max_abs_error"] <= 1e-4, name
    for name, row in rows.items():
        if name == "keras":
            continue
        assert row["floor"] == "pass" and row["size_bytes"] > 0 and row["latency_ms"] > 0, name
        assert row["thresholds"]["max_accuracy_drop"] == 100.0, name
        assert (row["latency_nt_ms"] is None) == (name == "saved_model"), name  # TF's own thread pool
        assert row["accuracy_keras"] == rows["float32"]["accuracy_keras"]  # one gate, the same images
    assert rows["int8"]["size_bytes"] < rows["float32"]["size_bytes"]
    assert doc["examples"] == 64
    assert (out / "model.onnx").exists() and json.loads((out / "model.json").read_text())["gate"]["passed"]
    assert json.loads((out / "model_int8.json").read_text())["calibration"]["source"] == setup["train"]
    saved = json.loads((out / "benchmark.json").read_text())
    assert [r["format"] for r in saved["formats"]] == list(rows) and saved["machine"]["cpus"] >= 1


def test_a_format_below_its_floor_exits_3_and_prints_the_table(setup, tmp_path, capsys):
    code = main(["benchmark", setup["model"], setup["test"], "--formats", "float16,onnx", "--out", str(tmp_path),
                 "--runs", "0", "--min-agreement", "1.0", "--max-accuracy-drop", "0"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split()[:3] == ["format", "runtime", "size"]
    assert [line.split()[0] for line in lines[1:4]] == ["keras", "float16", "onnx"]
    table = {line.split()[0]: line for line in lines[1:4]}
    assert table["onnx"].endswith("pass")  # same outputs as Keras
    if code == 3:  # float16 weights can flip an argmax on these 64 images: then it must say so
        assert table["float16"].endswith("FAIL") and "Below the floor: float16" in captured.err
    else:
        assert code == 0 and table["float16"].endswith("pass")
    worse = main(["benchmark", setup["model"], setup["test"], "--formats", "onnx", "--out", str(tmp_path / "b"),
                  "--runs", "0", "--min-agreement", "1.0", "--json"])
    assert worse == 0
    capsys.readouterr()


def test_floor_failure_in_json_is_an_error_object(setup, tmp_path, capsys, monkeypatch):
    import tfxfer.export.formats as bench
    from tfxfer.export.gate import Thresholds

    real = bench.floors
    monkeypatch.setattr(bench, "floors", lambda formats, **kw: {**real(formats, **kw),
                                                                "onnx": Thresholds(max_abs_error=-1.0)})
    code = main(["benchmark", setup["model"], setup["test"], "--formats", "onnx", "--out", str(tmp_path),
                 "--runs", "0", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 3 and doc["exit_code"] == 3 and not doc["ok"]
    assert doc["error"]["type"] == "GateError" and "onnx" in doc["error"]["message"]
    assert doc["formats"][-1]["floor"] == "FAIL" and doc["formats"][-1]["failures"]
    assert os.path.exists(tmp_path / "model.onnx")  # a benchmark keeps what it measured


@pytest.mark.parametrize("argv, message", [
    (["--formats", "onxx"], "Unknown format 'onxx'. Did you mean: 'onnx'?"),
    (["--formats", ","], "formats"),
    (["--min-agreement", "1.5"], "--min-agreement"),
    (["--runs", "-1"], "--runs"),
])
def test_bad_arguments_exit_2_before_tensorflow(setup, argv, message, capsys):
    code = main(["benchmark", setup["model"], setup["test"], *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_text_and_tflite_models_are_refused(setup, tmp_path, capsys):
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"x")
    assert main(["benchmark", str(tflite), setup["test"]]) == 2
    assert "must be a .keras model" in capsys.readouterr().err


def test_export_format_onnx(setup, tmp_path, capsys):
    out = tmp_path / "e"
    code = main(["export", setup["model"], setup["test"], "--format", "onnx", "--out", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"]
    assert [r["variant"] for r in doc["variants"]] == ["onnx"] and doc["variants"][0]["top1_agreement"] == 1.0
    assert sorted(os.listdir(out)) == ["model.json", "model.onnx"]
    assert main(["export", setup["model"], setup["test"], "--format", "onxx"]) == 2
    assert "Did you mean: 'onnx'" in capsys.readouterr().err


def test_export_tflite_and_onnx_in_one_table(setup, tmp_path, capsys):
    out = tmp_path / "both"
    code = main(["export", setup["model"], setup["test"], "--format", "tflite,onnx", "--variants", "float32",
                 "--no-benchmark", "--out", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["variant"] for r in doc["variants"]] == ["float32", "onnx"]
    assert doc["variants"][0]["accuracy_keras"] == doc["variants"][1]["accuracy_keras"]  # the same gate images
    assert {"model_float32.tflite", "model.onnx", "model.json", "model_float32.json"} <= set(os.listdir(out))
