"""Backbone catalog: `BackboneSpec`, `get_spec`, `list_backbones`."""

from tfxfer.backbones.catalog import get_spec, list_backbones
from tfxfer.backbones.spec import BackboneSpec, resolve_groups

__all__ = ["BackboneSpec", "get_spec", "list_backbones", "resolve_groups"]
