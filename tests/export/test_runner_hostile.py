"""The device runner (export/litert_runner.py) on hostile inputs: a decompression-bomb header is one
bad image among good ones, and a damaged sidecar, a file that is not a model or a bad argument is
one line (one ``"ok": false`` document with ``--json``), never a traceback."""

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

RUNNER = os.path.join(os.path.dirname(__file__), "..", "..", "export", "litert_runner.py")


def _runner_module():
    spec = importlib.util.spec_from_file_location("litert_runner_hostile", RUNNER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _png_header(width, height):
    """A PNG whose IHDR declares ``width`` x ``height`` RGB pixels, with a tiny IDAT (a bomb's header)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import keras
    import tensorflow as tf
    from PIL import Image

    folder = tmp_path_factory.mktemp("runner_hostile")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    outputs = keras.layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers.Constant(
        [[4.0, 0.0, -4.0], [0.0, 4.0, 0.0], [-4.0, 0.0, 4.0]]))(x)
    model = folder / "tiny.tflite"
    model.write_bytes(tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, outputs)).convert())
    red = folder / "red.png"
    Image.fromarray(np.tile(np.array([250, 10, 10], np.uint8), (8, 8, 1))).save(red)
    (folder / "bomb.png").write_bytes(_png_header(30000, 30000))  # over twice Pillow's limit: Pillow raises
    (folder / "big.png").write_bytes(_png_header(10000, 10000))  # over tfxfer's limit, under Pillow's 2x
    return {"model": model, "red": red, "bomb": folder / "bomb.png", "big": folder / "big.png"}


def _main(capsys, *args):
    code = _runner_module().main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _model_with_sidecar(files, tmp_path, text):
    path = tmp_path / "m.tflite"
    shutil.copy(files["model"], path)
    (tmp_path / "m.json").write_text(text)
    return path


def test_a_bomb_header_is_one_bad_image_and_the_others_still_run(files, capsys):
    code, out, err = _main(capsys, files["model"], files["bomb"], files["big"], files["red"], "--json", "--repeat", "1")
    doc = json.loads(out)
    assert code == doc["exit_code"] == 1 and doc["ok"] is False and doc["error"]["type"] == "InputError"
    bomb, big, red = doc["results"]
    assert bomb["error"]["message"].startswith("too_large") and big["error"]["message"].startswith("too_large")
    assert "MAX_IMAGE_PIXELS=89478485" in big["error"]["message"]
    assert red["top"][0]["index"] == 0 and "error" not in red
    code, out, _ = _main(capsys, files["model"], files["bomb"], files["red"], "--repeat", "1")
    lines = out.strip().splitlines()
    assert code == 1 and "bomb.png: ERROR" in lines[0] and "too_large" in lines[0] and "red.png: 0 " in lines[1]


def test_the_pixel_cap_is_tfxfers():
    from tfxfer.data.scan import MAX_IMAGE_PIXELS

    runner = _runner_module()
    assert runner.MAX_IMAGE_PIXELS == MAX_IMAGE_PIXELS
    assert issubclass(runner.ImageError, ValueError)


@pytest.mark.parametrize("sidecar,says", [("{not json", "JSONDecodeError"), ("[1, 2]", "got a JSON list"),
                                          ('{"sha256": 5}', "sha256 is not a string"),
                                          ('{"class_names": "abc"}', "class_names must be a list")])
def test_a_damaged_sidecar_is_one_fatal_line(files, tmp_path, capsys, sidecar, says):
    path = _model_with_sidecar(files, tmp_path, sidecar)
    code, out, err = _main(capsys, path, files["red"], "--json")
    doc = json.loads(out)
    assert code == doc["exit_code"] == 1 and doc["ok"] is False and doc["error"]["type"] == "RunnerError"
    assert says in doc["error"]["message"] and "m.json" in doc["error"]["message"]
    assert doc["error"]["message"] in err


def test_a_file_that_is_not_a_model_is_one_fatal_line(files, tmp_path, capsys):
    path = tmp_path / "notes.tflite"
    path.write_bytes(b"these are not the flatbuffers you are looking for" * 4)
    code, out, err = _main(capsys, path, files["red"], "--json")
    doc = json.loads(out)
    assert code == 1 and doc["error"]["type"] == "RunnerError" and "not a TFLite model" in doc["error"]["message"]
    labels = tmp_path / "labels.json"
    labels.write_text("{oops")
    code, out, err = _main(capsys, files["model"], files["red"], "--labels", labels, "--json")
    assert code == 1 and "labels.json is not a valid sidecar" in json.loads(out)["error"]["message"]


@pytest.mark.parametrize("flag", ["--threads", "--top-k", "--repeat"])
def test_counts_below_one_are_usage_errors_before_the_model_loads(files, capsys, flag):
    code, out, err = _main(capsys, files["model"], files["red"], flag, "0", "--json")
    doc = json.loads(out)
    assert code == doc["exit_code"] == 2 and doc["error"]["type"] == "UsageError"
    assert f"argument {flag}: must be an integer >= 1. Received: 0" == doc["error"]["message"]
    assert err.strip() == f"litert_runner.py: error: {doc['error']['message']}"


@pytest.mark.parametrize("flag, value, upper", [("--threads", "99999", 1024), ("--threads", "1025", 1024),
                                                ("--repeat", "100000000000000000000", 10000)])
def test_threads_and_repeat_have_an_upper_bound(files, capsys, flag, value, upper):
    code, out, err = _main(capsys, files["model"], files["red"], flag, value, "--json")
    doc = json.loads(out)
    assert code == doc["exit_code"] == 2 and doc["error"]["type"] == "UsageError"
    assert doc["error"]["message"] == f"argument {flag}: must be an integer in [1, {upper}]. Received: {value}"


def test_json_is_never_abbreviated_nor_read_after_the_double_dash(files, capsys):
    code, out, err = _main(capsys, files["model"], files["red"], "--js", "--repeat", "1")
    assert code == 2 and out == "" and "unrecognized arguments: --js" in err  # not a silent --json
    code, out, err = _main(capsys, files["model"], files["red"], "--threads", "0", "--", "--json")
    assert code == 2 and out == "" and "--threads" in err  # "--json" after "--" is an input, not the flag


def test_a_causal_lm_decoder_points_to_llm_runner(files, tmp_path, capsys):
    path = _model_with_sidecar(files, tmp_path, json.dumps({"format": "tfxfer-llm-tflite", "model": "m.tflite"}))
    code, out, err = _main(capsys, path, "a prompt", "--json")
    message = json.loads(out)["error"]["message"]
    assert code == 1 and "is a causal-LM decoder" in message and f"run llm_runner.py {tmp_path / 'm.json'}" in message


def test_as_a_process_no_traceback_reaches_the_user(files, tmp_path):
    path = _model_with_sidecar(files, tmp_path, "[]")
    for args, code in (((files["model"], files["bomb"], files["red"]), 1), ((path, files["red"]), 1),
                       ((files["model"], files["red"], "--threads", "0"), 2)):
        proc = subprocess.run([sys.executable, RUNNER, *map(str, args), "--json", "--repeat", "1"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stderr
        assert json.loads(proc.stdout)["exit_code"] == code
