"""`tfxfer benchmark`'s rows judge a multi-label model per label decision (as `export_all` gates it) and
refuse a regression model before anything is written."""

import json
import os

import numpy as np
import pytest

from tfxfer.errors import ModelError
from tfxfer.export.formats import benchmark_formats, floors

COLOURS = np.array([[250, 10, 10], [10, 250, 10], [10, 10, 250], [200, 200, 30], [30, 120, 220], [128, 128, 128]])
IMAGES = np.broadcast_to(COLOURS[:, None, None, :], (6, 8, 8, 3)).astype(np.float32)


def _model(units, activation):
    import keras

    head = keras.layers.Dense(units, activation=activation)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.GlobalAveragePooling2D(), head])
    head.set_weights([np.array([[4.0, -3.0, 1.0], [-2.0, 5.0, -1.5], [1.0, -1.0, 3.0]], np.float32)[:, :units],
                      np.array([-0.5, -1.0, 0.25], np.float32)[:units]])
    return model


def test_a_multilabel_savedmodel_row_is_judged_per_label(tmp_path):
    model = _model(3, "sigmoid")
    model.save(tmp_path / "m.keras")
    labels = (model.predict(IMAGES, verbose=0) >= 0.5).astype(np.float32)  # the model is right on every label
    labels[0, 0] = 1.0 - labels[0, 0]  # except one decision: 17 of 18
    rows = benchmark_formats(model, str(tmp_path / "out"), formats=["saved_model"], class_names=["a", "b", "c"],
                             runs=0, eval_data=(IMAGES, labels), limits=floors(["saved_model"]),
                             model_path=str(tmp_path / "m.keras"))
    keras_row, saved = rows
    assert keras_row["accuracy"] == pytest.approx(17 / 18)
    assert saved["floor"] == "pass", json.dumps(saved["failures"])
    assert saved["accuracy"] == pytest.approx(17 / 18)


def test_a_regression_model_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ModelError, match="regression"):
        benchmark_formats(_model(1, None), str(tmp_path / "out"), formats=["saved_model"], class_names=None,
                          runs=0, eval_data=(IMAGES, np.zeros(6)), limits=floors(["saved_model"]))
    assert not os.path.exists(tmp_path / "out")
