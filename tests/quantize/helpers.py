"""Helpers for the quantize tests: training and BN re-estimation (models and data come from `tests.factories`)."""

from __future__ import annotations


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
