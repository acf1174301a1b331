"""Edge stages: distillation (teacher -> student) and quantization-aware training / pruning.

They are wired to `tfxfer.distill` and `tfxfer.quantize` once those packages expose their public
API; until then a recipe that enables them fails at planning time with a `ConfigError` that says
so (nothing runs).
"""

from __future__ import annotations

import importlib


def _has(module: str, *names: str) -> bool:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    return all(hasattr(mod, n) for n in names)


def distill_available() -> bool:
    """Whether `tfxfer.distill` exposes the API these stages call."""
    return _has("tfxfer.distill", "distill")


def quantize_available() -> bool:
    """Whether `tfxfer.quantize` exposes the API these stages call."""
    return _has("tfxfer.quantize", "quantize_aware_training")


def edge_stages(cfg) -> list:
    return []
