"""L2-SP: penalty value, serialization, attach to a backbone, and less drift after fine-tuning."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_nested_model
from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.optim import L2SP, attach_l2sp, l2sp_drift


def tiny_transfer_model(seed=0):
    """Nested "backbone" conv -> dw -> bn -> sep (8 filters) on 8x8 inputs, no preprocessing, 3 classes."""
    return tiny_nested_model(body="separable", size=8, classes=3, top=8, preprocess=None, dropout=None, name=None,
                             seed=seed)


def total_drift(model, reference):
    return sum(float(np.sum((w - r) ** 2)) for w, r in zip(model.get_layer("backbone").get_weights(), reference))


def test_penalty_value_and_config_round_trip():
    anchor = np.arange(6, dtype="float32").reshape(2, 3)
    reg = L2SP(alpha=0.25, anchor=anchor)
    x = keras.ops.convert_to_tensor(anchor + 2.0)
    assert float(reg(x)) == pytest.approx(0.25 * 6 * 4.0)
    assert float(reg(keras.ops.convert_to_tensor(anchor))) == 0.0
    config = reg.get_config()
    assert set(config) == {"alpha", "anchor"}
    clone = L2SP.from_config(config)
    assert clone.alpha == 0.25
    np.testing.assert_array_equal(clone.anchor, anchor)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg))
    assert isinstance(restored, L2SP)
    np.testing.assert_array_equal(restored.anchor, anchor)


def test_attach_covers_every_backbone_kernel_and_only_those():
    model = tiny_transfer_model()
    attached = attach_l2sp(model, alpha=0.01)
    assert attached == ["conv/kernel", "dw/kernel", "sep/depthwise_kernel", "sep/pointwise_kernel"]
    assert model.get_layer("head").kernel.regularizer is None
    assert isinstance(model.get_layer("backbone").get_layer("dw").depthwise_regularizer, L2SP)
    assert len(model.losses) == 4 and all(float(v) == 0.0 for v in model.losses)
    with_head = attach_l2sp(tiny_transfer_model(), alpha=0.01, beta=0.001)
    assert with_head[-1] == "head/kernel"


def test_l2sp_keeps_fine_tuned_weights_closer_to_pretrained(rng):
    x = rng.uniform(0, 1, size=(64, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=64)
    drifts = {}
    for alpha in (0.0, 0.5):
        model = tiny_transfer_model(seed=0)
        pretrained = [w.copy() for w in model.get_layer("backbone").get_weights()]
        if alpha:
            attach_l2sp(model, alpha=alpha)
        model.compile(optimizer=keras.optimizers.Adam(0.02), loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
        drifts[alpha] = total_drift(model, pretrained)
        if alpha:
            relative = l2sp_drift(model)
            assert set(relative) == {"conv/kernel", "dw/kernel", "sep/depthwise_kernel", "sep/pointwise_kernel"}
            assert all(v > 0 for v in relative.values())
    assert drifts[0.0] > 0
    assert drifts[0.5] < 0.5 * drifts[0.0]


def test_keras_round_trip_keeps_anchor_and_penalty(tmp_path, rng):
    model = tiny_transfer_model()
    attach_l2sp(model, alpha=0.1, beta=0.01)
    pretrained_conv = model.get_layer("backbone").get_layer("conv").kernel.numpy().copy()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.uniform(0, 1, size=(16, 8, 8, 3)).astype("float32")
    model.fit(x, rng.integers(0, 3, size=16), epochs=2, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    reg = loaded.get_layer("backbone").get_layer("conv").kernel.regularizer
    assert isinstance(reg, L2SP)
    np.testing.assert_array_equal(reg.anchor, pretrained_conv)
    assert isinstance(loaded.get_layer("backbone").get_layer("sep").pointwise_kernel.regularizer, L2SP)
    before = sorted(float(v) for v in model.losses)
    after = sorted(float(v) for v in loaded.losses)
    assert len(after) == 5 and before[-1] > 0
    np.testing.assert_allclose(after, before, rtol=1e-6)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_frozen_backbone_adds_no_penalty():
    model = tiny_transfer_model()
    attach_l2sp(model, alpha=0.1)
    model.get_layer("backbone").trainable = False
    assert model.losses == []


def test_errors():
    with pytest.raises(ArgumentError, match="pretrained weights"):
        L2SP(alpha=0.1)
    with pytest.raises(ArgumentError, match=r"`alpha` must be a finite number >= 0. Received: alpha=-1.0"):
        L2SP(alpha=-1.0, anchor=np.zeros(2))
    with pytest.raises(ArgumentError, match=r"`alpha` must be a finite number >= 0. Received: alpha='strong'"):
        L2SP(alpha="strong", anchor=np.zeros(2))
    with pytest.raises(ArgumentError, match="finite"):
        L2SP(alpha=0.1, anchor=np.array([np.nan]))
    with pytest.raises(ArgumentError, match="base64"):
        L2SP(alpha=0.1, anchor={"dtype": "<f4"})
    with pytest.raises(ModelError, match="anchor has shape"):
        L2SP(alpha=0.1, anchor=np.zeros(3))(keras.ops.zeros((2,)))
    with pytest.raises(ArgumentTypeError, match="keras.Model"):
        attach_l2sp("model")
    with pytest.raises(ArgumentError, match="beta"):
        attach_l2sp(tiny_transfer_model(), beta=-0.1)
    unbuilt = keras.Sequential([keras.layers.Dense(2)])
    with pytest.raises(ModelError, match="not built"):
        attach_l2sp(unbuilt)
    no_kernels = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.1)])
    with pytest.raises(ModelError, match="no kernels"):
        attach_l2sp(no_kernels)
