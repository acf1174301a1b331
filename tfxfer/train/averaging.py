"""`WeightAveraging`: an exponential (EMA) or uniform (SWA) average of the weights over a step's last epochs.

* ``mode="ema"``: after every training batch of the averaged epochs, ``avg = momentum * avg + (1 -
  momentum) * w`` (the average starts at the weights of the first averaged batch);
* ``mode="swa"``: at the end of every averaged epoch, ``avg = (n * avg + w) / (n + 1)`` (stochastic weight
  averaging over epoch ends).

Only trainable variables are averaged (a variable that becomes trainable later starts its own average).
The averaged epochs are the fit's last ``last_epochs`` (None: all). `apply` writes the average into the
model; the unfreezing step (`tfxfer.train.unfreeze.unfreeze_step`) keeps it only when it scores better on
validation data than the best epoch's weights.

Resuming: the callback follows the `tfxfer.reliability.Stateful` protocol. Its ``get_state`` writes the
running average to ``directory`` (an atomic ``.npz``, the last three kept) and returns the file's name and
counters; ``restore_state`` loads it back, in a fresh process too, so a resumed run averages exactly as an
uninterrupted one. Put it before the `ResumableCheckpoint` in the callback list (the epoch's update is
then in the saved state).

Example:
    >>> import keras, numpy as np
    >>> from tfxfer.train.averaging import WeightAveraging
    >>> keras.utils.set_random_seed(0)
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> swa = WeightAveraging("swa", last_epochs=2)
    >>> x = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    >>> _ = model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[swa])
    >>> swa.count, len(swa.average())
    (2, 2)
    >>> swa.apply(model)  # the model now holds the mean of its weights after epochs 1 and 2
"""

from __future__ import annotations

import os
import re

import keras
import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.reliability.stateful import read_state_arrays, write_state_arrays
from tfxfer.utils.validate import check_float, check_int

MODES = ("ema", "swa")


def _key(path: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.-]", "__", path)


@keras.saving.register_keras_serializable(package="tfxfer")
class WeightAveraging(keras.callbacks.Callback):
    """Average the trainable weights (EMA per batch or SWA per epoch) over the fit's last ``last_epochs``.

    Args:
        mode: "ema" or "swa".
        last_epochs: how many of the fit's last epochs are averaged (None: every epoch).
        momentum: the EMA's decay per batch ("ema" only).
        directory: where `get_state` writes the running average for a checkpoint (needed only when a
            `tfxfer.reliability.ResumableCheckpoint` carries this callback).

    ``count`` is the number of updates so far (batches for EMA, epochs for SWA). Registered with Keras
    (``tfxfer>WeightAveraging``) so that a `tfxfer.reliability.ResumableCheckpoint` carrying it
    round-trips through ``get_config``.
    """

    def __init__(self, mode: str = "ema", *, last_epochs: int | None = None, momentum: float = 0.99, directory=None):
        super().__init__()
        if mode not in MODES:
            raise ArgumentError("mode", mode, "must be one of " + ", ".join(MODES))
        self.mode = mode
        self.last_epochs = check_int("last_epochs", last_epochs, low=1, allow_none=True)
        self.momentum = check_float("momentum", momentum, low=0, high=1, high_open=True)
        self.directory = os.fspath(directory) if directory is not None else None
        self.count = 0
        self._avg: dict[str, np.ndarray] = {}
        self._n: dict[str, int] = {}
        self._saves = 0
        self._start = 0

    # -- averaging ---------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        end = int((self.params or {}).get("epochs", 0))
        self._start = 0 if self.last_epochs is None else max(0, end - self.last_epochs)
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _averaging(self) -> bool:
        return self._epoch is not None and self._epoch >= self._start

    def _update(self, weight_of_new) -> None:
        for v in self.model.trainable_variables:
            w = np.asarray(v.numpy(), dtype="float64")
            old = self._avg.get(v.path)
            n = self._n.get(v.path, 0)
            if old is None or old.shape != w.shape:
                self._avg[v.path], self._n[v.path] = w, 1
            else:
                share = weight_of_new(n)
                old += share * (w - old)
                self._n[v.path] = n + 1
        self.count += 1

    def on_train_batch_end(self, batch, logs=None):
        if self.mode == "ema" and self._averaging():
            self._update(lambda n: 1.0 - self.momentum)

    def on_epoch_end(self, epoch, logs=None):
        if self.mode == "swa" and self._averaging():
            self._update(lambda n: 1.0 / (n + 1))

    def average(self) -> dict:
        """``{variable path: averaged value (float32)}`` of every variable averaged so far."""
        return {k: v.astype("float32") for k, v in self._avg.items()}

    def apply(self, model=None) -> None:
        """Write the average into ``model`` (default: the model of the fit); variables never averaged stay."""
        model = model if model is not None else self.model
        avg = self.average()
        for v in model.weights:
            if v.path in avg:
                v.assign(avg[v.path].astype(v.dtype))

    def reset(self) -> None:
        """Forget the average (a new step)."""
        self._avg, self._n, self.count = {}, {}, 0

    # -- Stateful protocol -------------------------------------------------------------------
    def get_state(self) -> dict:
        if self.directory is None:
            raise ArgumentError("directory", None, "is needed to checkpoint the averaged weights",
                                hint="WeightAveraging(..., directory=<a folder next to the checkpoints>)")
        self._saves += 1
        arrays = {f"a{i:05d}_{_key(k)}": v for i, (k, v) in enumerate(self._avg.items())}
        written = write_state_arrays(self.directory, "average", self._saves, arrays)
        return {"mode": self.mode, "count": self.count, "saves": self._saves, **written, "paths": list(self._avg),
                "updates": [self._n[k] for k in self._avg]}

    def restore_state(self, state: dict) -> None:
        if state.get("mode") != self.mode:
            raise ArgumentError("mode", self.mode, f"must match the checkpoint's averaging mode {state.get('mode')!r}")
        values = read_state_arrays(self.directory, state, what="averaged weights")
        self._avg = {p: np.asarray(v, dtype="float64") for p, v in zip(state["paths"], values)}
        self._n = dict(zip(state["paths"], state["updates"]))
        self.count, self._saves = int(state["count"]), int(state["saves"])

    def get_config(self):
        return {"mode": self.mode, "last_epochs": self.last_epochs, "momentum": self.momentum,
                "directory": self.directory}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
