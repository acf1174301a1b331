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


def _tiny_run(**kwargs):
    from tests.factories import tiny_images, tiny_model, tiny_spec
    from tfxfer.train.fine_tune import fine_tune

    x, y = tiny_images(24, size=16, classes=3, signal="mean_colour")
    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=0)
    args = dict(val=(x[:12], y[:12]), head_epochs=1, epochs=1, batch_size=8, verbose=0)
    return fine_tune(model, (x, y), **{**args, **kwargs}), x, y


def test_a_misspelled_monitor_is_an_error_not_a_silent_head_only_model():
    from tfxfer.errors import ArgumentError

    with pytest.raises(ArgumentError, match=r"`monitor` must be one of the validation values.*val_accuracy.*val_acc"):
        _tiny_run(monitor="val_acc")


def test_test_data_is_checked_before_training_and_n_by_1_labels_everywhere():
    """test= was checked by nothing: a wrong shape or NaN pixels failed (or scored) after every epoch; (N, 1)
    labels skipped the class-id checks and crashed TTA."""
    from tests.factories import tiny_images

    xt, yt = tiny_images(6, size=20, classes=3, signal="mean_colour")
    with pytest.raises(DataError, match=r"`test` images have shape \(20, 20, 3\)"):
        _tiny_run(test=(xt, yt), head_epochs=50)
    x16, _ = tiny_images(6, size=16, classes=3, signal="mean_colour")
    with pytest.raises(DataError, match="`test` labels must be class ids in"):
        _tiny_run(test=(x16, np.array([0, 1, 2, 3, 0, 1])))
    with pytest.raises(DataError, match="`train` labels must be class ids in"):
        check_training_arrays(_image_model_3(), (np.zeros((4, 16, 16, 3), "float32"), np.array([[0], [5], [1], [2]])),
                              name="train")
    result, _, _ = _tiny_run(test=(x16, np.array([0, 1, 2, 0, 1, 2])[:, None]), tta=True)
    assert 0.0 <= result.tta["accuracy"] <= 1.0


def _image_model_3():
    from tests.factories import tiny_model, tiny_spec

    return tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=0)


def test_array_loader_refuses_pixels_it_would_flatten():
    from tfxfer.data import image_dataset_from_arrays
    from tfxfer.errors import ArgumentError

    y = np.array([0, 1] * 4)
    with pytest.raises(ArgumentError, match="not scaled to 0-1"):
        image_dataset_from_arrays(np.random.default_rng(0).random((8, 8, 8, 3)).astype("float32"), y)
    with pytest.raises(ArgumentError, match=r"raw 0-255 pixels.*x / 257"):
        image_dataset_from_arrays(np.full((8, 8, 8), 40000, np.uint16), y)
