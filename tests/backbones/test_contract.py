"""One contract over every catalog backbone, at the smallest input size it accepts, with random weights.

What is checked for whom, and why (measured on 2 shared cores: building dominates, about half of
it initializing the weights; a float32 TFLite conversion at 32 px took 29 s for resnet50 and 70 s
for efficientnet_b5):

Every name in `list_backbones()` (entries added later are covered automatically), at
``max(32, spec.min_input_size)`` pixels, built with deferred (never initialized) weights inside a
`keras.StatelessScope`: the structural contract below reads only shapes, names and trainable
flags, so the values are not needed and each build costs about half.

1. Build: ``build_model`` builds; the nested backbone has the spec's name and the spec's ``params``
   (within 1%); a backbone with preprocessing "none" scales its input itself.
2. Groups: ``resolve_groups`` puts every backbone layer in exactly one group, in order; each group is
   non-empty and holds a trainable weight outside BatchNorm (so unfreezing it changes something).
   Each group but the last ends at a named (not auto-named) layer at a cut point of the graph:
   every other layer is an ancestor or a descendant of it, so the grouping does not depend on
   the topological order Keras picks. NASNet cells read the two previous cells, so NASNet has no
   cut points; for it only the weaker property is required: no layer that holds weights and is
   not an ancestor of a group's end sits in that group or an earlier one.
3. Freezing: ``freeze_backbone`` leaves exactly the head's variables trainable; ``unfreeze(top_groups=1)``
   makes exactly the top group's variables (BatchNorm excluded) plus the head's trainable, and
   every BatchNorm layer stays non-trainable under the default bn_policy "frozen".

One representative per family (its smallest member by parameters; `REPRESENTATIVES`), built once
with real random weights in the same test, additionally:

4. Export: a full ``.keras`` save and load gives the same outputs on the same images (outputs that
   vary, so the comparison can fail) and keeps the group structure. The other members of a family
   differ from the representative only in depth and width (the same Keras code with other numbers),
   so their save path is the representative's; rebuilding each of them from its config and
   comparing outputs cost about a quarter of its test (efficientnet_b5: 6.7 s of about 25 s).

A TFLite conversion per family is not part of this module (30-70 s each, 15 families); TFLite
conversion of catalog backbones is covered for efficientnet_lite0, mobilenet_v2 and resnet50 by
tests/export and tests/quantize.
"""

import contextlib
import gc
import re

import keras
import numpy as np
import pytest

from tfxfer.backbones import get_backbone, get_spec, list_backbones
from tfxfer.freezing import freeze_backbone, layer_groups, unfreeze
from tfxfer.models import build_model

NO_CUT_POINTS = {"nasnet"}  # families whose cells read the two previous cells (see module doc)
NAMES = list_backbones()


def _smallest(family: str) -> str:
    return min(list_backbones(family=family), key=lambda name: get_spec(name).params)


#: family -> the member that also gets the export check (its smallest, so the cheapest to save).
REPRESENTATIVES = {family: _smallest(family) for family in sorted({get_spec(name).family for name in NAMES})}


def _auto_name(layer) -> re.Pattern:
    """The name Keras gives an unnamed layer of this class: snake_case(class) plus a counter."""
    name = re.sub(r"\W+", "", type(layer).__name__)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return re.compile(rf"{name}(_\d+)?")


def _relatives(model):
    """Bitsets of ancestors and descendants of every operation of a functional model."""
    ops = model.operations
    producer = {}
    for i, op in enumerate(ops):
        for tensor in keras.tree.flatten(op.output):
            producer[id(tensor)] = i
    parents = [
        [] if isinstance(op, keras.layers.InputLayer) else [producer[id(t)] for t in keras.tree.flatten(op.input)]
        for op in ops
    ]
    ancestors = [0] * len(ops)
    for i, ps in enumerate(parents):
        for p in ps:
            ancestors[i] |= ancestors[p] | (1 << p)
    descendants = [0] * len(ops)
    for i in range(len(ops) - 1, -1, -1):
        for p in parents[i]:
            descendants[p] |= descendants[i] | (1 << i)
    index = {id(op): i for i, op in enumerate(ops)}
    return index, ancestors, descendants


def _is_bn(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _check_groups(spec, backbone):
    groups = spec.resolve_groups(backbone)
    assert list(groups) == list(spec.group_names)
    flat = [layer for layers in groups.values() for layer in layers]
    assert len(flat) == len(backbone.layers) and all(a is b for a, b in zip(flat, backbone.layers))
    index, ancestors, descendants = _relatives(backbone)
    position = 0
    for name, layers in groups.items():
        assert layers, f"group {name!r} is empty"
        assert any(layer.trainable_weights and not _is_bn(layer) for layer in layers), (
            f"group {name!r} has no trainable weight outside BatchNorm"
        )
        position += len(layers)
        if position == len(backbone.layers):
            break
        end = layers[-1]
        assert not _auto_name(end).fullmatch(end.name), f"group {name!r} ends at auto-named {end.name!r}"
        e = index[id(end)]
        earlier = [l for l in backbone.layers[: position - 1] if not ancestors[e] >> index[id(l)] & 1]
        later = [l for l in backbone.layers[position:] if not descendants[e] >> index[id(l)] & 1]
        if spec.family in NO_CUT_POINTS:
            leaked = [l.name for l in earlier if l.weights]
            assert not leaked, f"group {name!r} (or an earlier one) holds later layers {leaked[:5]}"
        else:
            assert not earlier and not later, (
                f"group {name!r} does not end at a cut point: {end.name!r} is unrelated to "
                f"{[l.name for l in (earlier + later)[:5]]}"
            )
    return groups


def _check_freezing(model, spec):
    groups = layer_groups(model)
    head = {id(v) for layer in groups["head"] for v in layer.weights}
    backbone = get_backbone(model)
    learnable = {id(v) for v in backbone.trainable_weights}  # everything trains before freezing
    assert learnable

    freeze_backbone(model)
    assert {id(v) for v in model.trainable_weights} == head

    summary = unfreeze(model, top_groups=1)
    top = spec.group_names[-1]
    expected = {id(v) for layer in groups[top] if not _is_bn(layer) for v in layer.weights if id(v) in learnable}
    assert expected
    assert {id(v) for v in model.trainable_weights} == expected | head
    assert summary.trainable_groups == [top, "head"]
    assert not any(layer.trainable for layer in backbone.layers if _is_bn(layer))


def _check_round_trip(model, spec, tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, size=(2, *model.input_shape[1:])).astype("float32")
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    assert np.all(np.isfinite(expected)) and np.ptp(expected) > 0  # a comparison that can fail
    path = tmp_path / f"{spec.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    got = keras.ops.convert_to_numpy(reloaded(images, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    sizes = [len(g) for g in spec.resolve_groups(get_backbone(reloaded)).values()]
    assert sizes == [len(g) for g in spec.resolve_groups(get_backbone(model)).values()]


@pytest.mark.parametrize("name", NAMES)
def test_backbone_contract(name, tmp_path):
    spec = get_spec(name)
    size = max(32, spec.min_input_size)
    representative = REPRESENTATIVES[spec.family] == name
    # Deferred weights for the structural checks; real ones where the export check needs values.
    scope = contextlib.nullcontext() if representative else keras.StatelessScope()
    with scope:
        model = build_model(name, 3, task="regression", input_size=(size, size), weights=None, freeze=False)
    backbone = get_backbone(model)
    assert backbone.name == spec.name
    assert backbone.count_params() == pytest.approx(spec.params, rel=0.01)
    if spec.preprocessing == "none" and spec.source == "keras-applications":
        # "none" is right only because these backbones scale their input themselves.
        assert any(isinstance(l, (keras.layers.Rescaling, keras.layers.Normalization)) for l in backbone.layers[:3])

    _check_groups(spec, backbone)
    _check_freezing(model, spec)
    if representative:
        _check_round_trip(model, spec, tmp_path)
        del model, backbone
        gc.collect()  # the weights of a real build; deferred builds hold none
