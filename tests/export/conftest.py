"""Shared fixtures for the export tests: a tiny trained colour classifier and its data.

The model has the structure tfxfer's builder produces (raw pixels -> Preprocess -> nested
backbone -> pooling -> dropout -> softmax head) but trains in seconds: 4 classes, "mostly red",
"mostly green", "mostly blue" and "gray", 32x32 images.
"""

import numpy as np
import pytest

CLASS_NAMES = ["red", "green", "blue", "gray"]


def color_images(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.uniform(30, 110, (n, 32, 32, 3))
    for i, c in enumerate(labels):
        if c < 3:
            images[i, :, :, c] += rng.uniform(60, 140)
        else:
            images[i] += rng.uniform(60, 140)
    return np.clip(np.round(images), 0, 255).astype("float32"), labels


def tiny_model(num_classes=4, *, extra=None, name="tiny"):
    """Input -> Preprocess -> [extra layer] -> nested Conv/BN/ReLU backbone -> pool -> dropout -> Dense."""
    import keras

    from tfxfer.preprocess import Preprocess

    inputs = keras.Input((32, 32, 3), name="image")
    x = Preprocess("tf", name="preprocess")(inputs)
    if extra is not None:
        x = extra(x)
    b_in = keras.Input((32, 32, 3))
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv1")(b_in)
    y = keras.layers.BatchNormalization(name="bn1")(y)
    y = keras.layers.ReLU(name="relu1")(y)
    y = keras.layers.Conv2D(32, 3, strides=2, padding="same", name="conv2")(y)
    y = keras.layers.BatchNormalization(name="bn2")(y)
    y = keras.layers.ReLU(name="relu2")(y)
    x = keras.Model(b_in, y, name="backbone")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(0.2, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


@pytest.fixture(scope="session")
def color_data():
    train = color_images(384, seed=0)
    test = color_images(200, seed=1)
    return train, test


@pytest.fixture(scope="session")
def trained_model(color_data):
    import keras

    keras.utils.set_random_seed(7)
    (x, y), (xt, yt) = color_data
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    accuracy = model.evaluate(xt, yt, verbose=0)[1]
    assert accuracy > 0.95, f"fixture model did not train (accuracy {accuracy})"
    return model


@pytest.fixture(scope="session")
def exported(trained_model, color_data, tmp_path_factory):
    """All four variants of the trained model, exported once for the session."""
    from tfxfer.export import export_tflite

    (x, _), _ = color_data
    out = tmp_path_factory.mktemp("exported")
    files = {}
    for variant in ("float32", "float16", "dynamic", "int8"):
        files[variant] = export_tflite(
            trained_model, out / f"tiny_{variant}.tflite", variant=variant,
            representative_data=x if variant == "int8" else None, class_names=CLASS_NAMES,
        )
    return files
