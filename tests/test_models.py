import os

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model
from tfxfer.errors import ArgumentError, ModelError, UnknownNameError
from tfxfer.backbones import get_backbone
from tfxfer.models import build_model, feature_model, head_layers, head_model


@pytest.mark.parametrize(
    "task, classes, activation", [("multiclass", 4, "softmax"), ("multilabel", 3, "sigmoid"), ("regression", 1, "linear")]
)
def test_heads_have_the_right_shape_and_activation(task, classes, activation):
    model = tiny_model(classes, task=task)
    x, _ = tiny_images(3)
    out = model.predict(x, verbose=0)
    assert out.shape == (3, classes)
    assert model.get_layer("head").activation.__name__ == activation
    if task == "multiclass":
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    if task == "multilabel":
        assert ((out > 0) & (out < 1)).all()


def test_layout_names_and_nested_backbone():
    model = tiny_model(3, hidden_units=8)
    names = [layer.name for layer in model.layers]
    assert names == ["image", "preprocess", "mobilenet_v2", "pool", "head_dropout", "head_hidden",
                     "head_hidden_dropout", "head"]
    assert get_backbone(model).name == "mobilenet_v2"
    assert [layer.name for layer in head_layers(model)][0] == "pool"


def test_grayscale_input_is_accepted():
    model = tiny_model(2, channels=1)
    x, _ = tiny_images(2, channels=1)
    assert model.input_shape == (None, 32, 32, 1)
    assert model.predict(x, verbose=0).shape == (2, 2)


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    model = tiny_model(3, hidden_units=4)
    x, _ = tiny_images(4)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]


def test_feature_and_head_models_share_weights_with_the_model():
    model = tiny_model(2, dropout=0.0)
    x, _ = tiny_images(4)
    feats = feature_model(model).predict(x, verbose=0)
    assert feats.shape == (4, 1280)
    head = head_model(model)
    np.testing.assert_allclose(head.predict(feats, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert head.get_layer("head") is model.get_layer("head")


def test_backbone_starts_frozen_by_default_and_can_start_trainable():
    frozen = tiny_model(2)
    assert {v.path.split("/")[0] for v in frozen.trainable_weights} == {"head"}
    trainable = tiny_model(2, freeze=False)
    assert len(trainable.trainable_weights) > 50


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(num_classes=0), ArgumentError, r"`num_classes` must be an int >= 1. Received: num_classes=0"),
        (dict(num_classes=2.5), ArgumentError, r"`num_classes` must be an int >= 1. Received: num_classes=2.5"),
        (dict(num_classes=True), ArgumentError, r"`num_classes` must be an int >= 1. Received: num_classes=True"),
        (dict(num_classes=1), ArgumentError, r"task='multiclass'"),
        (dict(task="ranking"), ArgumentError, r"`task` must be one of"),
        (dict(pooling="sum"), ArgumentError, r"`pooling` must be 'avg' or 'max'"),
        (dict(dropout=1.0), ArgumentError, r"`dropout` must be a finite number in \[0, 1\). Received: dropout=1.0"),
        (dict(channels=4), ArgumentError, r"`channels` must be 1"),
        (dict(input_size=(16, 16)), ArgumentError, r"`input_shape` must be at least 32x32"),
        (dict(hidden_units=0), ArgumentError, r"`hidden_units` must be an int >= 1 or None. Received: hidden_units=0"),
        (dict(weights="/nonexistent/w.weights.h5"), ArgumentError, r"`weights` must be"),
    ],
)
def test_bad_arguments_raise_typed_errors(kwargs, error, match):
    args = dict(num_classes=2, input_size=(32, 32), weights=None)
    args.update(kwargs)
    classes = args.pop("num_classes")
    with pytest.raises(error, match=match):
        build_model("mobilenet_v2", classes, **args)


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(UnknownNameError, match=r"Did you mean: 'mobilenet_v2'"):
        build_model("mobilenet_v22", 2)


def test_get_backbone_rejects_models_without_one():
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ModelError, match="no nested backbone"):
        get_backbone(plain)


def test_a_user_defined_spec_outside_the_catalog_builds_and_freezes():
    import dataclasses

    from tfxfer.backbones import get_spec
    from tfxfer.freezing import group_names, unfreeze

    custom = dataclasses.replace(get_spec("mobilenet_v2"), name="my_mobilenet")
    model = build_model(custom, 2, input_size=(32, 32), weights=None)
    assert get_backbone(model).name == "my_mobilenet"
    assert group_names(model)[-1] == "head"
    assert unfreeze(model, top_groups=1).trainable_groups == ["top", "head"]
