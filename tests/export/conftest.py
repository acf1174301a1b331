"""Shared fixtures for the export tests: a tiny trained colour classifier and its data.

The model (`tests.factories.tiny_nested_model` with `TINY_MODEL`) has the structure tfxfer's builder
produces (raw pixels -> Preprocess -> nested backbone -> pooling -> dropout -> softmax head) but trains
in seconds: 4 classes, "mostly red", "mostly green", "mostly blue" and "gray", 32x32 images
(`tiny_images(signal="dominant_channel")`).
"""

import pytest

from tests.factories import tiny_images, tiny_nested_model

CLASS_NAMES = ["red", "green", "blue", "gray"]


#: `tiny_nested_model` arguments of the export tests' model (add ``extra=`` for a layer after preprocessing).
TINY_MODEL = dict(body="plain", size=32, classes=4, top=32, dropout=0.2, extra_at="input", backbone_input_name=None)


@pytest.fixture(scope="session")
def color_data():
    train = tiny_images(384, classes=4, signal="dominant_channel", seed=0)
    test = tiny_images(200, classes=4, signal="dominant_channel", seed=1)
    return train, test


@pytest.fixture(scope="session")
def trained_model(color_data):
    import keras

    keras.utils.set_random_seed(7)
    (x, y), (xt, yt) = color_data
    model = tiny_nested_model(**TINY_MODEL)
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
