"""Backbones: `BackboneSpec`, the catalog (`get_spec`, `list_backbones`), the spec resolver
(`spec_of`, `register_spec_resolver`) and a transfer model's layer groups (`layer_groups`)."""

from tfxfer.backbones.catalog import get_spec, list_backbones, register_spec_resolver, spec_of
from tfxfer.backbones.groups import HEAD, get_backbone, group_names, layer_groups, select_groups
from tfxfer.backbones.spec import BackboneSpec, resolve_groups

__all__ = [
    "HEAD", "BackboneSpec", "get_backbone", "get_spec", "group_names", "layer_groups", "list_backbones",
    "register_spec_resolver", "resolve_groups", "select_groups", "spec_of",
]
