"""Layer groups belong to the model: `tfxfer.backbones.layer_groups`, `get_backbone`, and the one
spec resolver (`spec_of`) that other rooms register with."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import keras
import pytest

import tfxfer
from tests.factories import tiny_model
from tfxfer import freezing
from tfxfer.backbones import (HEAD, catalog, get_backbone, get_spec, group_names, layer_groups,
                              register_spec_resolver, select_groups, spec_of)
from tfxfer.errors import ArgumentTypeError, ModelError, UnknownNameError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_groups_cover_every_layer_once_bottom_to_top():
    model = tiny_model(2)
    groups = layer_groups(model)
    assert list(groups)[0] == "stem" and list(groups)[-1] == HEAD == "head"
    assert [l.name for l in groups[HEAD]] == ["pool", "head_dropout", "head"]
    backbone = get_backbone(model)
    counted = [id(l) for layers in groups.values() for l in layers]
    assert len(counted) == len(set(counted)) == len(model.layers) - 1 + len(backbone.layers)
    assert group_names(model) == list(groups)
    assert select_groups(model, ["top", "head"]) == ["top", "head"]
    with pytest.raises(UnknownNameError, match="Did you mean: 'top'"):
        select_groups(model, ["tpo"])


def test_the_public_faces_serve_the_same_functions():
    assert tfxfer.layer_groups is freezing.layer_groups is layer_groups
    assert tfxfer.get_backbone is get_backbone and freezing.HEAD == HEAD


def test_a_registered_resolver_describes_a_backbone_the_catalog_does_not_name(monkeypatch):
    monkeypatch.setattr(catalog, "_RESOLVERS", [])
    spec = get_spec("mobilenet_v2")
    base = spec.build(input_shape=(32, 32, 3), weights=None)
    base.name = "someone_elses_net"  # not a catalog name, not built from a user-defined spec
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(base(inputs))))
    assert get_backbone(model) is base
    with pytest.raises(UnknownNameError, match="someone_elses_net"):
        layer_groups(model)

    def resolver(backbone):
        return dataclasses.replace(spec, name=backbone.name) if backbone.name == "someone_elses_net" else None

    assert register_spec_resolver(resolver) is resolver
    register_spec_resolver(resolver)  # twice is once
    assert catalog._RESOLVERS == [resolver]
    assert spec_of(base).name == "someone_elses_net"
    assert group_names(model) == list(spec.group_names) + ["head"]
    with pytest.raises(ArgumentTypeError, match="`resolver` must be a callable"):
        register_spec_resolver("mobilenet_v2")


def test_text_models_built_through_tfxfer_text_find_their_groups_in_a_fresh_process():
    # A fresh interpreter: only `import tfxfer` (and its Keras-class registration) ran before the model was built.
    code = textwrap.dedent("""
        import sys, keras_hub, tfxfer
        bare = keras_hub.models.BertBackbone(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
        # `import tfxfer` registers tfxfer's Keras classes once Keras is loaded, text layers included,
        # so the text resolver is registered too: a bare keras-hub encoder resolves to text groups.
        assert "tfxfer.text.specs" in sys.modules
        assert tfxfer.backbones.spec_of(bare).group_names[0] == "embeddings"
        from tfxfer.text import build_bert_encoder, build_text_classifier
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
        encoder = build_bert_encoder(vocab, num_layers=2, hidden_dim=8, intermediate_dim=16, num_heads=2,
                                     sequence_length=8)
        model = build_text_classifier(encoder, 2)
        print(list(tfxfer.layer_groups(model)))
        print(tfxfer.freezing.unfreeze(model, top_groups=1).trainable_groups)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
               CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    groups, trainable = result.stdout.strip().splitlines()[-2:]
    assert groups == "['embeddings', 'layer_0', 'layer_1', 'pooler', 'head']"
    assert trainable.startswith("[") and "head" in trainable


def test_a_model_without_a_nested_backbone_is_refused():
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(ModelError, match="no nested backbone"):
        layer_groups(plain)
