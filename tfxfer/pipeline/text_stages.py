"""Text classification and NER stages (wired to `tfxfer.text` when it is ready)."""

from __future__ import annotations

from tfxfer.errors import ConfigError


def text_stages(cfg) -> list:
    raise ConfigError(f"task `{cfg.task}` is not available yet in this tfxfer (tfxfer.text has no usable API yet)")
