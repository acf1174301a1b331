"""Text layer groups feed tfxfer.freezing / tfxfer.optim; freezing holds; layer-wise decay ratios."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_text_encoder
from tfxfer.errors import ArgumentError, ModelError
from tfxfer.freezing import layer_groups
from tfxfer.text import (build_text_classifier, freeze_encoder, text_layer_groups, text_layerwise_decay, text_spec,
                         unfreeze_encoder)
from tfxfer.train.fine_tune import fine_tune

SMALL = dict(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)


@pytest.mark.parametrize("family,kwargs,expected", [
    ("BertBackbone", SMALL, ["embeddings", "layer_0", "layer_1", "pooler"]),
    ("DistilBertBackbone", SMALL, ["embeddings", "layer_0", "layer_1"]),
    ("RobertaBackbone", SMALL, ["embeddings", "layer_0", "layer_1"]),
    ("DebertaV3Backbone", SMALL, ["embeddings", "layer_0", "layer_1"]),
    ("AlbertBackbone", dict(SMALL, embedding_dim=8), ["embeddings", "layer_0", "pooler"]),
])
def test_groups_of_keras_hub_families(family, kwargs, expected):
    import keras_hub

    backbone = getattr(keras_hub.models, family)(**kwargs)
    spec = text_spec(backbone)
    assert list(spec.group_names) == expected
    groups = spec.resolve_groups(backbone)
    assert sum(len(v) for v in groups.values()) == len(backbone.layers)
    weights = [v.path for layers in groups.values() for l in layers for v in l.weights]
    assert len(weights) == len(set(weights)) == len(backbone.weights)


def test_text_spec_rejects_non_transformers():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ModelError, match="transformer encoder"):
        text_spec(model)


def test_layer_groups_of_a_classifier():
    model = build_text_classifier(tiny_text_encoder(), 3, pooling="pooled")
    groups = layer_groups(model, spec=text_spec(model.get_layer("bert_backbone")))
    assert list(groups) == ["embeddings", "layer_0", "layer_1", "pooler", "head"]
    assert [l.name for l in groups["head"]] == ["pool", "head_dropout", "head"]
    assert groups["embeddings"][0].name == "text" and groups["embeddings"][1].name == "tokenize"
    assert list(text_layer_groups(model)) == list(groups)


def _snapshot(model, group_names):
    groups = text_layer_groups(model)
    return {v.path: np.array(v.numpy()) for g in group_names for l in groups[g]
            if not isinstance(l, keras.Model) for v in l.weights}


def test_layerwise_decay_ratios():
    model = build_text_classifier(tiny_text_encoder(), 2, pooling="pooled")
    mult = text_layerwise_decay(model, decay=0.5, head=2.0)
    backbone = model.get_layer("bert_backbone")
    assert mult[model.get_layer("head").kernel.path] == 2.0
    assert mult[backbone.get_layer("pooled_dense").kernel.path] == 1.0
    assert mult[backbone.get_layer("transformer_layer_1").weights[0].path] == 0.5
    assert mult[backbone.get_layer("transformer_layer_0").weights[0].path] == 0.25
    assert mult[backbone.get_layer("token_embedding").weights[0].path] == 0.125
    with pytest.raises(ArgumentError, match="decay"):
        text_layerwise_decay(model, decay=1.5)
    assert freeze_encoder(model) == ["head"]
    assert not backbone.trainable
    assert unfreeze_encoder(model, top_groups=np.int64(2))  # a numpy int is an int
    with pytest.raises(ArgumentError, match="top_groups"):
        unfreeze_encoder(model, top_groups=9)


def test_fine_tune_of_text_partial_unfreezing_with_layer_decay():
    """Top groups train, lower groups stay bit-identical, rates decay per group (the full fine-tune
    reaching 100% is in test_classifier.py)."""
    model = build_text_classifier(tiny_text_encoder(sequence_length=8), 2, pooling="mean")
    texts = np.array(["good film", "bad film", "great plot", "awful plot", "loved it", "hated it"] * 4, dtype=object)
    labels = np.array([1, 0, 1, 0, 1, 0] * 4)
    frozen_before = _snapshot(model, ["embeddings", "pooler"])
    moving_before = _snapshot(model, ["layer_0", "layer_1", "head"])
    result = fine_tune(model, (texts, labels), head_epochs=0, epochs=8, batch_size=8, base_lr=1e-2,
                       unfreeze_lr_factor=1.0, layer_decay=0.5, stages={0: 3}, verbose=0)
    assert text_layer_groups(model)["pooler"][0].trainable is False  # unused under mean pooling
    for path, value in _snapshot(model, ["embeddings", "pooler"]).items():
        np.testing.assert_array_equal(value, frozen_before[path], err_msg=path)
    after = _snapshot(model, ["layer_0", "layer_1", "head"])
    assert sum(not np.array_equal(after[p], moving_before[p]) for p in after) >= len(after) - 2
    assert result.history["loss"][-1] < result.history["loss"][0] - 0.1
    assert result.stages[0]["trainable_groups"] == ["layer_0", "layer_1", "head"]
    backbone = model.get_layer("bert_backbone")
    for name, factor in (("transformer_layer_1", 0.5), ("transformer_layer_0", 0.25), ("token_embedding", 0.125)):
        assert model.optimizer.multiplier_for(backbone.get_layer(name).weights[0]) == pytest.approx(factor)
    with pytest.raises(ArgumentError, match="epochs"):
        fine_tune(model, (texts, labels), head_epochs=0, epochs=0)
