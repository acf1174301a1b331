"""The bias-transfer measurement: the trigger is pasted where asked, flips are counted and attributed."""

import keras
import numpy as np
import pytest

from tfxfer.errors import ArgumentError, DataError
from tfxfer.fairness import plant_trigger, trigger_flip_rate


@pytest.mark.parametrize("position,rows,cols", [("bottom_right", slice(-3, None), slice(-3, None)),
                                                ("top_left", slice(0, 3), slice(0, 3))])
def test_plant_trigger_pastes_one_square_and_copies(position, rows, cols):
    x = np.full((2, 10, 10, 3), 7.0, "float32")
    out = plant_trigger(x, size=3, value=200.0, position=position)
    assert np.all(out[:, rows, cols, :] == 200.0)
    assert (out != 7.0).sum() == 2 * 3 * 3 * 3
    assert np.all(x == 7.0)  # the input is untouched


def _trigger_detector():
    """A model that predicts class 2 exactly when the bottom-right corner is bright, else class 0."""
    inputs = keras.Input((8, 8, 1))
    corner = keras.layers.Cropping2D(((6, 0), (6, 0)))(inputs)
    score = keras.layers.GlobalAveragePooling2D()(corner)
    logits = keras.layers.Dense(3, kernel_initializer=keras.initializers.Constant([[0.0, 0.0, 1.0]]),
                                bias_initializer=keras.initializers.Constant([100.0, 0.0, 0.0]))(score)
    return keras.Model(inputs, keras.layers.Softmax()(logits))


def test_flip_rate_counts_flips_and_names_the_class_they_go_to():
    x = np.zeros((40, 8, 8, 1), "float32")
    x[:10, 6:, 6:, 0] = 255.0  # already triggered: no flip possible
    result = trigger_flip_rate(_trigger_detector(), x, size=2, n_bootstrap=500)
    assert result.n == 40 and result.flip_rate == pytest.approx(0.75)
    assert result.low <= 0.75 <= result.high and result.high - result.low < 0.4
    assert (result.top_class, result.top_class_share) == (2, 1.0)
    assert "75.0%" in result.describe() and "class 2" in result.describe()
    elsewhere = trigger_flip_rate(_trigger_detector(), x, size=2, position="top_left", n_bootstrap=0)
    assert elsewhere.flip_rate == 0.0 and elsewhere.top_class is None


def test_bad_trigger_arguments_are_named():
    x = np.zeros((2, 8, 8, 1), "float32")
    with pytest.raises(ArgumentError, match="`size` must be an int in \\[1, 8\\]"):
        plant_trigger(x, size=9)
    with pytest.raises(ArgumentError, match="`position`"):
        plant_trigger(x, position="middle")
    with pytest.raises(ArgumentError, match="`images` must be \\(N, height, width, channels\\)"):
        plant_trigger(x[0])



@pytest.mark.parametrize("value", [300.0, -1.0, 12.5])
def test_a_trigger_value_the_pixel_dtype_cannot_hold_is_named(value):
    x = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ArgumentError, match=r"`value` must be a whole number in \[0, 255\] for images of dtype uint8"):
        plant_trigger(x, size=2, value=value)
    assert plant_trigger(x, size=2, value=255.0)[0, -1, -1, 0] == 255
    with pytest.raises(ArgumentError, match="`value` must be within"):
        plant_trigger(x.astype("float16"), size=2, value=1e6)


def test_flip_rate_refuses_no_images_and_non_finite_pixels(monkeypatch):
    import importlib

    model = _trigger_detector()
    with pytest.raises(DataError, match="`images` is empty"):
        trigger_flip_rate(model, np.zeros((0, 8, 8, 1), "float32"), size=2, n_bootstrap=0)
    x = np.zeros((4, 8, 8, 1), "float32")
    x[1, 0, 0, 0] = np.nan
    with pytest.raises(DataError, match="`images` holds 1 NaN or infinite pixel value"):
        trigger_flip_rate(model, x, size=2)
    module = importlib.import_module("tfxfer.fairness.bias_transfer")
    with pytest.raises(ArgumentError, match=r"`n_bootstrap` must be an int in \[0, 100000\]"):
        trigger_flip_rate(model, np.zeros((4, 8, 8, 1), "float32"), size=2, n_bootstrap=module.MAX_BOOTSTRAP + 1)
    monkeypatch.setattr(module, "_CHUNK_ENTRIES", 3)  # one resample per chunk
    x = np.zeros((4, 8, 8, 1), "float32")
    x[:2, 6:, 6:, 0] = 255.0  # half already triggered
    result = trigger_flip_rate(model, x, size=2, n_bootstrap=200)
    assert result.flip_rate == 0.5 and 0.0 <= result.low <= 0.5 <= result.high <= 1.0
