"""Named layer groups of a transfer model, bottom to top, plus the "head" group.

Example:
    >>> from tfxfer.models import build_model
    >>> from tfxfer.freezing import layer_groups
    >>> model = build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    >>> groups = layer_groups(model)
    >>> list(groups)[0], list(groups)[-1]
    ('stem', 'head')
"""

from __future__ import annotations

from collections import OrderedDict

import keras

from tfxfer.backbones.catalog import get_spec
from tfxfer.backbones.spec import BackboneSpec
from tfxfer.errors import UnknownNameError
from tfxfer.models import get_backbone


def _spec_for(backbone: keras.Model) -> BackboneSpec:
    try:
        return get_spec(backbone.name)
    except UnknownNameError:
        if type(backbone).__module__.startswith("keras_hub."):  # text encoders: groups from keras-hub layers
            from tfxfer.text.specs import text_spec

            return text_spec(backbone)
        raise

HEAD = "head"


def layer_groups(
    model: keras.Model, *, spec: BackboneSpec | None = None
) -> "OrderedDict[str, list[keras.layers.Layer]]":
    """Every layer of ``model`` in exactly one named group, bottom (stem) to top ("head").

    Layers of the outer model before the backbone (input, preprocessing) join the first backbone
    group; layers after it (pooling, dropout, head) form the "head" group.

    Args:
        model: a transfer model built by `tfxfer.build_model` (or any model with one nested
            backbone named after a catalog entry).
        spec: the backbone spec, when the nested backbone's name is not a catalog name.
    """
    backbone = get_backbone(model)
    spec = spec or _spec_for(backbone)
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
