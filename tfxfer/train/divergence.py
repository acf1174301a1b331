"""`DivergenceGuard`: the one divergence stop of every training step (head, cached or end to end, and unfreezing).

It is `tfxfer.reliability.StopOnDivergence` (stop at the first NaN/Inf loss or weight) plus two things a
training step needs:

* an **exploding loss** stops too: the running training loss of an epoch above ``explode_factor`` times the
  first one of the fit (at least ``explode_floor``), the usual sign of a learning rate that is too high
  before anything becomes NaN;
* the **last good weights are put back** the moment it stops: the weights at the end of the last epoch whose
  loss and weights were finite (or those the fit started from), so the caller's model is usable and the
  validation and best-epoch bookkeeping of that epoch see good weights.

When ``fit`` ends it raises `tfxfer.errors.TrainingDivergedError` naming the epoch, the batch, the value,
which weights were restored and the last good checkpoint. Put it last in the callback list: the callbacks
before it (best-epoch restore, checkpoints, logs) finish their ``on_train_end`` first.

Example:
    >>> import keras, numpy as np
    >>> from tfxfer.errors import TrainingDivergedError
    >>> from tfxfer.train.divergence import DivergenceGuard
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(1e30), "mse")
    >>> start = model.get_weights()
    >>> x = np.ones((8, 2), "float32") * 1e10
    >>> try:
    ...     model.fit(x, x[:, :1], epochs=3, batch_size=4, verbose=0, callbacks=[DivergenceGuard()])
    ... except TrainingDivergedError as e:
    ...     print("diverged at epoch", e.epoch)
    diverged at epoch 0
    >>> all(np.array_equal(a, b) for a, b in zip(model.get_weights(), start))  # the start's weights are back
    True
"""

from __future__ import annotations

import math
import os

import keras
import numpy as np

from tfxfer.errors import TrainingDivergedError
from tfxfer.reliability.divergence import StopOnDivergence
from tfxfer.reliability.training_state import latest_state
from tfxfer.utils.validate import check_float

#: A running training loss this many times the first one of the fit counts as divergence.
EXPLODE_FACTOR = 100.0


def _value(v) -> float:
    try:
        return float(np.asarray(v))
    except (TypeError, ValueError):
        return float("nan")


class DivergenceGuard(StopOnDivergence):
    """Stop on a NaN/Inf or exploding loss (or a NaN/Inf weight), put back the last good weights, raise.

    Args:
        explode_factor: stop when the epoch's running ``loss`` exceeds this multiple of the first running
            loss of the fit (``max(first, explode_floor)``); None checks only for NaN/Inf.
        explode_floor: the smallest reference loss (a fit starting near 0 loss may still wobble).
        checkpoint_dir: a `tfxfer.reliability.ResumableCheckpoint` folder, named in the error.
        monitor: log keys checked after every batch and at each epoch end (with their ``val_`` twins).

    ``restored_epoch`` is the epoch (of the fit, 0-based) whose end weights were put back, or None for
    the weights the fit started from; ``diverged`` describes the stop (``reason``: "non-finite" or
    "exploded"). A callback is never inside a saved model, so it is not registered with Keras;
    ``get_config`` / ``from_config`` round-trip it.
    """

    def __init__(self, *, explode_factor: float | None = EXPLODE_FACTOR, explode_floor: float = 0.1,
                 checkpoint_dir=None, monitor=("loss",)):
        super().__init__(monitor=monitor, check_weights=True, raise_error=True,
                         checkpoint_dir=os.fspath(checkpoint_dir) if checkpoint_dir is not None else None)
        self.explode_factor = check_float("explode_factor", explode_factor, low=1, low_open=True, allow_none=True)
        self.explode_floor = check_float("explode_floor", explode_floor, low=0)
        self._good = self.restored_epoch = self._reference = None
        self._good_epoch = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._good, self._good_epoch, self.restored_epoch, self._reference = self.model.get_weights(), None, None, None
        self._restored = False

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        if self.diverged is None and self.explode_factor is not None and logs and "loss" in logs:
            loss = _value(logs["loss"])
            if self._reference is None:
                if math.isfinite(loss):
                    self._reference = max(loss, self.explode_floor)
            elif loss > self.explode_factor * self._reference:
                self._stop("loss", loss, batch)
                self.diverged["reason"] = "exploded"
        if self.diverged is not None:
            self._restore()

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.diverged is not None:
            self._restore()
        else:
            self._good, self._good_epoch = self.model.get_weights(), epoch

    def _restore(self):
        if self._restored:
            return
        self.diverged.setdefault("reason", "non-finite")
        self.model.set_weights(self._good)
        self.restored_epoch, self._restored = self._good_epoch, True

    def on_train_end(self, logs=None):
        if self.diverged is None:
            self._good = None
            return
        self._restore()
        self._good = None
        d = self.diverged
        where = f"epoch {d['epoch']}" + (f", batch {d['batch']}" if d["batch"] is not None else "")
        what = (f"the running training loss exploded to {d['value']:.4g} (over {self.explode_factor:g}x its "
                f"first value {self._reference:.4g})" if d["reason"] == "exploded" else f"{d['key']} = {d['value']}")
        kept = (f"the weights of the end of epoch {self.restored_epoch} (the last good epoch) were put back"
                if self.restored_epoch is not None else "the weights the step started from were put back")
        last = None
        if self.checkpoint_dir is not None:
            state = latest_state(self.checkpoint_dir)
            last = state.path if state is not None else None
        raise TrainingDivergedError(
            f"Training diverged at {where}: {what}; {kept}."
            + (f" The last good checkpoint is {last}." if last else "")
            + " Usual causes: a learning rate that is too high (try 10x lower), NaN/Inf in the inputs or "
              "labels, or a loss that does not match the labels; gradient clipping (clipnorm=1.0) also helps.",
            epoch=d["epoch"], batch=d["batch"], value=d["value"], checkpoint=last,
        )

    def get_config(self):
        return {"explode_factor": self.explode_factor, "explode_floor": self.explode_floor,
                "checkpoint_dir": self.checkpoint_dir, "monitor": list(self.monitor)}
