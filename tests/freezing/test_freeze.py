import keras
import pytest

from tests.factories import tiny_model
from tfxfer.errors import ArgumentError, UnknownNameError
from tfxfer.freezing import freeze_backbone, group_names, layer_groups, trainable_summary, unfreeze, unfreeze_all
from tfxfer.backbones import get_backbone


def _trainable_layer_names(model):
    return {v.path.split("/")[0] for v in model.trainable_weights}


def _group_layer_names(model, group):
    return {l.name for l in layer_groups(model)[group] if l.weights}


def test_groups_cover_every_layer_once_and_end_with_head():
    model = tiny_model(2)
    groups = layer_groups(model)
    seen = [id(l) for layers in groups.values() for l in layers]
    assert len(seen) == len(set(seen))
    expected = len(model.layers) - 1 + len(get_backbone(model).layers)
    assert len(seen) == expected
    assert list(groups)[-1] == "head" and list(groups)[0] == "stem"


def test_freeze_backbone_leaves_only_the_head_trainable():
    model = tiny_model(3, freeze=False)
    summary = freeze_backbone(model)
    assert _trainable_layer_names(model) == {"head"}
    assert summary.trainable_groups == ["head"]
    assert summary.trainable_params == 1280 * 3 + 3


def test_unfreeze_top_groups_selects_exactly_those_groups_and_keeps_bn_frozen():
    model = tiny_model(2)
    names = group_names(model)
    summary = unfreeze(model, top_groups=2)
    assert summary.trainable_groups == names[-3:]
    expected = _group_layer_names(model, names[-3]) | _group_layer_names(model, names[-2]) | {"head"}
    trainable = _trainable_layer_names(model)
    bn = {l.name for l in get_backbone(model).layers if isinstance(l, keras.layers.BatchNormalization)}
    assert trainable == expected - bn
    assert not any(l.trainable for l in get_backbone(model).layers if l.name in bn)


def test_bn_policy_train_lets_unfrozen_batchnorm_train():
    model = tiny_model(2)
    unfreeze(model, top_groups=1, bn_policy="train")
    assert "Conv_1_bn" in _trainable_layer_names(model)
    assert model.get_layer("mobilenet_v2").get_layer("Conv_1_bn").trainable


def test_unfreeze_by_groups_names_pattern_fraction():
    model = tiny_model(2)
    assert unfreeze(model, groups=["stem"]).trainable_groups == ["stem", "head"]
    assert _trainable_layer_names(model) == {"Conv1", "head"}
    unfreeze(model, names=["Conv_1"])
    assert _trainable_layer_names(model) == {"Conv_1", "head"}
    unfreeze(model, pattern=r"^block_16_")
    assert _trainable_layer_names(model) == {"block_16_expand", "block_16_depthwise", "block_16_project", "head"}
    summary = unfreeze(model, fraction=1.0)
    assert summary.trainable_groups == group_names(model)
    assert unfreeze_all(model).trainable_params == summary.trainable_params
    freeze_backbone(model)
    assert _trainable_layer_names(model) == {"head"}


def test_summary_prints_a_table_with_totals():
    model = tiny_model(2)
    text = str(trainable_summary(model))
    assert text.splitlines()[0].split() == ["group", "layers", "trainable", "frozen"]
    assert text.splitlines()[-1].startswith("total")


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(), ArgumentError, "must be given exactly one"),
        (dict(top_groups=1, pattern="x"), ArgumentError, "must be given exactly one"),
        (dict(top_groups=99), ArgumentError, r"`top_groups` must be an int in \[0, 8\]"),
        (dict(groups=["stme"]), UnknownNameError, "Did you mean: 'stem'"),
        (dict(names=["nope"]), UnknownNameError, "Unknown backbone layer 'nope'"),
        (dict(pattern="("), ArgumentError, "valid regular expression"),
        (dict(pattern="^zzz"), ArgumentError, "matches no backbone layer"),
        (dict(fraction=0), ArgumentError, r"`fraction` must be a finite number in \(0, 1\]. Received: fraction=0"),
        (dict(top_groups=1, bn_policy="thaw"), ArgumentError, "`bn_policy` must be 'frozen' or 'train'"),
    ],
)
def test_bad_selectors_raise(kwargs, error, match):
    model = tiny_model(2)
    with pytest.raises(error, match=match):
        unfreeze(model, **kwargs)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_unused_text_pooler_stays_frozen_as_in_the_text_rule(pooling):
    """On a mean- or cls-pooled text classifier, unfreeze(top_groups=1) made only the unused pooler trainable
    (no gradient reaches it; no encoder weight changed). It now follows tfxfer.text.unfreeze_encoder."""
    from tests.factories import tiny_text_classifier
    from tfxfer.text import unfreeze_encoder

    model = tiny_text_classifier(2, pooling=pooling)
    assert group_names(model) == ["embeddings", "layer_0", "layer_1", "pooler", "head"]
    for top in (1, 2, 4):
        summary = unfreeze(model, top_groups=top)
        trainable = {v.path for v in model.trainable_variables}
        assert not any(p.startswith("pooled_dense/") for p in trainable)
        assert summary.trainable_groups == unfreeze_encoder(tiny_text_classifier(2, pooling=pooling), top_groups=top)
    assert unfreeze(model, top_groups=2).trainable_groups == ["layer_1", "head"]
    assert unfreeze(model, groups=["pooler"]).trainable_groups == ["head"]  # named, still no gradient
    assert "pooler" in unfreeze(tiny_text_classifier(2, pooling="pooled"), top_groups=1).trainable_groups
