"""`check_training_arrays`: image arrays are checked against the model; text models take strings."""

import keras
import numpy as np
import pytest

from tfxfer.errors import DataError
from tfxfer.reliability import check_training_arrays


def _image_model():
    return keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                             keras.layers.Dense(2, activation="softmax", name="head")])


def test_string_inputs_pass_for_a_model_that_takes_strings():
    text_in = keras.Input((), dtype="string")
    model = keras.Model(text_in, keras.layers.StringLookup(vocabulary=["a", "b"])(text_in))
    check_training_arrays(model, (np.array(["a", "b"]), np.array([0, 1])))


def test_string_inputs_are_refused_for_an_image_model():
    with pytest.raises(DataError, match="`train` images must be a real numeric array.*<U1"):
        check_training_arrays(_image_model(), (np.array(["a", "b"]), np.array([0, 1])))


def test_labels_outside_the_head_are_refused():
    x = np.zeros((2, 4, 4, 3), "float32")
    with pytest.raises(DataError, match=r"class ids in \[0, 1\].*found 0..5"):
        check_training_arrays(_image_model(), (x, np.array([0, 5])))
