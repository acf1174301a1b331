"""Keras EfficientNetB0-B7 ImageNet files loaded from a local path normalize inputs like weights="imagenet".

Keras stores the ImageNet standard deviations as the Normalization layer's variance and adds a
compensating Rescaling layer only for ``weights="imagenet"``; a local copy must give the same
``(x / 255 - mean) / std`` after loading.
"""

import numpy as np

from tfxfer.backbones import get_spec

MEAN = np.array([0.485, 0.456, 0.406], "float32")
STD = np.array([0.229, 0.224, 0.225], "float32")


def _normalized(backbone, pixels):
    import keras

    norm = next(layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization))
    probe = keras.Model(backbone.input, norm.output)
    return keras.ops.convert_to_numpy(probe(pixels))


def _imagenet_like_file(tmp_path):
    """A weights file whose Normalization statistics are Keras's ImageNet ones (std stored as variance)."""
    import keras

    spec = get_spec("efficientnet_b0")
    source = spec.build(input_shape=(32, 32, 3), weights=None)
    norm = next(layer for layer in source.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_mean.assign(MEAN.reshape(norm.adapt_mean.shape))
    norm.adapt_variance.assign(STD.reshape(norm.adapt_variance.shape))
    norm.finalize_state()
    path = str(tmp_path / "efficientnetb0_notop.weights.h5")
    source.save_weights(path)
    return path


def test_local_imagenet_file_normalizes_with_the_standard_deviation(tmp_path):
    path = _imagenet_like_file(tmp_path)
    backbone = get_spec("efficientnet_b0").build(input_shape=(32, 32, 3), weights=path)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(_normalized(backbone, pixels), (pixels / 255.0 - MEAN) / STD, rtol=1e-4, atol=1e-4)


def test_other_statistics_are_left_alone(tmp_path):
    import keras

    spec = get_spec("efficientnet_b0")
    source = spec.build(input_shape=(32, 32, 3), weights=None)
    path = str(tmp_path / "fresh.weights.h5")
    source.save_weights(path)
    backbone = spec.build(input_shape=(32, 32, 3), weights=path)
    norm = next(layer for layer in backbone.layers if isinstance(layer, keras.layers.Normalization))
    src = next(layer for layer in source.layers if isinstance(layer, keras.layers.Normalization))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(norm.adapt_variance),
                                  keras.ops.convert_to_numpy(src.adapt_variance))
