"""The backbone catalog: every supported backbone by name.

Example:
    >>> from tfxfer.backbones import list_backbones, get_spec
    >>> "resnet50" in list_backbones()
    True
    >>> get_spec("resnet50").input_size
    (224, 224)
"""

from __future__ import annotations

import functools

from tfxfer.backbones.efficientnet_lite import efficientnet_lite_specs
from tfxfer.backbones.keras_apps import keras_application_specs
from tfxfer.backbones.spec import _BUILT_SPECS, BackboneSpec
from tfxfer.errors import ArgumentTypeError, UnknownNameError


@functools.lru_cache(maxsize=None)
def _catalog() -> dict[str, BackboneSpec]:
    specs = {}
    for spec in (*keras_application_specs(), *efficientnet_lite_specs()):
        if spec.name in specs:
            raise RuntimeError(f"Duplicate backbone name in catalog: {spec.name}")
        specs[spec.name] = spec
    return specs


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def list_backbones(*, family: str | None = None) -> list[str]:
    """Names of all catalog backbones (optionally of one family), in catalog order."""
    families = {s.family for s in _catalog().values()}
    if family is not None and family not in families:
        raise UnknownNameError("backbone family", family, families)
    return [n for n, s in _catalog().items() if family is None or s.family == family]


def get_spec(name: "str | BackboneSpec") -> BackboneSpec:
    """The `BackboneSpec` for ``name``; unknown names raise `UnknownNameError` with close matches.

    Names are case-insensitive and accept "-" for "_" (``"EfficientNet-Lite0"``).
    """
    if isinstance(name, BackboneSpec):
        return name
    if not isinstance(name, str):
        raise ArgumentTypeError("backbone", name, "a backbone name (str) or a BackboneSpec")
    catalog = _catalog()
    key = _normalize(name)
    if key in catalog:
        return catalog[key]
    compact = {k.replace("_", ""): k for k in catalog}
    if key.replace("_", "") in compact:
        return catalog[compact[key.replace("_", "")]]
    if name in _BUILT_SPECS:  # a user-defined spec that built a backbone in this process
        return _BUILT_SPECS[name]
    raise UnknownNameError("backbone", name, catalog)
