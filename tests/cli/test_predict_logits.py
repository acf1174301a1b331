"""`tfxfer predict` on a model whose output layer is linear (logits): "probability" is the softmax."""

from __future__ import annotations

import json

import numpy as np

from tfxfer import cli


def _logits_run(run):
    import keras

    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    logits = keras.layers.Dense(2, name="logits", kernel_initializer=keras.initializers.Constant([[8.0, -8.0]] * 3),
                                bias_initializer=keras.initializers.Constant([-10.0, 10.0]))(x)
    (run / "model").mkdir(parents=True)
    keras.Model(inputs, logits).save(run / "model" / "model.keras")
    (run / "model" / "labels.json").write_text(json.dumps({"class_names": ["bright", "dark"]}))
    return run


def test_predict_reports_softmax_probabilities_for_a_logits_model(tmp_path, capsys):
    from PIL import Image

    run = _logits_run(tmp_path / "run")
    for name, value in (("a.png", 20), ("b.png", 230)):
        Image.fromarray(np.full((20, 20, 3), value, np.uint8)).save(tmp_path / name)
    assert cli.main(["predict", str(run), str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for result, label in zip(doc["results"], ("dark", "bright")):
        probabilities = [entry["probability"] for entry in result["top"]]
        assert result["top"][0]["label"] == label
        assert all(0.0 <= p <= 1.0 for p in probabilities) and abs(sum(probabilities) - 1.0) < 1e-5
