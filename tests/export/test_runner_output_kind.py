"""The device runner shows what the sidecar's ``output.kind`` says the output is: a linear classifier's
logits as their softmax (never raw logits labelled "probability"), other scores as "score", and
probabilities as they are -- in a process where TensorFlow cannot be imported."""

import json

import keras
import numpy as np
import pytest

from tests.export.test_runner import _run, device_env  # noqa: F401 (the TensorFlow-free environment)
from tfxfer.export import export_tflite
from tfxfer.export.litert import predict_tflite

SIZE = 16


def _model(activation):
    inputs = keras.Input((SIZE, SIZE, 3))
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 64.0)(inputs))
    out = keras.layers.Dense(3, activation=activation, kernel_initializer=keras.initializers.RandomNormal(0, 2, seed=1))(h)
    return keras.Model(inputs, out)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    path = tmp_path_factory.mktemp("img") / "img.png"
    Image.fromarray(pixels).save(path)
    return path, pixels.astype("float32")[None]


@pytest.mark.parametrize("activation,kind,name", [(None, "logits", "probability"), ("tanh", "scores", "score"),
                                                  ("softmax", "probabilities", "probability")])
def test_the_runner_shows_the_output_the_sidecar_names(activation, kind, name, image, device_env, tmp_path):  # noqa: F811
    exported = export_tflite(_model(activation), tmp_path / "m.tflite", variant="float32")
    assert json.loads(open(exported.sidecar_path).read())["output"]["kind"] == kind
    raw = predict_tflite(exported.path, image[1])[0]
    expected = np.exp(raw - raw.max()) / np.exp(raw - raw.max()).sum() if kind == "logits" else raw
    run = _run(device_env, exported.path, image[0], "--json", "--repeat", "1", "--top-k", "3", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    top = json.loads(run.stdout)["results"][0]["top"]
    assert all(set(t) == {"index", "label", name} for t in top)
    np.testing.assert_allclose([t[name] for t in top], np.sort(expected)[::-1], rtol=1e-5, atol=1e-6)
    text = _run(device_env, exported.path, image[0], "--repeat", "1", cwd=tmp_path)
    assert text.returncode == 0 and f"{top[0]['label']} {top[0][name]:.3f}" in text.stdout
