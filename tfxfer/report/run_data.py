"""Read what a pipeline run left in its directory (the report's only input).

The report never needs the process that trained the model: every number and figure comes from the
JSON / NPZ files the stages wrote, so a report can be rebuilt from a run directory at any time.

Example:
    >>> import tempfile
    >>> load_run(tempfile.mkdtemp())["history"] is None
    True
"""

from __future__ import annotations

import json
import os

import numpy as np

FILES = {
    "manifest": "manifest.json",
    "data": "data/summary.json",
    "history": "model/history.json",
    "metrics": "eval/metrics.json",
    "misclassified": "eval/misclassified.json",
    "export": "export/table.json",
    "gate": "export/gate.json",
}


def _json(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_run(run_dir) -> dict:
    """``{"run_dir", "config", "manifest", "data", "history", "metrics", "misclassified",
    "thumbnails", "export", "gate"}``; a missing file gives None."""
    import yaml

    run_dir = os.fspath(run_dir)
    out = {"run_dir": os.path.abspath(run_dir)}
    for key, rel in FILES.items():
        out[key] = _json(os.path.join(run_dir, rel))
    config_path = os.path.join(run_dir, "config.yaml")
    out["config"] = None
    out["config_text"] = None
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            out["config_text"] = f.read()
        out["config"] = yaml.safe_load(out["config_text"])
    extra = _json(os.path.join(run_dir, "distill", "history.json"))
    if out["history"] and extra:  # distillation continues the training curves
        merged = {k: list(v) for k, v in out["history"]["history"].items()}
        length = max((len(v) for v in merged.values()), default=0)
        for key, values in extra["history"].items():
            merged.setdefault(key, [None] * length)
            merged[key] = merged[key] + list(values)
        out["history"] = dict(out["history"], history=merged,
                              stages=out["history"].get("stages", []) + extra.get("stages", []),
                              lr_steps=out["history"].get("lr_steps", []) + extra.get("lr_steps", []))
    thumbs = os.path.join(run_dir, "eval", "misclassified.npz")
    out["thumbnails"] = None
    if os.path.isfile(thumbs):
        with np.load(thumbs) as z:
            out["thumbnails"] = z["thumbnails"]
    return out
