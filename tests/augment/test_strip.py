"""Augmentation never reaches the exported graph."""

import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import augment
from tfxfer.data import image_dataset_from_arrays
from tfxfer.errors import ArgumentTypeError, ModelError


def tflite_ops(tflite_bytes) -> set:
    """Op names in a TFLite flatbuffer, read through the LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    return {op["op_name"] for op in Interpreter(model_content=tflite_bytes)._get_ops_details()}


def bad_ops(ops) -> set:
    return {op for op in ops if op.startswith("Flex") or "RANDOM" in op.upper() or "MULTINOMIAL" in op}


def _convert_saved_model(path):
    converter = tf.lite.TFLiteConverter.from_saved_model(path)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


def _model_with_augmentation():
    inputs = keras.Input((16, 16, 3), name="image")
    aug = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomZoom(0.2),
                            keras.layers.RandomColorJitter(brightness_factor=0.3)], name="data_augmentation")
    x = aug(inputs)
    x = keras.layers.RandomErasing(name="erase")(x)
    x = keras.layers.Rescaling(1 / 255.0)(x)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


def test_find_and_strip_nested_augmentation(caplog):
    model = _model_with_augmentation()
    found = augment.find_augmentation_layers(model)
    assert [path.split("/")[0] for path in found] == ["data_augmentation"] * 3 + ["erase"]
    assert [path.split("/")[-1].rstrip("_0123456789") for path in found[:3]] == [
        "random_flip", "random_zoom", "random_color_jitter"]
    with caplog.at_level(logging.WARNING, logger="tfxfer.augment"):
        clean = augment.strip_augmentation(model)
    assert "removed 4 augmentation layer(s)" in caplog.text and "tf.data" in caplog.text
    assert augment.find_augmentation_layers(clean) == []
    assert clean.get_layer("conv") is model.get_layer("conv")  # weights shared, not copied
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(clean.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert augment.strip_augmentation(clean) is clean  # nothing to do


def test_saved_model_of_stripped_model_is_deterministic_and_has_no_random_ops(tmp_path):
    model = _model_with_augmentation()
    x = np.random.default_rng(1).uniform(0, 255, (4, 16, 16, 3)).astype("float32")
    # the trap: model.export keeps augmentation active, and TFLite needs Flex random ops
    model.export(str(tmp_path / "raw"), format="tf_saved_model", verbose=False)
    assert bad_ops(tflite_ops(_convert_saved_model(str(tmp_path / "raw"))))
    clean = augment.strip_augmentation(model, verbose=False)
    clean.export(str(tmp_path / "clean"), format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(str(tmp_path / "clean"))
    np.testing.assert_array_equal(served.serve(x).numpy(), served.serve(x).numpy())
    assert not bad_ops(tflite_ops(_convert_saved_model(str(tmp_path / "clean"))))


def test_model_trained_on_augmented_data_exports_clean_tflite():
    """Augment in tf.data (heavy: RandAugment, erasing, CutMix soft labels), export the model."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    data = image_dataset_from_arrays(x, np.arange(24) % 3, batch_size=8, augment="heavy", seed=0)
    assert data.train.element_spec[1].shape[-1] == 3  # soft labels from CutMix
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", loss="categorical_crossentropy")
    model.fit(data.train, epochs=1, verbose=0)
    assert augment.find_augmentation_layers(model) == []
    tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    ops = tflite_ops(tflite)
    assert ops and not bad_ops(ops), ops
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    sample = x[:1].astype("float32")
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, model.predict(sample, verbose=0), atol=1e-5)


def test_sequential_models_and_random_crop_keep_their_inference_outputs():
    model = keras.Sequential([keras.Input((20, 24, 3)), keras.layers.RandomCrop(16, 16),
                              keras.layers.RandomFlip(), keras.layers.GlobalAveragePooling2D()])
    clean = augment.strip_augmentation(model, verbose=False)
    assert [type(layer).__name__ for layer in clean.layers] == ["GlobalAveragePooling2D"]
    x = np.random.default_rng(2).uniform(0, 255, (2, 20, 24, 3)).astype("float32")
    np.testing.assert_allclose(clean.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_errors():
    with pytest.raises(ArgumentTypeError, match="`model` must be a keras.Model"):
        augment.strip_augmentation("model")

    class Custom(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner = keras.Sequential([keras.layers.RandomFlip()])
            self.aug = keras.layers.RandomFlip()

        def call(self, x):
            return self.aug(x)

    custom = Custom()
    custom(np.zeros((1, 4, 4, 3), "float32"))
    with pytest.raises(ModelError, match="neither a Sequential nor a Functional"):
        augment.strip_augmentation(custom)
    only_aug = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.RandomFlip()])
    with pytest.raises(ModelError, match="nothing but augmentation layers"):
        augment.strip_augmentation(only_aug)
