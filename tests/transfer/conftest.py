"""Tiny backbone specs (a few conv layers) so ranking and probe tests run in seconds."""

import functools

import keras
import numpy as np
import pytest

from tfxfer.backbones.spec import BackboneSpec


def _tiny(input_shape, weights, *, width, name, top=False):
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.Conv2D(2 * width, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    if top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=name)


def tiny_spec(name, width, *, with_head=False):
    return BackboneSpec(
        name=name, family="tiny", builder=functools.partial(_tiny, width=width, name=name),
        top_builder=functools.partial(_tiny, width=width, name=name, top=True) if with_head else None,
        input_size=(32, 32), preprocessing="unit", groups=(("stem", r"^conv1$"), ("top", None)),
        min_input_size=8, source="test",
    )


@pytest.fixture
def tiny_specs():
    return [tiny_spec("tiny_a", 4, with_head=True), tiny_spec("tiny_b", 16), tiny_spec("tiny_c", 48)]


@pytest.fixture
def bright_dark_images():
    """Grayscale images whose label is their brightness: any conv feature can see it."""
    rng = np.random.default_rng(0)
    labels = np.arange(60) % 3
    images = rng.uniform(0, 60, size=(60, 24, 24, 1)) + labels[:, None, None, None] * 90.0
    return images.astype("float32"), labels
