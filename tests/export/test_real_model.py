"""End to end on real weights and real data: EfficientNet-Lite0 (ImageNet, offline) on Animal-MNIST."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_efficientnet_lite0_int8_passes_the_gate_and_runs_on_device(tmp_path):
    import keras
    import tensorflow as tf
    from PIL import Image

    from tfxfer import data
    from tfxfer.export import export_all
    from tfxfer.models import build_model
    from tfxfer.models import feature_model, head_model

    keras.utils.set_random_seed(0)
    animals = data.load("animal_mnist")
    size = 96

    def resize(x):
        return np.clip(np.round(tf.image.resize(x.astype("float32"), (size, size)).numpy()), 0, 255)

    rng = np.random.default_rng(0)  # the splits are ordered by class: draw at random
    train, test = rng.permutation(len(animals.train.y))[:800], rng.permutation(len(animals.test.y))[:300]
    x_train, y_train = resize(animals.train.x[train]), animals.train.y[train]
    x_test, y_test = resize(animals.test.x[test]), animals.test.y[test]
    model = build_model("efficientnet_lite0", 10, input_size=(size, size), channels=1, weights="imagenet")
    features = feature_model(model).predict(x_train, batch_size=64, verbose=0)
    head = head_model(model)  # shares the head's weights with `model`
    head.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    head.fit(features, y_train, epochs=20, batch_size=64, verbose=0)

    table = export_all(model, tmp_path, variants=("float32", "int8"), representative_data=x_train,
                       eval_data=(x_test, y_test), class_names=animals.class_names, name="animals",
                       num_calibration=100, benchmark=False,
                       thresholds={"int8": {"max_accuracy_drop": 3.0}})  # 300 images: 1 point = 3 images
    float32, int8 = table.gate["float32"], table.gate["int8"]
    assert float32.keras_accuracy > 0.6  # pretrained features: far above chance (0.1)
    assert float32.top1_agreement == 1.0 and float32.max_abs_error < 1e-4
    assert int8.top1_agreement >= 0.9
    assert table.rows[1]["size_ratio"] < 0.35

    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(5):
        paths.append(str(folder / f"{i}.png"))
        Image.fromarray(x_test[i, :, :, 0].astype(np.uint8), mode="L").save(paths[-1])
    runner = os.path.join(os.path.dirname(__file__), "..", "..", "export", "litert_runner.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, runner, str(tmp_path / "animals_float32.tflite"), *paths, "--json"],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    got = [r["top"][0]["label"] for r in json.loads(proc.stdout)["results"]]
    expected = model.predict(x_test[:5], verbose=0).argmax(1)
    assert got == [animals.class_names[i] for i in expected]
