"""The plan a checkpoint folder was written under, so a resume with other arguments is refused.

`fine_tune` writes ``plan.json`` (epochs, rates, stages, batch size, seed: everything that decides
which epoch a checkpoint is and what it means) into ``checkpoint_dir`` when a run starts there. A
later call on the same folder resumes only with the same plan: with other arguments it would
continue (or, for a finished run, silently hand back) a run that is not the one asked for.

Example:
    >>> import tempfile
    >>> from tfxfer.train.checkpoint_plan import check_plan
    >>> folder = tempfile.mkdtemp()
    >>> check_plan(folder, {"head_epochs": 2, "epochs": 3})  # a new run: the plan is recorded
    >>> check_plan(folder, {"head_epochs": 2, "epochs": 5})  # nothing saved yet: the new plan replaces it
    >>> import json, os; json.load(open(os.path.join(folder, "plan.json")))["epochs"]
    5

Once a step has saved an epoch there, another plan is an `ArgumentError` naming what differs.
"""

from __future__ import annotations

import json
import os

from tfxfer.errors import ArgumentError
from tfxfer.utils.atomic import atomic_write_json

PLAN_FILE = "plan.json"
PHASES = ("head", "unfreeze")  # the subfolders `fine_tune` checkpoints its two steps in
#: The arguments whose change makes a checkpoint mean another run.
PLAN_KEYS = ("head_epochs", "epochs", "base_lr", "unfreeze_lr_factor", "layer_decay", "stages", "warmup_epochs",
             "warmup_share", "lr_decay", "optimizer", "weight_decay", "batch_size", "cached_features", "monitor",
             "seed", "l2sp", "label_smoothing", "average_weights")


def check_plan(checkpoint_dir, settings: dict) -> None:
    """Record ``settings``'s plan in a new ``checkpoint_dir``, or check it against the recorded one.

    Raises:
        ArgumentError: the folder holds a run with another plan (names each differing argument).
    """
    plan = json.loads(json.dumps({k: settings.get(k) for k in PLAN_KEYS if k in settings}, default=str))
    path = os.path.join(os.fspath(checkpoint_dir), PLAN_FILE)
    if not os.path.exists(path) or not _holds_a_checkpoint(checkpoint_dir):  # nothing trained there yet
        os.makedirs(os.fspath(checkpoint_dir), exist_ok=True)
        atomic_write_json(path, plan)
        return
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict):
        raise ArgumentError("checkpoint_dir", os.fspath(checkpoint_dir), f"holds an unreadable {PLAN_FILE}",
                            hint="Use a fresh folder for a new run")
    changed = {k: (saved.get(k), plan.get(k)) for k in {*saved, *plan} if saved.get(k) != plan.get(k)}
    if changed:
        said = ", ".join(f"{k}={old!r} there, {new!r} now" for k, (old, new) in sorted(changed.items()))
        raise ArgumentError("checkpoint_dir", os.fspath(checkpoint_dir),
                            f"must be a fresh folder or hold a run of the same plan; got one whose {said}",
                            hint="Pass the arguments of the run it holds to resume it, or a fresh folder for a new run")


def _holds_a_checkpoint(checkpoint_dir) -> bool:
    """Whether a step (``head`` / ``unfreeze`` subfolder) of ``checkpoint_dir`` has saved an epoch."""
    from tfxfer.reliability.training_state import latest_state

    return any(latest_state(os.path.join(os.fspath(checkpoint_dir), step)) is not None for step in PHASES)
