"""The `tfxfer` command line: help everywhere, one-line errors with exit codes, predict / evaluate /
export on a tiny model, data set and backbone listings, doctor."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfxfer import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "pipelines", "quick.yaml")
COMMANDS = ["run", "predict", "evaluate", "export", "datasets", "backbones", "rank", "report", "doctor"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(([command] if command else []) + ["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tfxfer") and (command is None or command in out.splitlines()[0])


def _error(capsys, argv, code):
    assert cli.main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfxfer: error: ") and "Traceback" not in captured.err, lines
    return lines[0]


def test_config_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "typo.yaml"
    bad.write_text("data: {source: animal_mnist}\ntrain: {head_epochz: 2}\n")
    line = _error(capsys, ["run", str(bad)], 2)
    assert line == "tfxfer: error: typo.yaml: unknown key `train.head_epochz`. Did you mean `train.head_epochs`?"
    bad.write_text("data: {source: animal_mnist}\ntrain: {epochs: three}\n")
    assert "`train.epochs` must be an integer. Received: 'three'" in _error(capsys, ["run", str(bad)], 2)
    line = _error(capsys, ["run", QUICK, "--set", "model.backbon=resnet50"], 2)
    assert "unknown key `model.backbon`. Did you mean `model.backbone`?" in line
    line = _error(capsys, ["run", QUICK, "--set", f"data.source={tmp_path / 'missing_folder'}", "--out",
                           str(tmp_path / "run")], 2)
    assert line.endswith(f"`data.source`: folder or file not found: {tmp_path / 'missing_folder'}")
    assert not os.path.exists(tmp_path / "run")
    line = _error(capsys, ["run", QUICK, "--set", "data.source=animal_mnst", "--out", str(tmp_path / "run")], 2)
    assert "Did you mean 'animal_mnist'?" in line
    line = _error(capsys, ["run", QUICK, "--set", "model.backbone=efficientnet_lite9", "--out", str(tmp_path / "r")], 2)
    assert "`model.backbone`: Unknown backbone 'efficientnet_lite9'. Did you mean" in line
    line = _error(capsys, ["run", QUICK, "--resume", "--out", str(tmp_path / "none")], 2)
    assert "--resume: no run to resume in" in line
    _error(capsys, ["run", str(tmp_path / "nope.yaml")], 2)


def test_console_script_exit_code_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {source: animal_mnist}\nmodel: {input_size: 96}\n")
    result = subprocess.run([sys.executable, "-m", "tfxfer.cli", "run", str(bad)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == ("tfxfer: error: bad.yaml: `model.input_size` must be a list of 2 values. "
                                     "Received: 96 (of type int)")


def test_datasets_and_backbones(capsys):
    assert cli.main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "animal_mnist" in out and "wnut16" in out and "token_classification" in out
    assert cli.main(["datasets", "list", "--task", "image_classification"]) == 0
    assert "sentiment_movies" not in capsys.readouterr().out
    assert cli.main(["datasets", "describe", "elpv"]) == 0
    assert "CC BY-NC-SA 4.0" in capsys.readouterr().out
    assert "Unknown data set 'elvp'. Did you mean: 'elpv'?" in _error(capsys, ["datasets", "describe", "elvp"], 2)
    assert cli.main(["backbones", "--family", "efficientnet_lite"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[1].split()[0] == "efficientnet_lite0" and "offline" in out[1]
    assert "Unknown backbone family 'mobilenet_v9'" in _error(capsys, ["backbones", "--family", "mobilenet_v9"], 2)


@pytest.fixture
def tiny_model_dir(tmp_path):
    """A tiny trained-looking model saved the way a run saves it (model.keras + labels.json)."""
    import keras

    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="head",
                                 kernel_initializer=keras.initializers.Constant([[8.0, -8.0]] * 3),
                                 bias_initializer=keras.initializers.Constant([-10.0, 10.0]))(x)
    model = keras.Model(inputs, outputs)
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    model.save(run / "model" / "model.keras")
    (run / "model" / "labels.json").write_text(json.dumps({"class_names": ["bright", "dark"]}))
    return run


def _images(folder, classes=("bright", "dark"), n=6):
    from PIL import Image

    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            value = 230 - i if c == "bright" else 20 + i
            Image.fromarray(np.full((20, 20, 3), value, np.uint8)).save(folder / c / f"{i}.png")
    return folder


def test_predict_evaluate_export(tiny_model_dir, tmp_path, capsys):
    data = _images(tmp_path / "data")
    assert cli.main(["predict", str(tiny_model_dir), str(data / "bright" / "0.png"), str(data / "dark"), "-q"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 7 and lines[0].endswith("0.png: bright 1.000, dark 0.000")
    assert all(line.split(": ")[1].startswith("dark") for line in lines[1:])
    assert cli.main(["evaluate", str(tiny_model_dir), str(data), "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "tfxfer/1" and doc["ok"] and doc["command"] == "evaluate" and doc["split"] == "test"
    metrics = doc["metrics"]
    assert metrics["accuracy"] == 1.0 and metrics["num_examples"] == 12
    out = tmp_path / "exported"
    calibration = _images(tmp_path / "train", n=5)  # int8 calibrates on training images, never the gate's
    assert cli.main(["export", str(tiny_model_dir), str(data), "--variants", "float32,int8", "--out", str(out),
                     "--calibration", str(calibration), "--no-benchmark", "-q"]) == 0
    assert "pass" in capsys.readouterr().out
    assert (out / "model_float32.tflite").is_file() and (out / "model_int8.tflite").is_file()
    assert cli.main(["predict", str(out / "model_int8.tflite"), str(data / "dark" / "1.png"), "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"].endswith("model_int8.tflite") and doc["exit_code"] == 0 and doc["error"] is None
    (row,) = doc["results"]  # the device runner's schema: image, top [{index, label, probability}]
    assert row["image"].endswith("1.png") and row["top"][0]["label"] == "dark" and row["top"][0]["index"] == 1
    assert cli.main(["evaluate", str(out / "model_float32.tflite"), str(data), "-q"]) == 0
    assert "accuracy 1.0000" in capsys.readouterr().out
    wrong = _images(tmp_path / "other", classes=("cat", "dog"))
    for i, path in enumerate(sorted((wrong / "dog").iterdir())):  # distinct content: no label conflict
        path.write_bytes((data / "bright" / f"{i}.png").read_bytes())
    assert "class(es) ['cat', 'dog'] are not among the model's classes" in _error(
        capsys, ["evaluate", str(tiny_model_dir), str(wrong), "-q"], 1)
    assert "must be an existing" in _error(capsys, ["predict", str(tmp_path / "nope.keras"), str(data), "-q"], 2)
    (tmp_path / "notes.png").write_text("not an image")
    assert "not a readable image" in _error(capsys, ["predict", str(tiny_model_dir), str(tmp_path / "notes.png")], 1)


def test_report_command(tmp_path, capsys):
    from tests.report.helpers import make_run_dir

    run = make_run_dir(tmp_path / "run")
    assert cli.main(["report", run]) == 0
    assert "report.html" in capsys.readouterr().out
    assert "must be an existing run directory" in _error(capsys, ["report", str(tmp_path / "nope")], 2)


def test_doctor_rules_and_command(capsys, monkeypatch):
    from tfxfer.recipes import doctor

    good = {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0", "tensorflow-model-optimization": "0.8.1",
            "ai-edge-litert": "2.3.0", "keras-hub": "0.32.0", "tensorflow-serving-api": "2.21.0"}
    assert all(c.ok for c in doctor.check_versions(good, env={}))
    bad = dict(good, keras="2.15.0", **{"tf-keras": None})
    fixes = {c.name: c.fix for c in doctor.check_versions(bad, env={"KERAS_BACKEND": "jax"}) if not c.ok}
    assert fixes == {"keras": 'pip install "keras>=3.13,<4"', "tf-keras": 'pip install "tf-keras==2.21.*"',
                     "KERAS_BACKEND": "unset KERAS_BACKEND"}
    monkeypatch.setattr(doctor, "version_checks", lambda: doctor.check_versions(bad, env={}))
    monkeypatch.setattr(doctor, "import_checks", lambda: [doctor.Check("import keras_hub", True, "imports", "imports")])
    assert cli.main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "What to fix:" in out and 'tf-keras: pip install "tf-keras==2.21.*"' in out and "import keras_hub" in out
    assert cli.main(["doctor", "--versions-only", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert not doc["ok"] and doc["exit_code"] == 1 and "keras" in doc["error"]["message"]
    assert {c["name"] for c in doc["checks"] if not c["ok"]} == {"keras", "tf-keras"}
    assert "import keras_hub" not in {c["name"] for c in doc["checks"]}


def test_rank_command(tmp_path, capsys):
    from tests.factories import make_image_folder

    folder = make_image_folder(tmp_path / "images", per_class=6)
    assert cli.main(["rank", folder, "--candidates", "mobilenet_v3_small:random@32,mobilenet_v2:random@32",
                     "--no-cost", "--max-samples", "18", "-q"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and {"mobilenet_v3_small:random@32", "mobilenet_v2:random@32"} == {
        r.split("|")[2].strip() for r in rows}
    assert "Unknown backbone 'mobilenet_v9'" in _error(capsys, ["rank", folder, "--candidates", "mobilenet_v9", "-q"], 2)


@pytest.mark.parametrize("errno_name, expected", [
    ("ENOSPC", "no space left on the device: /runs/x/model.keras. Files already written are intact"),
    ("EROFS", "read-only file system: /runs/x/model.keras; choose another output folder"),
    ("EIO", "Input/output error"),
])
def test_os_errors_are_one_line_with_exit_code_1(errno_name, expected, monkeypatch, capsys):
    """A full disk (or any OSError) during a command: one line, exit 1, no traceback."""
    import errno

    def fail(args):
        code = getattr(errno, errno_name)
        raise OSError(code, os.strerror(code), "/runs/x/model.keras")

    monkeypatch.setitem(cli.COMMANDS, "report", fail)
    assert cli.main(["report", "/runs/x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfxfer: error: ") and expected in err[0]
