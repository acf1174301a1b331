"""The one place a converted file's Keras reference outputs come from (TFLite and ONNX gates)."""

import numpy as np
import pytest

from tfxfer.errors import ArgumentError
from tfxfer.export.data import keras_reference


def test_given_outputs_must_match_the_images_and_classes():
    images = np.zeros((3, 4, 4, 3), np.float32)
    with pytest.raises(ArgumentError, match="reference_outputs.*must have shape \\(3, 2\\)"):
        keras_reference(None, images, np.ones((3, 5)), num_classes=2)


def test_without_outputs_the_model_predicts_them():
    class Model:
        def predict(self, x, batch_size, verbose):
            return np.full((len(x), 2), 0.5)

    out = keras_reference(Model(), np.zeros((3, 4, 4, 3)), num_classes=2)
    assert out.dtype == np.float32 and out.shape == (3, 2)
