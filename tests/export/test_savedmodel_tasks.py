"""The SavedModel's signatures serve what the model's head means (`tfxfer.export.savedmodel.OUTPUTS`):
real probabilities and the raw ``logits`` for a linear classifier, the ``predicted`` labels of a
multi-label model and raw ``scores`` for another head (a softmax model's outputs, unchanged, are
checked in test_savedmodel.py).

Tiny models (8x8 pixels -> mean colour -> Dense(3)) with fixed weights on solid-colour images, so the
three outputs differ from image to image and no sigmoid sits near its 0.5 threshold."""

import io
import json

import numpy as np
import pytest

from tfxfer.errors import ExportError
from tfxfer.export import check_saved_model, export_saved_model

NAMES = ["a", "b", "c"]
COLOURS = np.array([[250, 10, 10], [10, 250, 10], [10, 10, 250], [200, 200, 30], [30, 120, 220], [128, 128, 128]])
IMAGES = np.broadcast_to(COLOURS[:, None, None, :], (6, 8, 8, 3)).astype(np.uint8)
KERNEL = np.array([[4.0, -3.0, 1.0], [-2.0, 5.0, -1.5], [1.0, -1.0, 3.0]], np.float32)
BIAS = np.array([-0.5, -1.0, 0.25], np.float32)
ACTIVATIONS = {"logits": None, "multilabel": "sigmoid", "scores": "tanh", "multiclass": "softmax"}


def _model(task):
    import keras

    head = keras.layers.Dense(3, activation=ACTIVATIONS[task])
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.GlobalAveragePooling2D(), head], name=task)
    head.set_weights([KERNEL, BIAS])
    return model


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``served(task) -> (model, export result, keras outputs on IMAGES)``, each exported once."""
    cache = {}

    def get(task):
        if task not in cache:
            model = _model(task)
            result = export_saved_model(model, tmp_path_factory.mktemp(task), name=task, class_names=NAMES)
            cache[task] = model, result, model.predict(IMAGES.astype(np.float32), verbose=0)
        return cache[task]

    return get


def _png(image) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_logits_model_serves_softmax_probabilities_and_its_logits(served):
    import tensorflow as tf
    from scipy.special import softmax

    _, result, logits = served("logits")
    assert np.any(logits < 0) and not np.allclose(logits.sum(1), 1.0)  # really logits
    loaded = tf.saved_model.load(result.path)
    by_tensor = loaded.signatures["serving_image"](image=tf.constant(IMAGES))
    by_bytes = loaded.signatures["serving_default"](image_bytes=tf.constant([_png(image) for image in IMAGES]))
    assert sorted(by_tensor) == ["classes", "logits", "probabilities", "top_class", "top_probability"]
    assert sorted(result.outputs) == sorted(by_tensor)
    for out in (by_tensor, by_bytes):
        np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-5)
        np.testing.assert_allclose(out["probabilities"].numpy(), softmax(logits, axis=1), atol=1e-6)
        np.testing.assert_allclose(out["probabilities"].numpy().sum(1), 1.0, atol=1e-6)
        assert [c.decode() for c in out["top_class"].numpy()] == [NAMES[i] for i in logits.argmax(1)]
        np.testing.assert_allclose(out["top_probability"].numpy(), softmax(logits, axis=1).max(1), atol=1e-6)


def test_multilabel_model_serves_the_predicted_labels_and_no_top_class(served):
    import tensorflow as tf

    _, result, probabilities = served("multilabel")
    assert np.all(np.abs(probabilities - 0.5) > 1e-3)
    predicted = probabilities >= 0.5
    assert predicted.sum(1).max() > 1 and predicted.sum(1).min() < predicted.sum(1).max()  # sets, not argmaxes
    out = tf.saved_model.load(result.path).signatures["serving_image"](image=tf.constant(IMAGES))
    assert sorted(out) == ["classes", "predicted", "probabilities"]
    assert sorted(result.outputs) == sorted(out)
    assert out["predicted"].dtype == tf.bool
    np.testing.assert_array_equal(out["predicted"].numpy(), predicted)
    np.testing.assert_allclose(out["probabilities"].numpy(), probabilities, atol=1e-6)


def test_scores_model_serves_its_scores_and_invents_no_probabilities(served):
    import tensorflow as tf

    _, result, scores = served("scores")
    out = tf.saved_model.load(result.path).signatures["serving_image"](image=tf.constant(IMAGES))
    assert sorted(out) == ["classes", "scores", "top_class"]
    np.testing.assert_allclose(out["scores"].numpy(), scores, atol=1e-6)
    assert [c.decode() for c in out["top_class"].numpy()] == [NAMES[i] for i in scores.argmax(1)]


def test_check_saved_model_names_outputs_that_are_not_the_models(served):
    _, result, _ = served("logits")  # its export's own check passed: served logits == Keras outputs
    with pytest.raises(ExportError, match=r"serves \['classes', 'logits', .*a 'multiclass' model should serve"):
        check_saved_model(result.path, _model("multiclass"))


def test_benchmark_gates_a_logits_savedmodel_on_its_logits(served, tmp_path, monkeypatch):
    import tfxfer.export
    from tfxfer.export.formats import benchmark_formats, floors

    model, result, logits = served("logits")
    monkeypatch.setattr(tfxfer.export, "export_serving", lambda *args, **kwargs: result)  # exported once above
    rows = benchmark_formats(model, str(tmp_path), formats=["saved_model"], class_names=NAMES, runs=0,
                             eval_data=(IMAGES.astype(np.float32), logits.argmax(1)), limits=floors(["saved_model"]))
    assert [row["format"] for row in rows] == ["saved_model"]
    assert rows[0]["floor"] == "pass" and rows[0]["max_abs_error"] < 1e-4, json.dumps(rows[0]["failures"])


def test_a_logits_savedmodel_serves_the_same_outputs_in_a_fresh_process(served, tmp_path):
    """What TF Serving loads: a new Python process (no tfxfer imported) reads the SavedModel and gets the
    softmax probabilities and logits the export checked."""
    import os
    import subprocess
    import sys

    _, result, logits = served("logits")
    np.save(tmp_path / "images.npy", IMAGES)
    code = ("import json, sys, numpy as np, tensorflow as tf\n"
            "sig = tf.saved_model.load(sys.argv[1]).signatures['serving_image']\n"
            "out = sig(image=tf.constant(np.load(sys.argv[2])))\n"
            "print('RESULT' + json.dumps({k: v.numpy().tolist() for k, v in out.items() if v.dtype != tf.string}))\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, "-c", code, result.path, str(tmp_path / "images.npy")], capture_output=True,
                          text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert sorted(out) == ["logits", "probabilities", "top_probability"]
    np.testing.assert_allclose(out["logits"], logits, rtol=1e-5, atol=1e-5)
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(out["probabilities"], shifted / shifted.sum(1, keepdims=True), rtol=1e-5, atol=1e-6)
