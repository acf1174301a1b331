import keras
import numpy as np
import pytest

from tfxfer.errors import ArgumentError
from tfxfer.preprocess import PREPROCESS_MODES, Preprocess


@pytest.mark.parametrize(
    "mode, pixel, expected",
    [
        ("none", [10.0, 20.0, 30.0], [10.0, 20.0, 30.0]),
        ("tf", [0.0, 127.5, 255.0], [-1.0, 0.0, 1.0]),
        ("unit", [0.0, 51.0, 255.0], [0.0, 0.2, 1.0]),
        ("lite", [127.0, 255.0, 0.0], [0.0, 1.0, -127.0 / 128.0]),
        ("caffe", [123.68, 116.779, 103.939], [0.0, 0.0, 0.0]),
        ("torch", [0.485 * 255, 0.456 * 255, 0.406 * 255], [0.0, 0.0, 0.0]),
    ],
)
def test_modes_match_reference_formulas(mode, pixel, expected):
    out = Preprocess(mode=mode)(np.array([[[pixel]]], dtype="float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out)[0, 0, 0], expected, atol=1e-4)


def test_caffe_mode_swaps_channels_to_bgr():
    out = keras.ops.convert_to_numpy(Preprocess(mode="caffe")(np.array([[[[200.0, 0.0, 0.0]]]], "float32")))
    # Red input lands in the last (R of BGR) channel.
    assert out[0, 0, 0, 2] == pytest.approx(200.0 - 123.68, abs=1e-3)


def test_grayscale_is_expanded_to_three_channels():
    out = Preprocess(mode="tf")(np.full((2, 4, 4, 1), 255.0, "float32"))
    assert tuple(out.shape) == (2, 4, 4, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), 1.0)


def test_config_round_trip_covers_every_argument():
    layer = Preprocess(mode="torch", expand_grayscale=False, name="p")
    clone = Preprocess.from_config(layer.get_config())
    assert (clone.mode, clone.expand_grayscale, clone.name) == ("torch", False, "p")
    assert set(PREPROCESS_MODES) >= {"none", "tf", "torch", "caffe", "lite", "unit"}


def test_unknown_mode_is_a_typed_error():
    with pytest.raises(ArgumentError, match=r"`mode` must be one of .* Received: mode='bgr'"):
        Preprocess(mode="bgr")
