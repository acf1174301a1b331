"""`export_saved_model` refuses a regression model, as `export_all` and `export_onnx` do: its outputs
are values, not the probabilities / classes / top_class the SavedModel's signatures promise."""

import os

import pytest

from tfxfer.errors import ModelError
from tfxfer.export import export_saved_model


def test_regression_model_is_refused_and_nothing_is_written(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(1)], name="price")
    with pytest.raises(ModelError, match=r"`model` 'price' is a regression model \(a linear output \(None, 1\)\)"):
        export_saved_model(model, tmp_path, name="price")
    assert os.listdir(tmp_path) == []
