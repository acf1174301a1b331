"""`RunContext`: what every stage sees — the resolved config, the run directory, the console,
earlier stages' outputs, and a memo of in-memory objects (loaded data, the trained model).

Example:
    >>> import tempfile
    >>> from tfxfer.recipes.config_loader import load_config
    >>> ctx = RunContext(load_config(text="data: {source: animal_mnist}"), tempfile.mkdtemp())
    >>> ctx.rel(ctx.path("model", "model.keras"))
    'model/model.keras'
"""

from __future__ import annotations

import os

from tfxfer.recipes.console import Console


class RunContext:
    """Shared state of one pipeline run."""

    def __init__(self, cfg, run_dir, console: Console | None = None):
        self.cfg = cfg
        self.run_dir = os.path.abspath(os.fspath(run_dir))
        self.console = console or Console(verbosity=0)
        self.outputs: dict = {}  # stage name -> outputs dict (JSON-safe)
        self.records: dict = {}  # stage name -> stage record (fingerprint, status, wall time)
        self._memo: dict = {}

    def path(self, *parts: str, mkdir: bool = True) -> str:
        """An absolute path inside the run directory (its parent folder is created)."""
        full = os.path.join(self.run_dir, *parts)
        if mkdir:
            os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def rel(self, path: str) -> str:
        """``path`` relative to the run directory, with forward slashes."""
        return os.path.relpath(os.path.abspath(path), self.run_dir).replace(os.sep, "/")

    def abs(self, rel: str) -> str:
        return os.path.join(self.run_dir, rel)

    def memo(self, key: str, factory):
        """``factory()`` once per run; later calls return the same object."""
        if key not in self._memo:
            self._memo[key] = factory()
        return self._memo[key]

    def remember(self, key: str, value) -> None:
        self._memo[key] = value

    def forget(self, key: str) -> None:
        self._memo.pop(key, None)

    @property
    def model_stage(self) -> str:
        """The stage whose ``outputs["model"]`` is the final Keras model."""
        for name in ("quantize", "distill", "finetune"):
            if name in self.outputs and self.outputs[name].get("model"):
                return name
        raise KeyError("no stage produced a model yet")

    def model(self):
        """The final Keras model (in memory if this process trained it, else loaded from disk)."""
        stage = self.model_stage
        rel = self.outputs[stage]["model"]

        def load():
            from tfxfer.reliability import load_model

            return load_model(self.abs(rel), compile=False)

        return self.memo(f"model:{rel}", load)
