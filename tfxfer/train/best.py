"""Best-epoch restore and the "did fine-tuning pay?" check, shared by the head and unfreezing steps.

`RestoreBest` remembers the weights of the epoch with the best monitored validation value and puts
them back when the fit ends (the head step and each unfreezing step); `better` says whether a score
beats another for a monitor ("loss" in its name: lower is better).

Example:
    >>> from tfxfer.train.best import better
    >>> better(0.3, 0.4, monitor="val_loss"), better(0.9, 0.8, monitor="val_accuracy")
    (True, True)
"""

from __future__ import annotations

import os

import keras
import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.reliability.stateful import read_state_arrays, write_state_arrays


def lower_is_better(monitor: str) -> bool:
    """Whether smaller values of ``monitor`` are better (losses and errors)."""
    return "loss" in monitor or "error" in monitor


def better(score, reference, *, monitor: str, min_delta: float = 0.0) -> bool:
    """Whether ``score`` beats ``reference`` by more than ``min_delta`` (None never beats anything,
    anything beats None)."""
    if score is None or not np.isfinite(score):
        return False
    if reference is None or not np.isfinite(reference):
        return True
    return score < reference - min_delta if lower_is_better(monitor) else score > reference + min_delta


@keras.saving.register_keras_serializable(package="tfxfer")
class RestoreBest(keras.callbacks.Callback):
    """Keep the weights of the epoch with the best ``monitor`` and restore them at the end of the fit.

    ``best``/``best_epoch`` (0-based within the fit) describe the kept epoch; without ``monitor`` in
    the logs (no validation data) nothing is kept and the last epoch's weights stay. ``restore=False``
    only tracks the best value (the last epoch's weights stay).

    Resuming: the callback follows the `tfxfer.reliability.Stateful` protocol. ``get_state`` writes the
    best epoch's weights to ``directory`` (an atomic ``.npz``, written when the best changes, the last
    three kept) and returns its name with the best value and epoch; ``restore_state`` reads them back, in
    a fresh process too, so a resumed fit restores the same epoch as an uninterrupted one. Put it
    *before* the `tfxfer.reliability.ResumableCheckpoint` in the callback list (the epoch's best is then
    in the saved state). Weights read back by ``restore_state`` after the fit's last epoch (a fit that
    had already finished) wait in the callback: `apply` (or ``on_train_end``) puts them in the model.
    """

    def __init__(self, monitor: str = "val_loss", *, restore: bool = True, directory=None):
        super().__init__()
        self.monitor, self.restore = str(monitor), bool(restore)
        self.directory = os.fspath(directory) if directory is not None else None
        self.best, self.best_epoch, self._weights, self._first = None, None, None, None
        self._saved, self._saves, self._file = None, 0, None

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self._weights, self._first = None, None, None, None
        self._saved, self._file = None, None

    def on_epoch_end(self, epoch, logs=None):
        if self._first is None:
            self._first = epoch
        logs = logs or {}
        value = logs.get(self.monitor)
        validated = sorted(k for k in logs if k.startswith("val_"))
        if value is None and validated:  # a misspelled monitor kept the head-only model without a word
            raise ArgumentError("monitor", self.monitor, f"must be one of the validation values fit logs: {validated}")
        if value is not None and better(float(value), self.best, monitor=self.monitor):
            self.best, self.best_epoch = float(value), epoch - self._first
            if self.restore:
                self._weights = [np.array(w) for w in self.model.get_weights()]

    def on_train_end(self, logs=None):
        self.apply()

    def apply(self, model=None) -> bool:
        """Put the best epoch's weights (if any wait) into ``model`` (default: the fit's); True if it did."""
        if self._weights is None:
            return False
        (model if model is not None else self.model).set_weights(self._weights)
        self._weights = None
        return True

    # -- Stateful protocol -------------------------------------------------------------------
    def get_state(self) -> dict:
        state = {"monitor": self.monitor, "best": self.best, "best_epoch": self.best_epoch, "first": self._first,
                 "file": None, "sha256": None}
        if self._weights is None:
            return state
        if self.directory is None:
            raise ArgumentError("directory", None, "is needed to checkpoint the best epoch's weights",
                                hint="RestoreBest(..., directory=<a folder next to the checkpoints>)")
        if self._saved is not self._weights:  # the best changed since the last checkpoint: write it
            self._saves += 1
            written = write_state_arrays(self.directory, "best", self._saves,
                                         {f"w{i:06d}": w for i, w in enumerate(self._weights)})
            self._saved, self._file = self._weights, (written["file"], written["sha256"])
        state["file"], state["sha256"] = self._file
        return state

    def restore_state(self, state: dict) -> None:
        if state.get("monitor") != self.monitor:
            raise ArgumentError("monitor", self.monitor,
                                f"must match the checkpoint's monitor {state.get('monitor')!r}")
        self.best, self.best_epoch, self._first = state["best"], state["best_epoch"], state["first"]
        self._weights = self._saved = self._file = None
        if state.get("file") is None:
            return
        self._weights = read_state_arrays(self.directory, state, what="best epoch's weights")
        self._saved, self._file = self._weights, (state["file"], state["sha256"])

    def get_config(self):
        return {"monitor": self.monitor, "restore": self.restore, "directory": self.directory}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfxfer")
class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose counters travel with a checkpoint (`tfxfer.reliability.Stateful`).

    A resumed fit stops at the epoch an uninterrupted one would, and ``stopped`` in the saved state
    says that a step had already ended early (so a resume does not train it further). Put it *before*
    the `tfxfer.reliability.ResumableCheckpoint` in the callback list. The best weights are kept by
    `RestoreBest`, not here.

    Example:
        >>> stopper = ResumableEarlyStopping(monitor="val_loss", patience=2)
        >>> stopper.restore_state({"wait": 1, "best": 0.5, "best_epoch": 3, "stopped_epoch": 0, "stopped": False})
        >>> stopper.get_state()["wait"], stopper.get_state()["best"]
        (1, 0.5)
    """

    def __init__(self, monitor: str = "val_loss", *, patience: int = 5):
        super().__init__(monitor=monitor, patience=int(patience), mode="min" if lower_is_better(monitor) else "max")
        self.stopped = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.stopped = bool(self.model is not None and self.model.stop_training)

    def get_state(self) -> dict:
        best = None if self.best is None or not np.isfinite(self.best) else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch or 0),
                "stopped_epoch": int(self.stopped_epoch), "stopped": bool(self.stopped)}

    def restore_state(self, state: dict) -> None:
        self.wait, self.best = int(state["wait"]), state["best"]
        self.best_epoch, self.stopped_epoch = int(state["best_epoch"]), int(state["stopped_epoch"])
        self.stopped = bool(state["stopped"])

    def get_config(self):
        return {"monitor": self.monitor, "patience": self.patience}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def stopped_early(saved: list) -> bool:
    """Whether a checkpoint's saved stateful entries say a `ResumableEarlyStopping` had ended the fit."""
    return any(e.get("class") == ResumableEarlyStopping.__name__ and e.get("state", {}).get("stopped") for e in saved)
