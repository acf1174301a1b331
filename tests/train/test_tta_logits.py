"""Test-time augmentation on a one-logit model: thresholded at 0, as the model's loss reads it."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfxfer.errors import ArgumentError
from tfxfer.train.tta import evaluate_tta, predict_tta


def test_a_single_logit_output_is_thresholded_at_zero():
    inputs = keras.Input((4, 4, 3))
    logit = keras.layers.Dense(1, name="logit")(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, logit)
    model.get_layer("logit").set_weights([np.array([[1.0], [0.0], [0.0]]), np.array([-0.5])])
    x = np.zeros((6, 4, 4, 3), "float32")
    x[..., 0] = np.array([0.0, 0.2, 0.6, 0.8, 0.9, 1.0])[:, None, None]  # logit = mean(red) - 0.5
    y = np.array([0, 0, 1, 1, 1, 1])
    result = evaluate_tta(model, (x, y))
    assert result["accuracy"] == result["plain_accuracy"] == 1.0  # 0.333 when read at 0.5


def test_batch_size_and_a_single_view_name():
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs)))
    x = np.zeros((3, 4, 4, 3), "float32")
    with pytest.raises(ArgumentError, match="`batch_size` must be an int >= 1"):
        predict_tta(model, x, batch_size=0)
    assert predict_tta(model, x, views="hflip").shape == (3, 2)  # one view by name, not letter by letter
