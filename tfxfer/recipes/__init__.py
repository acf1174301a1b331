"""Recipes as code: strict configuration, a stage runner with fingerprints, run manifests.

* `load_config(path, overrides=[...])` reads a YAML recipe into a frozen `RunConfig`.
* `run_pipeline(cfg, out_dir=...)` runs data -> features -> fine-tune -> [distill] -> [quantize]
  -> evaluate -> export -> verify -> report, skipping unchanged stages, and returns a `RunResult`.

Example:
    >>> from tfxfer.recipes import load_config
    >>> cfg = load_config(text="data: {source: animal_mnist}", overrides=["train.epochs=1"])
    >>> cfg.train.epochs, cfg.model.backbone
    (1, 'efficientnet_lite0')
"""

from tfxfer.recipes.config import RunConfig, config_to_yaml
from tfxfer.recipes.config_loader import load_config
from tfxfer.recipes.run import RunResult, plan_stages, run_pipeline

__all__ = ["RunConfig", "RunResult", "config_to_yaml", "load_config", "plan_stages", "run_pipeline"]
