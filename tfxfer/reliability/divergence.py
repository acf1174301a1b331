"""`StopOnDivergence`: stop at the first NaN/Inf loss (or weight) with a message that says what to do.

Keras's ``TerminateOnNaN`` stops silently and leaves the broken weights in place. This callback
stops at the batch where the loss stopped being finite, raises `TrainingDivergedError` when
``fit`` ends (naming the epoch, batch and last good checkpoint), and, paired with
`tfxfer.reliability.ResumableCheckpoint` (which never saves a non-finite state), keeps the last good
checkpoint to resume from.

Example:
    >>> import keras, numpy as np
    >>> from tfxfer.reliability import StopOnDivergence, TrainingDivergedError
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(1e30), "mse")
    >>> x = np.ones((8, 2), "float32") * 1e10
    >>> try:
    ...     model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[StopOnDivergence()])
    ... except TrainingDivergedError as e:
    ...     print("diverged at epoch", e.epoch)
    diverged at epoch 0
"""

from __future__ import annotations

import math

import keras
import numpy as np

from tfxfer.errors import ArgumentTypeError, TrainingDivergedError
from tfxfer.reliability.training_state import latest_state


def _finite(value) -> bool:
    try:
        return math.isfinite(float(np.asarray(value)))
    except (TypeError, ValueError):
        return True


@keras.saving.register_keras_serializable(package="tfxfer")
class StopOnDivergence(keras.callbacks.Callback):
    """Stop training when a monitored value or a weight becomes NaN/Inf.

    Args:
        monitor: log keys checked after every batch ("loss") and at every epoch end (all of them,
            plus ``val_`` versions).
        check_weights: also check every trainable weight at each epoch end.
        raise_error: raise `TrainingDivergedError` when ``fit`` returns (False: only stop and set
            ``self.diverged``).
        checkpoint_dir: a `ResumableCheckpoint` folder, named in the message as the state to resume.
    """

    def __init__(self, *, monitor=("loss",), check_weights: bool = True, raise_error: bool = True,
                 checkpoint_dir=None):
        super().__init__()
        if isinstance(monitor, str):
            monitor = (monitor,)
        if not isinstance(monitor, (list, tuple)) or not all(isinstance(m, str) for m in monitor):
            raise ArgumentTypeError("monitor", monitor, "a log key or a list of log keys")
        self.monitor = tuple(monitor)
        self.check_weights = bool(check_weights)
        self.raise_error = bool(raise_error)
        self.checkpoint_dir = checkpoint_dir
        self.diverged = None

    def on_train_begin(self, logs=None):
        self.diverged = None
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _stop(self, key, value, batch=None):
        if self.diverged is None:
            self.diverged = {"epoch": self._epoch, "batch": batch, "key": key, "value": float(np.asarray(value))}
        self.model.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        for key in self.monitor:
            if logs and key in logs and not _finite(logs[key]):
                self._stop(key, logs[key], batch)
                return

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        keys = [*self.monitor, *(f"val_{k}" for k in self.monitor)]
        for key in keys:
            if key in logs and not _finite(logs[key]):
                self._stop(key, logs[key])
                return
        if self.check_weights:
            for variable in self.model.trainable_variables:
                if not np.all(np.isfinite(np.asarray(variable.numpy()))):
                    self._stop(f"weight {variable.path}", float("nan"))
                    return

    def on_train_end(self, logs=None):
        if self.diverged is None or not self.raise_error:
            return
        d = self.diverged
        where = f"epoch {d['epoch']}" + (f", batch {d['batch']}" if d["batch"] is not None else "")
        last = None
        if self.checkpoint_dir is not None:
            state = latest_state(self.checkpoint_dir)
            last = state.path if state is not None else None
        keep = (f" The last good checkpoint is {last} (not overwritten); resume from it with a lower "
                "learning rate." if last else " No checkpoint was saved before it.")
        raise TrainingDivergedError(
            f"Training diverged at {where}: {d['key']} = {d['value']}. The model's weights may now be "
            f"non-finite.{keep} Usual causes: a learning rate that is too high (try 10x lower), "
            "NaN/Inf in the inputs or labels, or a loss that does not match the labels; gradient "
            "clipping (optimizer clipnorm=1.0) also helps.",
            epoch=d["epoch"], batch=d["batch"], value=d["value"], checkpoint=last,
        )

    def get_config(self):
        return {"monitor": list(self.monitor), "check_weights": self.check_weights,
                "raise_error": self.raise_error, "checkpoint_dir": self.checkpoint_dir}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
