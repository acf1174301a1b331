"""The tf_keras bridge: flat rebuild with identical weights and outputs."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_nested_model
from tests.quantize.helpers import recalibrate_batchnorm
from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.preprocess import PREPROCESS_MODES, Preprocess
from tfxfer.quantize import clone_keras_model, to_tf_keras, weights_to_keras


def _images(n=8, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "mobilenet_v2", "resnet50"])
def test_catalog_backbones_match_within_1e4(backbone):
    import tf_keras

    from tfxfer.models import build_model

    model = build_model(backbone, 5, input_size=(32, 32), weights=None)
    x = _images(8)
    recalibrate_batchnorm(model, x)
    # Head weights large enough that the softmax is not uniform, so the check can fail.
    head = model.get_layer("head")
    head.kernel.assign(np.random.default_rng(1).normal(0, 0.02, head.kernel.shape))
    pooled = keras.Model(model.inputs, model.get_layer("pool").output).predict(x, verbose=0)
    assert pooled.std() > 1e-2, "features vanished; the comparison would be meaningless"
    expected = model.predict(x, verbose=0)
    assert expected.max(axis=1).mean() > 0.3
    bridged = to_tf_keras(model, check_data=x)
    assert bridged.max_abs_diff <= 1e-4
    got = bridged.model.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Flat: no nested model among the tf_keras layers; names kept.
    assert not any(isinstance(layer, tf_keras.Model) for layer in bridged.model.layers)
    tfk_names = {layer.name for layer in bridged.model.layers}
    assert {"preprocess", "pool", "head"} <= tfk_names
    inner = [layer.name for layer in model.get_layer(backbone).layers if layer.weights]
    assert all(bridged.names[f"{backbone}/{name}"] == name for name in inner)
    weights = {w.name.split(":")[0]: w.numpy() for w in bridged.model.weights}
    assert len(weights) == len(model.weights)


@pytest.mark.parametrize("mode", sorted(PREPROCESS_MODES))
def test_preprocess_modes_match(mode):
    model = tiny_nested_model(preprocess=mode)
    x = _images(4, 16)
    recalibrate_batchnorm(model, x)
    bridged = to_tf_keras(model, check_data=x)
    assert bridged.max_abs_diff <= 1e-4
    assert "preprocess" in bridged.custom_layers


def test_grayscale_input_is_expanded_like_keras():
    inputs = keras.Input((8, 8, 1))
    x = Preprocess("lite", name="preprocess")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    out = keras.layers.Dense(2, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, out)
    x = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 1)).astype("float32")
    assert to_tf_keras(model, check_data=x).max_abs_diff <= 1e-5


def test_hard_swish_and_raw_keras_ops_get_twins():
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    gate = keras.layers.ReLU(6.0, name="relu6")(x + 3.0) * (1.0 / 6.0)  # MobileNetV3's hard sigmoid
    x = keras.layers.Multiply(name="se")([x, gate])
    x = keras.layers.Activation("hard_silu", name="hswish")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, out)
    model.get_layer("conv").kernel.assign(np.random.default_rng(0).normal(0, 1, (3, 3, 3, 4)))
    bridged = to_tf_keras(model, check_data=_images(4, 8))
    assert bridged.max_abs_diff <= 1e-5
    assert "hswish" in bridged.custom_layers
    assert len(bridged.custom_layers) == 3  # hard-swish plus the two raw ops (+3, *1/6)


def test_sequential_and_regularizers_are_reported():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, kernel_regularizer="l2", name="a"),
                              keras.layers.Dense(2, activation="softmax", name="head")])
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    bridged = to_tf_keras(model, check_data=x)
    assert bridged.max_abs_diff <= 1e-6
    assert bridged.dropped == ["a.kernel_regularizer"]


def test_weights_to_keras_carries_changed_weights_back():
    model = tiny_nested_model()
    x = _images(4, 16)
    bridged = to_tf_keras(model, check_data=x)
    layer = bridged.model.get_layer("top_conv")
    layer.set_weights([w * 0.5 + 0.01 for w in layer.get_weights()])
    back = weights_to_keras(bridged)
    assert back is not model
    np.testing.assert_allclose(back.predict(x, verbose=0), bridged.model.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(back.get_layer("backbone").get_layer("top_conv").kernel.numpy(),
                                  layer.kernel.numpy())
    # The source model itself is untouched.
    assert not np.array_equal(model.get_layer("backbone").get_layer("top_conv").kernel.numpy(),
                              layer.kernel.numpy())


def test_clone_keeps_trainable_flags():
    from tfxfer.models import build_model

    model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    copy = clone_keras_model(model)
    assert [w.path for w in copy.trainable_weights] == [w.path for w in model.trainable_weights]
    np.testing.assert_array_equal(copy.get_weights()[0], model.get_weights()[0])


def test_errors():
    with pytest.raises(ArgumentTypeError, match="keras.Model"):
        to_tf_keras("model")
    model = tiny_nested_model()
    with pytest.raises(ArgumentError, match="atol"):
        to_tf_keras(model, atol=0)

    @keras.saving.register_keras_serializable(package="tfxfer_tests")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((4,))
    custom = keras.Model(inputs, keras.layers.Dense(2)(Doubler(name="doubler")(inputs)))
    with pytest.raises(ModelError, match="'doubler'.*no tf_keras counterpart"):
        to_tf_keras(custom)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ModelError, match="not functional"):
        to_tf_keras(Subclassed())
    with pytest.raises(ArgumentTypeError, match="weights_to_keras|BridgedModel"):
        weights_to_keras(model)


def test_output_mismatch_is_an_error(monkeypatch):
    model = tiny_nested_model()
    x = _images(4, 16)
    from tfxfer.quantize import bridge

    original = bridge._Converter.copy_weights

    def corrupt(layer, tfk_layer, prefix):
        original(layer, tfk_layer, prefix)
        if layer.name == "head":
            tfk_layer.set_weights([w + np.arange(w.shape[-1]) for w in tfk_layer.get_weights()])  # not softmax-invariant

    monkeypatch.setattr(bridge._Converter, "copy_weights", staticmethod(corrupt))
    with pytest.raises(ModelError, match="differs from the Keras 3 model"):
        to_tf_keras(model, check_data=x)
