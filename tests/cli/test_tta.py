"""`tfxfer predict/evaluate --tta`: the mean over flipped views, its accuracy beside the plain one and
what it costs; bad flags exit 2 before TensorFlow."""

import json

import numpy as np
import pytest

from tfxfer import cli


@pytest.fixture
def sided(tmp_path):
    """A model that tells left-lit from right-lit 8x8 gray images, and such images."""
    import keras
    from PIL import Image

    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inputs))
    left = np.tile(np.r_[np.ones(4), -np.ones(4)], 8)  # + for lit pixels on the left
    kernel = np.stack([left, -left], axis=1) * 0.3
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant(kernel),
                                 bias_initializer=keras.initializers.Constant([0.4, 0.0]))(x)
    model = keras.Model(inputs, outputs)
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    model.save(run / "model" / "model.keras")
    (run / "model" / "labels.json").write_text(json.dumps({"class_names": ["left", "right"]}))
    data = tmp_path / "data"
    images = {}
    for c, columns in (("left", slice(0, 3)), ("right", slice(5, 8))):
        (data / c).mkdir(parents=True)
        for i in range(3):
            pixels = np.zeros((8, 8), np.uint8)
            pixels[:, columns] = 200 + 20 * i
            Image.fromarray(pixels).save(data / c / f"{i}.png")
            images[str(data / c / f"{i}.png")] = pixels
    return run, model, data, images


def test_predict_tta_is_the_mean_over_flips(sided, capsys):
    run, model, data, images = sided
    path, pixels = next(iter(images.items()))
    assert cli.main(["predict", str(run), path, "--tta", "--json", "-q"]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]["top"]
    got = {t["label"]: t["probability"] for t in top}
    x = pixels[None, :, :, None].astype("float32")
    expected = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0))[0] / 2
    plain = model.predict(x, verbose=0)[0]
    assert got["left"] == pytest.approx(float(expected[0]), abs=1e-5)
    assert abs(float(expected[0]) - float(plain[0])) > 0.1  # the flip changed the answer: the test can tell


def test_evaluate_tta_reports_both_accuracies_and_the_cost(sided, capsys):
    run, _, data, _ = sided
    assert cli.main(["evaluate", str(run), str(data), "--tta", "hflip", "--json", "-q", "--allow-chance"]) == 0
    doc = json.loads(capsys.readouterr().out)
    tta = doc["tta"]
    assert tta["views"] == ["identity", "hflip"] and tta["plain_accuracy"] == 1.0
    # left-lit and right-lit images average to the same output: TTA predicts one class for all (the bias)
    assert tta["accuracy"] == pytest.approx(0.5) and doc["metrics"]["accuracy"] == tta["accuracy"]
    assert tta["seconds"] > 0 and tta["plain_seconds"] > 0 and tta["cost"] > 0
    assert cli.main(["evaluate", str(run), str(data), "--tta", "-q", "--allow-chance"]) == 0
    assert "test-time augmentation (identity + hflip): accuracy 0.5000 vs 1.0000 without" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["diag", "hflip,hflip", ","])
def test_bad_tta_exits_2(sided, value, capsys):
    run, _, data, _ = sided
    assert cli.main(["evaluate", str(run), str(data), "--tta", value, "-q"]) == 2
    err = capsys.readouterr().err
    assert "--tta" in err and "hflip, vflip or hflip,vflip" in err
