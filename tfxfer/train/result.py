"""`FineTuneResult`: what a training run did, for images, text and NER alike.

Example:
    >>> from tfxfer.train.result import FineTuneResult
    >>> result = FineTuneResult(history={"loss": [0.9, 0.5]}, stages=[], head_epochs=1)
    >>> result.final("loss")
    0.5
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class FineTuneResult:
    """Per-epoch ``history`` (head and unfreezing epochs merged, in order), the ``stages`` applied
    (each ``{"epoch", "trainable_groups", "learning_rate", "cached_features"[, "l2sp"]}``) and
    ``head_epochs`` (where the unfreezing epochs begin).

    ``steps`` holds one entry per step that ran, ``{"name": "head" | "unfreeze", "epochs",
    "history", "wall_s", "monitor", "best_epoch", "best"}``: its own history, its wall time in
    seconds and the epoch (0-based within the step) whose weights were restored.
    ``selection`` says what the unfreezing bought: ``{"monitor", "head", "fine_tuned", "kept"}`` —
    the validation score before and after the unfreezing step and which model was kept
    ("fine_tuned" or "head"; None without validation data). ``test`` holds the test-set
    metrics when ``fine_tune(test=...)`` was given, ``tta`` the test-time augmentation report
    (`tfxfer.train.tta.evaluate_tta`) when ``tta=`` was too. ``settings`` records every value the run used
    (the defaults it picked included). ``notes`` are plain sentences about choices made for the user.

    ``resumed_from`` names the checkpoint a resumed run continued from. ``l2sp`` is None without
    L2-SP, else ``{"alpha", "anchored", "mean_drift", "max_drift"}``: the strength, how many backbone
    kernels were anchored, and their relative distance ``||w - w_pretrained|| / ||w_pretrained||``
    at the end.
    """

    history: dict
    stages: list
    head_epochs: int
    resumed_from: str | None = None
    l2sp: dict | None = None
    steps: list = dataclasses.field(default_factory=list)
    selection: dict | None = None
    test: dict | None = None
    settings: dict = dataclasses.field(default_factory=dict)
    tta: dict | None = None
    notes: list = dataclasses.field(default_factory=list)

    def final(self, metric: str):
        """The last value of ``metric`` (e.g. "val_accuracy"), or None if it was not logged."""
        values = self.history.get(metric)
        return values[-1] if values else None

    def merge(self, history: dict, *, start: int = 0) -> None:
        """Put per-epoch ``history`` (``{key: [values]}``) at epoch ``start`` onwards (a resumed step
        replaces what it re-ran)."""
        for key, values in history.items():
            self.history[key] = self.history.get(key, [])[:start] + [float(v) for v in values]
