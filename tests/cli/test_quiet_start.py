"""TensorFlow's native start-up lines (absl "All log messages before absl::InitializeLog()", oneDNN,
"Could not find cuda drivers", "failed call to cuInit") stay off the terminal of a command that
imports TensorFlow, unless -v asks for them."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cuda drivers", "cuInit", "I0000", "E0000", "W0000")


def test_predict_prints_results_and_no_start_up_noise(tmp_path):
    import keras
    from PIL import Image

    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "model.keras")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "black.png")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "tfxfer.cli", "predict", str(tmp_path / "model.keras"),
                           str(tmp_path / "black.png")], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(tmp_path / "black.png") + ": ")
    assert not [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)], proc.stderr


def test_rank_from_a_recipe_imports_tensorflow_quietly(tmp_path):
    """The recipe path read the backbone catalog (TensorFlow) before the quiet import."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "tfxfer.cli", "rank", os.path.join(ROOT, "pipelines", "quick.yaml"),
                           "--candidates", "no_such_backbone"], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=env, check=False)
    assert proc.returncode == 2 and "Unknown backbone 'no_such_backbone'" in proc.stderr, proc.stderr
    assert not [line for line in proc.stderr.splitlines() if any(n in line for n in NOISE)], proc.stderr
