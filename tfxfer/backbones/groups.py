"""Named layer groups of a transfer model, bottom to top, plus the "head" group.

Groups come from the nested backbone's `BackboneSpec` (found by `tfxfer.backbones.spec_of`), so
freezing, staged unfreezing and discriminative learning rates ask the model for its groups and
never the reverse.

Example:
    >>> from tfxfer.models import build_model
    >>> from tfxfer.backbones import layer_groups
    >>> model = build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    >>> groups = layer_groups(model)
    >>> list(groups)[0], list(groups)[-1]
    ('stem', 'head')
"""

from __future__ import annotations

from collections import OrderedDict

import keras

from tfxfer.backbones.catalog import list_backbones, spec_of
from tfxfer.backbones.spec import _BUILT_SPECS, BackboneSpec
from tfxfer.errors import ArgumentTypeError, ModelError, UnknownNameError

HEAD = "head"


def get_backbone(model: keras.Model) -> keras.Model:
    """The nested backbone model of a tfxfer transfer model (a layer named after a catalog entry,
    else the only nested model).

    Example:
        >>> from tfxfer.models import build_model
        >>> from tfxfer.backbones import get_backbone
        >>> get_backbone(build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)).name
        'mobilenet_v2'
    """
    known = set(list_backbones()) | set(_BUILT_SPECS)
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    for layer in nested:
        if layer.name in known:
            return layer
    if len(nested) == 1:
        return nested[0]
    raise ModelError(
        f"Model {model.name!r} has no nested backbone model named after a catalog backbone "
        f"(nested models: {[layer.name for layer in nested]}). Build it with tfxfer.build_model."
    )


def layer_groups(
    model: keras.Model, *, spec: BackboneSpec | None = None
) -> "OrderedDict[str, list[keras.layers.Layer]]":
    """Every layer of ``model`` in exactly one named group, bottom (stem) to top ("head").

    Layers of the outer model before the backbone (input, preprocessing) join the first backbone
    group; layers after it (pooling, dropout, head) form the "head" group.

    Args:
        model: a transfer model built by `tfxfer.build_model` or `tfxfer.text` (or any model with
            one nested backbone named after a catalog entry).
        spec: the backbone spec, when `tfxfer.backbones.spec_of` cannot find it.
    """
    backbone = get_backbone(model)
    spec = spec or spec_of(backbone)
    groups = spec.resolve_groups(backbone)
    outer = list(model.layers)
    position = outer.index(backbone)
    first = next(iter(groups))
    groups[first] = outer[:position] + groups[first]
    groups[HEAD] = outer[position + 1 :]
    return groups


def group_names(model: keras.Model) -> list[str]:
    """Group names of ``model``, bottom to top (the last one is "head")."""
    return list(layer_groups(model))


def select_groups(model: keras.Model, names) -> list[str]:
    """Validate group ``names`` against the model's groups; unknown ones raise with close matches."""
    known = group_names(model)
    for name in names:
        if name not in known:
            raise UnknownNameError("layer group", name, known)
    return list(names)


#: ``rule(model) -> group names`` that ``model`` never uses; the rooms that build such models register theirs.
_UNUSED_RULES: list = []


def register_unused_groups(rule):
    """Let a room above say which backbone groups of the models it builds get no gradient (`tfxfer.text`:
    an encoder's pooler when the model pools the token outputs instead); registering twice is a no-op.

    Such a group stays frozen whatever `tfxfer.freezing.unfreeze` selects and takes no depth level in
    `tfxfer.optim.layerwise_decay` (as in `tfxfer.train.unfreeze`); it still counts in ``top_groups``.
    """
    if not callable(rule):
        raise ArgumentTypeError("rule", rule, "a callable model -> group names")
    if rule not in _UNUSED_RULES:
        _UNUSED_RULES.append(rule)
    return rule


def unused_groups(model: keras.Model, groups=None) -> list[str]:
    """The backbone groups of ``model`` (of ``groups``, its `layer_groups`, when given) that a registered
    rule says it never uses, bottom to top; ``[]`` for an image model.

    Example:
        >>> from tfxfer.models import build_model
        >>> unused_groups(build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None))
        []
    """
    names = {name for rule in _UNUSED_RULES for name in rule(model)}
    return [g for g in (groups if groups is not None else layer_groups(model)) if g in names and g != HEAD]
