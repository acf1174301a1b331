"""The run manifest: everything needed to reproduce and audit a run, as one JSON file.

``manifest.json`` holds the package versions, the resolved configuration, the data fingerprint
(hash of the file list and contents), the random seeds, every artefact with its sha256, the gate
results and the wall time of each stage (and whether it ran or was reused).

Example:
    >>> versions = package_versions()
    >>> "tensorflow" in versions and "keras" in versions
    True
"""

from __future__ import annotations

import datetime
import os
import platform
import sys

from tfxfer.recipes.fingerprint import file_sha256
from tfxfer.utils.atomic import atomic_write_json

#: Distributions whose versions decide whether a run can be reproduced.
PACKAGES = ("tfxfer", "tensorflow", "keras", "keras-hub", "tf-keras", "tensorflow-model-optimization",
            "ai-edge-litert", "numpy", "scipy", "scikit-learn", "pillow", "matplotlib", "pyyaml", "h5py")


def package_versions(names=PACKAGES) -> dict:
    """``{distribution: version or None}`` from installed metadata (nothing is imported)."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _artefacts(ctx) -> dict:
    out = {}
    for record in ctx.records.values():
        for rel in record.get("artefacts", {}):
            path = ctx.abs(rel)
            if os.path.isfile(path):
                out[rel] = {"sha256": file_sha256(path), "bytes": os.path.getsize(path), "stage": record["stage"]}
    return dict(sorted(out.items()))


def build_manifest(ctx, *, status: str, started: str, wall_s: float, command=None, error: str | None = None) -> dict:
    """The manifest of the run in ``ctx`` so far."""
    cfg = ctx.cfg
    data = ctx.outputs.get("data", {})
    verify = ctx.outputs.get("verify")
    stages = {name: {"status": "skipped" if r.get("skipped") else r.get("status"), "wall_s": r.get("wall_s"),
                     "fingerprint": r.get("fingerprint"), "finished": r.get("finished")}
              for name, r in ctx.records.items()}
    return {
        "tfxfer_manifest": 1,
        "name": cfg.name,
        "task": cfg.task,
        "status": status,
        "error": error,
        "started": started,
        "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_s": round(wall_s, 2),
        "command": list(command) if command else None,
        "run_dir": ctx.run_dir,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "seeds": {"seed": cfg.seed, "split_seed": cfg.seed, "keras_set_random_seed": cfg.seed},
        "data": {"source": cfg.data.source, "fingerprint": data.get("data_fingerprint"),
                 "class_names": data.get("class_names"), "sizes": data.get("sizes")},
        "config": cfg.to_dict(),
        "stages": stages,
        "metrics": {k: v for k, v in ctx.outputs.get("evaluate", {}).items() if k != "artefacts"},
        "gate": None if verify is None else {"passed": verify.get("passed"), "failed": verify.get("failed"),
                                             "rows": verify.get("rows"), "deliver": verify.get("deliver")},
        "artefacts": _artefacts(ctx),
    }


def write_manifest(ctx, manifest: dict) -> str:
    path = ctx.path("manifest.json")
    atomic_write_json(path, manifest)
    return path
