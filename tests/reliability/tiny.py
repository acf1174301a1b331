"""Tiny transfer models for the reliability tests.

`tiny_transfer_model` builds a real tfxfer transfer model (Preprocess -> nested backbone -> pool ->
dropout -> head) whose nested backbone is a ~1k-parameter CNN named "mobilenet_v2" with the layer
names MobileNetV2's group patterns look for. Freezing, layer groups, GradualUnfreezing and the
discriminative optimizers therefore work on it exactly as on MobileNetV2, while one training step
costs milliseconds and one trace about a second.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np


def tiny_backbone(input_shape, weights=None):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="Conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn_Conv1")(x)
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    x = keras.layers.Conv2D(4, 1, name="expanded_conv_project")(x)
    x = keras.layers.BatchNormalization(name="expanded_conv_project_BN")(x)
    for block in (2, 5, 9, 12):
        y = keras.layers.Conv2D(4, 3, padding="same", name=f"block_{block}_project")(x)
        x = keras.layers.Add(name=f"block_{block}_add")([x, y])
    x = keras.layers.Conv2D(6, 1, name="block_16_project")(x)
    x = keras.layers.BatchNormalization(name="block_16_project_BN")(x)
    x = keras.layers.Conv2D(8, 1, name="Conv_1")(x)
    x = keras.layers.ReLU(6.0, name="out_relu")(x)
    return keras.Model(inputs, x, name="mobilenet_v2")


def tiny_spec():
    from tfxfer.backbones import get_spec

    return dataclasses.replace(get_spec("mobilenet_v2"), builder=tiny_backbone, min_input_size=8)


def tiny_transfer_model(num_classes: int = 3, *, size: int = 16, dropout: float = 0.1):
    from tfxfer.models import build_model

    return build_model(tiny_spec(), num_classes, input_size=(size, size), weights=None, dropout=dropout)


def tiny_data(n: int = 48, *, size: int = 16, classes: int = 3, seed: int = 0):
    """Images whose class sets the mean colour (learnable in a few epochs), raw 0-255 float32."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.uniform(0, 255, (n, size, size, 3)) * 0.4
    x[..., 0] += 150.0 * (y == 0)[:, None, None]
    x[..., 1] += 150.0 * (y == 1)[:, None, None]
    return np.clip(x, 0, 255).astype("float32"), y.astype("int64")
