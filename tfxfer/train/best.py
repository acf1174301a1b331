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

import keras
import numpy as np


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
    """

    def __init__(self, monitor: str = "val_loss", *, restore: bool = True):
        super().__init__()
        self.monitor, self.restore = str(monitor), bool(restore)
        self.best, self.best_epoch, self._weights, self._first = None, None, None, None

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self._weights, self._first = None, None, None, None

    def on_epoch_end(self, epoch, logs=None):
        if self._first is None:
            self._first = epoch
        value = (logs or {}).get(self.monitor)
        if value is not None and better(float(value), self.best, monitor=self.monitor):
            self.best, self.best_epoch = float(value), epoch - self._first
            if self.restore:
                self._weights = [np.array(w) for w in self.model.get_weights()]

    def on_train_end(self, logs=None):
        if self._weights is not None:
            self.model.set_weights(self._weights)
        self._weights = None

    def get_config(self):
        return {"monitor": self.monitor, "restore": self.restore}
