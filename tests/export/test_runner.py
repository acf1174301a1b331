"""The device-side runner (export/litert_runner.py) in a process where TensorFlow cannot be imported."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from .conftest import CLASS_NAMES

RUNNER = os.path.join(os.path.dirname(__file__), "..", "..", "export", "litert_runner.py")

_BLOCKER = '''
import importlib.abc, sys

class _NoTensorFlow(importlib.abc.MetaPathFinder):
    """Simulates a Raspberry Pi without TensorFlow: importing it (or tfxfer, keras) fails."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tfxfer", "keras", "tf_keras", "tensorflow_serving"):
            raise ImportError(f"{name} is blocked in this device-side test environment")
        return None

sys.meta_path.insert(0, _NoTensorFlow())
'''


@pytest.fixture(scope="module")
def device_env(tmp_path_factory):
    shim = tmp_path_factory.mktemp("shim")
    (shim / "sitecustomize.py").write_text(_BLOCKER)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(shim)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(env, *args, cwd=None):
    return subprocess.run([sys.executable, RUNNER, *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def test_images(color_data, tmp_path_factory):
    from PIL import Image

    _, (xt, yt) = color_data
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i in range(12):
        path = folder / f"img{i}.png"
        Image.fromarray(xt[i].astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths, xt[:12]


def test_tensorflow_is_really_blocked(device_env, tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import tensorflow"], env=device_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "blocked in this device-side test environment" in proc.stderr
    proc = subprocess.run([sys.executable, "-c", "import numpy, PIL, ai_edge_litert.interpreter"],
                          env=device_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("variant", ["float32", "int8"])
def test_runner_agrees_with_keras_top1(variant, exported, trained_model, test_images, device_env, tmp_path):
    paths, pixels = test_images
    proc = _run(device_env, exported[variant].path, *paths, "--json", "--top-k", "2", "--repeat", "3",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    expected = trained_model.predict(pixels, verbose=0)
    got = [r["top"][0]["index"] for r in payload["results"]]
    assert got == expected.argmax(1).tolist()
    assert [r["top"][0]["label"] for r in payload["results"]] == [CLASS_NAMES[i] for i in got]
    assert all(len(r["top"]) == 2 and r["inference_ms"] > 0 for r in payload["results"])
    probabilities = np.array([r["top"][0]["probability"] for r in payload["results"]])
    tol = 1e-5 if variant == "float32" else 0.05
    np.testing.assert_allclose(probabilities, expected.max(1), atol=tol)


def test_runner_text_output_resizes_and_reports_bad_files(exported, device_env, tmp_path):
    from PIL import Image

    big = np.zeros((80, 60, 3), np.uint8)
    big[..., 1] = 230  # green
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("not an image")
    proc = _run(device_env, exported["int8"].path, tmp_path / "big.jpg", tmp_path / "notes.txt",
                "--threads", "2", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith(f"{tmp_path / 'big.jpg'}: green ") and "2 thread(s)" in lines[0]
    assert "notes.txt: ERROR" in lines[1]


def test_runner_labels_file_and_missing_model(exported, test_images, device_env, tmp_path):
    paths, _ = test_images
    labels = tmp_path / "labels.txt"
    labels.write_text("R\nG\nB\nK\n")
    proc = _run(device_env, exported["float32"].path, paths[0], "--labels", labels, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["results"][0]["top"][0]["label"] in {"R", "G", "B", "K"}
    missing = _run(device_env, tmp_path / "missing.tflite", paths[0], cwd=tmp_path)
    assert missing.returncode == 2 and "not found" in missing.stderr
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("only\ntwo\n")
    bad = _run(device_env, exported["float32"].path, paths[0], "--labels", wrong, cwd=tmp_path)
    assert bad.returncode != 0 and "2 labels" in bad.stderr


def test_runner_source_imports_nothing_heavy():
    with open(RUNNER) as f:
        source = f.read()
    for banned in ("import tensorflow", "from tensorflow", "import tfxfer", "from tfxfer", "import keras"):
        assert banned not in source


def _copy_with_sidecar(export, folder, *, sidecar=True):
    import shutil

    path = folder / os.path.basename(export.path)
    shutil.copy(export.path, path)
    if sidecar:
        shutil.copy(export.sidecar_path, folder / os.path.basename(export.sidecar_path))
    return path


def test_runner_refuses_a_file_that_failed_its_gate_unless_allowed(exported, test_images, device_env, tmp_path):
    paths, _ = test_images
    path = _copy_with_sidecar(exported["float32"], tmp_path)
    side = tmp_path / os.path.basename(exported["float32"].sidecar_path)
    entry = json.loads(side.read_text())
    entry["gate"] = {"passed": False, "failures": ["accuracy drop 2.67 points > 1.0"]}
    side.write_text(json.dumps(entry))
    refused = _run(device_env, path, paths[0], "--json", cwd=tmp_path)
    assert refused.returncode == 1 and "failed its verification gate" in refused.stderr
    assert "accuracy drop 2.67" in refused.stderr and "--allow-failed" in refused.stderr
    assert json.loads(refused.stdout)["ok"] is False
    allowed = _run(device_env, path, paths[0], "--json", "--allow-failed", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr


def test_runner_refuses_a_sidecar_of_another_file(exported, test_images, device_env, tmp_path):
    import shutil

    paths, _ = test_images
    path = _copy_with_sidecar(exported["float32"], tmp_path, sidecar=False)
    shutil.copy(exported["int8"].sidecar_path, tmp_path / os.path.basename(exported["float32"].sidecar_path))
    proc = _run(device_env, path, paths[0], cwd=tmp_path)
    assert proc.returncode == 1 and "belongs to another file" in proc.stderr


def test_a_file_without_its_sidecar_still_names_its_classes(exported, test_images, device_env, tmp_path):
    """The labels travel inside the .tflite (Model.metadata 'tfxfer_metadata'), read without TensorFlow."""
    from tfxfer.export.flatbuffer import METADATA_NAME, read_metadata

    paths, _ = test_images
    embedded = json.loads(read_metadata(exported["int8"].path)[METADATA_NAME])
    assert embedded["class_names"] == CLASS_NAMES and embedded["input"]["channels"] == 3
    for variant in ("float32", "int8"):
        path = _copy_with_sidecar(exported[variant], tmp_path, sidecar=False)
        proc = _run(device_env, path, *paths[:4], "--json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert {r["top"][0]["label"] for r in json.loads(proc.stdout)["results"]} <= set(CLASS_NAMES)
        assert "warning" not in proc.stderr
