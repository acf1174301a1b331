"""Deep CORAL and DANN: the losses, the gradient reversal, training, round trips, divergence, export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.factories import tiny_images, tiny_model
from tfxfer.adapt import DANN, AdaptationDivergedError, DeepCORAL, GradientReversal, adaptation_dataset, coral_loss
from tfxfer.errors import ArgumentError, ModelError, TrainingDivergedError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dense_model(name="dense"):
    inputs = keras.Input((4,), name="x")
    features = keras.layers.Dense(8, activation="relu", name="feat")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="head")(features), name=name)


def _domains(rng, n=32):
    xs = rng.normal(size=(n, 4)).astype("float32")
    ys = (xs[:, 0] > 0).astype("int64")
    xt = (rng.normal(size=(n, 4)) * 2.0 + 1.0).astype("float32")
    return xs, ys, xt


def test_coral_loss_is_zero_for_identical_covariances_and_grows_with_the_difference(rng):
    x = rng.normal(size=(64, 5)).astype("float32")
    assert float(coral_loss(x, x)) == 0.0
    assert float(coral_loss(x, x - 7.0)) == pytest.approx(0.0, abs=1e-6)  # mean shift only
    small = float(coral_loss(x, x * 1.5))
    large = float(coral_loss(x, x * 3.0))
    assert 0.0 < small < large
    cov = np.cov(x, rowvar=False)
    expected = np.sum((cov - 9.0 * cov) ** 2) / (4 * 5 * 5)
    assert large == pytest.approx(expected, rel=1e-4)


def test_gradient_reversal_is_identity_forward_and_flips_the_gradient():
    x = tf.constant(np.random.default_rng(0).normal(size=(3, 4)).astype("float32"))
    w = tf.constant(np.arange(12, dtype="float32").reshape(3, 4))
    layer = GradientReversal(scale=0.5)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        reversed_ = layer(x)
        strong = layer(x, scale=2.0)
        plain = tf.reduce_sum(x * w)
        flipped = tf.reduce_sum(reversed_ * w)
        flipped_strong = tf.reduce_sum(strong * w)
    np.testing.assert_array_equal(reversed_.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(plain, x).numpy(), w.numpy())
    np.testing.assert_allclose(tape.gradient(flipped, x).numpy(), -0.5 * w.numpy())
    np.testing.assert_allclose(tape.gradient(flipped_strong, x).numpy(), -2.0 * w.numpy())
    again = GradientReversal.from_config(layer.get_config())
    assert again.scale == 0.5 and again.name == layer.name


@pytest.mark.parametrize("cls,extra", [(DeepCORAL, {"coral_weight": 2.0}),
                                       (DANN, {"domain_weight": 0.5, "domain_units": 4, "ramp_steps": 5})])
def test_alignment_trains_the_wrapped_model_and_round_trips(rng, tmp_path, cls, extra):
    xs, ys, xt = _domains(rng)
    model = _dense_model()
    trainer = cls(model, feature_layer="feat", **extra)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    history = trainer.fit(adaptation_dataset((xs, ys), xt, batch_size=8), epochs=2, verbose=0)
    logs = history.history
    assert {"loss", "class_loss", trainer.alignment_name, "accuracy"} <= set(logs)
    weight = trainer.alignment_weight
    expected = np.add(logs["class_loss"], np.multiply(weight, logs[trainer.alignment_name]))
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # trained in place
    np.testing.assert_allclose(trainer.predict(xs, verbose=0), model.predict(xs, verbose=0))
    assert set(trainer.evaluate(xs, ys, verbose=0, return_dict=True)) == {"loss", "accuracy"}
    config = trainer.get_config()
    rebuilt = cls.from_config(json.loads(json.dumps(config)))  # plain JSON, as in a .keras file
    assert json.dumps(rebuilt.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    assert rebuilt.feature_layer == "feat" and rebuilt.alignment_weight == weight
    trainer.save(tmp_path / "trainer.keras")  # the whole wrapper too (domain classifier included)
    loaded = keras.saving.load_model(tmp_path / "trainer.keras")
    assert type(loaded) is cls
    np.testing.assert_allclose(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-6)
    if cls is DANN:
        for a, b in zip(loaded.domain_classifier.get_weights(), trainer.domain_classifier.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_coral_training_lowers_the_coral_loss(rng):
    xs, ys, xt = _domains(rng, n=64)
    model = _dense_model()
    trainer = DeepCORAL(model, feature_layer="feat", coral_weight=10.0)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    logs = trainer.fit(adaptation_dataset((xs, ys), xt, batch_size=16), epochs=8, verbose=0).history
    assert logs["coral_loss"][-1] < 0.5 * logs["coral_loss"][0]


def test_dann_ramp_starts_at_zero_reversal(rng):
    dann = DANN(_dense_model(), feature_layer="feat", ramp_steps=100)
    dann.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    dann.optimizer.build(dann.trainable_variables)
    assert float(dann.reversal_scale()) == 0.0
    dann.optimizer.iterations.assign(100)
    assert float(dann.reversal_scale()) == pytest.approx(2 / (1 + np.exp(-10)) - 1)
    assert float(DANN(_dense_model(), feature_layer="feat").reversal_scale()) == 1.0


def test_a_nan_loss_stops_restores_the_last_good_weights_and_raises(rng):
    xs, ys, xt = _domains(rng)
    model = _dense_model()
    start = [w.copy() for w in model.get_weights()]
    trainer = DeepCORAL(model, feature_layer="feat", coral_weight=1e30)
    trainer.compile(optimizer=keras.optimizers.SGD(1e30), loss="sparse_categorical_crossentropy")
    with pytest.raises(AdaptationDivergedError, match="DeepCORAL: `(loss|coral_loss)` became (nan|inf)") as info:
        trainer.fit(adaptation_dataset((xs, ys), xt * 1e6, batch_size=8), epochs=3, verbose=0)
    assert isinstance(info.value, TrainingDivergedError) and info.value.reason == "nan"
    assert info.value.epoch == 0
    for a, b in zip(start, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_alignment_refuses_frozen_features_and_unknown_layers():
    with pytest.raises(ModelError, match="no trainable weight there.*feature_layer='head_hidden'"):
        DANN(tiny_model())  # frozen backbone, no hidden layer: nothing to align
    with pytest.raises(ArgumentError, match="`feature_layer` must name a layer"):
        DeepCORAL(_dense_model(), feature_layer="nope")
    with pytest.raises(ArgumentError, match="`coral_weight`|`alignment_weight`"):
        DeepCORAL(_dense_model(), feature_layer="feat", coral_weight=-1.0)


def test_adaptation_dataset_refuses_mismatched_targets(rng):
    xs, ys, _ = _domains(rng)
    with pytest.raises(ArgumentError, match=r"`target` must match the source inputs \(shape \(4,\)"):
        adaptation_dataset((xs, ys), np.zeros((8, 5), "float32"))
    with pytest.raises(ArgumentError, match="`source` must be an \\(x, y\\) tuple"):
        adaptation_dataset(xs, xs)
    model = tiny_model()
    x, y = tiny_images(8)
    with pytest.raises(ArgumentError, match=r"`target` must have the model's input shape \(32, 32, 3\).*1 channels"):
        adaptation_dataset((x, y), x[..., :1], model=model)
    with pytest.raises(ArgumentError, match=r"`source`.*class ids in \[0, 1\]"):
        adaptation_dataset((x, np.full(8, 3)), x, model=model)


def test_dann_model_exports_alone_with_no_adaptation_layers(tmp_path):
    x, y = tiny_images(16)
    target = np.clip(x[::-1] * 0.5 + 100, 0, 255).astype("float32")
    model = tiny_model(hidden_units=8)
    dann = DANN(model, domain_units=4)
    dann.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    dann.fit(adaptation_dataset((x, y), target, batch_size=8), epochs=1, verbose=0)
    path = tmp_path / "adapted.keras"
    dann.model.save(path)
    np.save(tmp_path / "expected.npy", model.predict(x, verbose=0))
    np.save(tmp_path / "x.npy", x)
    script = (
        "import json, sys, numpy as np, keras, tfxfer.preprocess\n"
        f"m = keras.saving.load_model({str(path)!r})\n"
        "names = [type(l).__name__ + ':' + l.name for l in m._flatten_layers(include_self=False)]\n"
        f"diff = float(np.abs(m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)"
        f" - np.load({str(tmp_path / 'expected.npy')!r})).max())\n"
        "print(json.dumps({'names': names, 'diff': diff}))\n"
    )
    env = {**os.environ, "PYTHONPATH": REPO, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["diff"] < 1e-5
    joined = " ".join(report["names"]).lower()
    assert "reversal" not in joined and "domain" not in joined and "dann" not in joined

    from tfxfer.export import export_tflite

    exported = export_tflite(dann.model, tmp_path / "adapted.tflite", variant="float32")
    assert os.path.getsize(exported.path) > 0
