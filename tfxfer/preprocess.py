"""Serializable preprocessing layer baked into every tfxfer model.

Models built by tfxfer take raw pixels (0-255, RGB or grayscale) so the exported TFLite file and
SavedModel need no preprocessing code on the device. The scaling each pretrained backbone expects
is done by `Preprocess`, a plain layer (no Lambda) that round-trips through ``get_config``.

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.preprocess import Preprocess
    >>> layer = Preprocess(mode="tf")
    >>> out = layer(np.array([[[[0.0, 127.5, 255.0]]]], dtype="float32"))
    >>> np.round(keras.ops.convert_to_numpy(out), 3).tolist()
    [[[[-1.0, 0.0, 1.0]]]]
"""

from __future__ import annotations

import keras
from keras import ops

from tfxfer.errors import ArgumentError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

#: Preprocessing modes: what each backbone family expects from raw 0-255 RGB input.
PREPROCESS_MODES = {
    "none": "pass 0-255 through (the backbone scales internally)",
    "tf": "scale to [-1, 1]: x / 127.5 - 1",
    "torch": "scale to [0, 1], then normalize with ImageNet mean/std",
    "caffe": "RGB -> BGR, subtract the ImageNet channel means (no scaling)",
    "lite": "(x - 127) / 128, as EfficientNet-Lite was trained",
    "unit": "scale to [0, 1]: x / 255",
}


def preprocess_pixels(x, mode: str, *, expand_grayscale: bool = True, dtype="float32"):
    """The `Preprocess` computation on a tensor (shared with the tf_keras twin used by QAT)."""
    x = ops.cast(x, dtype)
    if expand_grayscale and x.shape[-1] == 1:
        x = ops.concatenate([x, x, x], axis=-1)
    if mode == "none":
        return x
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "unit":
        return x / 255.0
    if mode == "lite":
        return (x - 127.0) / 128.0
    if mode == "torch":
        mean = ops.convert_to_tensor(IMAGENET_MEAN, dtype=dtype)
        std = ops.convert_to_tensor(IMAGENET_STD, dtype=dtype)
        return (x / 255.0 - mean) / std
    # caffe: RGB -> BGR, mean subtraction
    return ops.flip(x, axis=-1) - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=dtype)


@keras.saving.register_keras_serializable(package="tfxfer")
class Preprocess(keras.layers.Layer):
    """Turn raw 0-255 pixels into what a backbone expects; expand grayscale to RGB.

    Args:
        mode: one of `PREPROCESS_MODES` ("none", "tf", "torch", "caffe", "lite", "unit").
        expand_grayscale: if the input has one channel, repeat it to three (default True).
    """

    def __init__(self, mode: str = "none", expand_grayscale: bool = True, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ArgumentError(
                "mode", mode, "must be one of " + ", ".join(sorted(PREPROCESS_MODES))
            )
        self.mode = mode
        self.expand_grayscale = bool(expand_grayscale)

    def call(self, inputs):
        return preprocess_pixels(inputs, self.mode, expand_grayscale=self.expand_grayscale, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        if self.expand_grayscale and input_shape[-1] == 1:
            return tuple(input_shape[:-1]) + (3,)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"mode": self.mode, "expand_grayscale": self.expand_grayscale})
        return config
