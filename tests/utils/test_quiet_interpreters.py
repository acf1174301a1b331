"""LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on stderr (C++, once per
process) when it first allocates an interpreter; `tfxfer run -q` showed it. Every interpreter tfxfer
makes comes from `new_interpreter`, which makes and first allocates it with file descriptor 2 silenced."""

import ast
import os
import subprocess
import sys

import keras

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CHILD = r"""
import sys
from tfxfer.export.litert import load_interpreter
load_interpreter(sys.argv[1]).allocate_tensors()
print("made", file=sys.stderr)
"""


def test_the_first_interpreter_of_a_process_prints_nothing(tmp_path):
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    path = tmp_path / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, timeout=300,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "made" in done.stderr and "XNNPACK" not in done.stderr, done.stderr[-2000:]


def test_every_interpreter_in_tfxfer_comes_from_new_interpreter():
    loose = []
    for folder, _, files in os.walk(os.path.join(ROOT, "tfxfer")):
        for name in files:
            # the benchmark worker process's stderr is piped and read
            if not name.endswith(".py") or name == "_bench_worker.py":
                continue
            path = os.path.join(folder, name)
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("Interpreter", "interpreter_class")
                        and not path.endswith(os.path.join("export", "litert.py"))):
                    loose.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert not loose, loose
