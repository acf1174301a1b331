"""Helpers for the quantize tests: a tiny nested transfer model, a learnable task, BN re-estimation."""

from __future__ import annotations

import numpy as np


def bars(n: int, *, size: int = 16, seed: int = 0):
    """A 2-class task any small CNN learns in a few epochs: a bright horizontal vs vertical bar."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(0, 60, (n, size, size, 3))
    for i, label in enumerate(y):
        pos = rng.integers(2, size - 2)
        if label == 0:
            x[i, pos - 1: pos + 1, :, :] += 180
        else:
            x[i, :, pos - 1: pos + 1, :] += 180
    return np.clip(x, 0, 255).astype("float32"), y


def tiny_transfer(*, size: int = 16, classes: int = 2, mode: str = "tf", extra=None, top: int = 16,
                  name: str = "tiny"):
    """raw pixels -> Preprocess -> nested backbone (Conv/BN/ReLU6, depthwise, residual Add) -> pool -> dropout -> head."""
    import keras

    from tfxfer.preprocess import Preprocess

    b_in = keras.Input((size, size, 3), name="input_layer")
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(b_in)
    y = keras.layers.BatchNormalization(name="stem_bn")(y)
    y = keras.layers.ReLU(6.0, name="stem_relu")(y)
    z = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(y)
    z = keras.layers.BatchNormalization(name="dw_bn")(z)
    z = keras.layers.ReLU(6.0, name="dw_relu")(z)
    z = keras.layers.Conv2D(8, 1, use_bias=False, name="project")(z)
    z = keras.layers.BatchNormalization(name="project_bn")(z)
    y = keras.layers.Add(name="residual_add")([y, z])
    if extra is not None:
        y = extra(y)
    y = keras.layers.Conv2D(top, 3, strides=2, padding="same", name="top_conv")(y)
    y = keras.layers.ReLU(name="top_relu")(y)
    backbone = keras.Model(b_in, y, name="backbone")
    inputs = keras.Input((size, size, 3), name="image")
    x = backbone(Preprocess(mode, name="preprocess")(inputs))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.1, name="head_dropout")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def train(model, data, *, epochs: int = 4, learning_rate: float = 3e-3, batch_size: int = 32):
    import keras

    model.compile(keras.optimizers.Adam(learning_rate), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data[0], data[1], epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def recalibrate_batchnorm(model, images):
    """Set every BatchNorm's moving statistics to the batch statistics of ``images`` (one pass).

    Random-init backbones at 32x32 with fresh statistics shrink activations to ~1e-12, which
    would make an output comparison trivially pass; after this the features are O(1).
    """
    import keras

    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [(layer, layer.trainable, layer.momentum) for layer in layers]
    for layer in layers:
        layer.trainable = True
        layer.momentum = 0.0
    dropouts = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Dropout)]
    rates = [(layer, layer.rate) for layer in dropouts]
    for layer in dropouts:
        layer.rate = 0.0
    try:
        model(images, training=True)
    finally:
        for layer, trainable, momentum in saved:
            layer.trainable = trainable
            layer.momentum = momentum
        for layer, rate in rates:
            layer.rate = rate
    return model
