"""One contract over every catalog backbone, at a tiny input size with random weights.

For each name in `list_backbones()` (entries added later are covered automatically) at
``max(32, spec.min_input_size)`` pixels, ``weights=None``:

1. ``build_model`` builds; the nested backbone has the spec's name and about the spec's ``params``.
2. ``resolve_groups`` puts every backbone layer in exactly one group, in order; each group is
   non-empty and holds a trainable weight outside BatchNorm (so unfreezing it changes something).
   Each group but the last ends at a named (not auto-named) layer at a cut point of the graph:
   every other layer is an ancestor or a descendant of it, so the grouping does not depend on
   the topological order Keras picks. NASNet cells read the two previous cells, so NASNet has no
   cut points; for it only the weaker property is required: no layer that holds weights and is
   not an ancestor of a group's end sits in that group or an earlier one.
3. ``freeze_backbone`` leaves exactly the head's variables trainable; ``unfreeze(top_groups=1)``
   makes exactly the top group's variables (BatchNorm excluded) plus the head's trainable, and
   every BatchNorm layer stays non-trainable under the default bn_policy "frozen".
4. Saving round-trips. The first (smallest) backbone of each family gets a full ``.keras``
   save/load; the others, which differ from it only in depth and width, get a ``get_config`` /
   ``from_config`` rebuild plus ``set_weights`` (measured: a full round trip for every backbone
   below 60 M parameters took 360 s of CPU time instead of 255 s and wrote 3 GB). Either way the
   reloaded model gives the same outputs on the same images and keeps the group structure.
"""

import gc
import re

import keras
import numpy as np
import pytest

from tfxfer.backbones import get_backbone, get_spec, list_backbones
from tfxfer.freezing import freeze_backbone, layer_groups, unfreeze
from tfxfer.models import build_model

NO_CUT_POINTS = {"nasnet"}  # families whose cells read the two previous cells (see module doc)


@pytest.fixture(autouse=True)
def _free_memory():
    yield
    keras.backend.clear_session()
    gc.collect()


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
    if list_backbones(family=spec.family)[0] == spec.name:
        path = tmp_path / f"{spec.name}.keras"
        model.save(path)
        reloaded = keras.saving.load_model(path)
    else:
        reloaded = keras.Model.from_config(model.get_config())
        reloaded.set_weights(model.get_weights())
    got = keras.ops.convert_to_numpy(reloaded(images, training=False))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    sizes = [len(g) for g in spec.resolve_groups(get_backbone(reloaded)).values()]
    assert sizes == [len(g) for g in spec.resolve_groups(get_backbone(model)).values()]


@pytest.mark.parametrize("name", list_backbones())
def test_backbone_contract(name, tmp_path):
    spec = get_spec(name)
    size = max(32, spec.min_input_size)
    model = build_model(name, 3, task="regression", input_size=(size, size), weights=None, freeze=False)
    backbone = get_backbone(model)
    assert backbone.name == spec.name
    assert backbone.count_params() == pytest.approx(spec.params, rel=0.01)
    if spec.preprocessing == "none" and spec.source == "keras-applications":
        # "none" is right only because these backbones scale their input themselves.
        assert any(isinstance(l, (keras.layers.Rescaling, keras.layers.Normalization)) for l in backbone.layers[:3])

    _check_groups(spec, backbone)
    _check_freezing(model, spec)
    _check_round_trip(model, spec, tmp_path)
