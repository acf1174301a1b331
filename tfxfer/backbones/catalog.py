"""The backbone catalog: every supported backbone by name, and the one resolver from a built
backbone model to its spec.

`spec_of` finds the spec of a backbone model: catalog backbones and user-defined specs that built
a backbone in this process by name; anything else through the resolvers other rooms register
with `register_spec_resolver` (`tfxfer.text` registers keras-hub text encoders when
`tfxfer.text.specs` is imported), so this room never imports the rooms above it.

Example:
    >>> from tfxfer.backbones import list_backbones, get_spec
    >>> "resnet50" in list_backbones()
    True
    >>> get_spec("resnet50").input_size
    (224, 224)
"""

from __future__ import annotations

import functools
from typing import Callable

from tfxfer.backbones.efficientnet_lite import efficientnet_lite_specs
from tfxfer.backbones.keras_apps import keras_application_specs
from tfxfer.backbones.spec import _BUILT_SPECS, BackboneSpec
from tfxfer.errors import ArgumentTypeError, ModelError, UnknownNameError

#: ``resolver(backbone model) -> BackboneSpec | None``: None means "not mine".
SpecResolver = Callable[[object], "BackboneSpec | None"]
_RESOLVERS: list = []


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


def register_spec_resolver(resolver: SpecResolver) -> SpecResolver:
    """Let `spec_of` describe backbones the catalog does not name (registering twice is a no-op).

    ``resolver(backbone)`` returns the `BackboneSpec` of a backbone model it recognises, else None.

    Example:
        >>> from tfxfer.backbones import register_spec_resolver
        >>> def no_spec(backbone):
        ...     return None
        >>> register_spec_resolver(no_spec) is no_spec
        True
    """
    if not callable(resolver):
        raise ArgumentTypeError("resolver", resolver, "a callable backbone -> BackboneSpec | None")
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)
    return resolver


def spec_of(backbone) -> BackboneSpec:
    """The `BackboneSpec` of a built backbone model: by its name (catalog, or a user-defined spec that
    built it in this process), else from the first registered resolver that recognises it.

    Example:
        >>> from tfxfer.backbones import get_spec, spec_of
        >>> spec_of(get_spec("mobilenet_v2").build(input_shape=(32, 32, 3), weights=None)).name
        'mobilenet_v2'
    """
    try:
        return get_spec(backbone.name)
    except UnknownNameError:
        for resolver in _RESOLVERS:
            spec = resolver(backbone)
            if spec is not None:
                return spec
        if type(backbone).__module__.startswith("keras_hub."):
            raise ModelError(
                f"No layer groups for the keras-hub backbone {backbone.name!r}: import tfxfer.text.specs (it "
                "registers text encoders), or pass spec=tfxfer.text.text_spec(backbone)") from None
        raise
