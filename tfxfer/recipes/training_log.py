"""`LearningRateLog`: record the learning rate the optimizer actually used, step by step.

The report plots it under the training curves, so warmup, cosine decay and the restart at each
unfreezing stage are visible. It is `tfxfer.reliability.Stateful`: a checkpoint of `tfxfer.fine_tune`
carries it, so a resumed run's log also holds the steps before the interruption.

Example:
    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5)), "mse")
    >>> log = LearningRateLog()
    >>> _ = model.fit(np.zeros((4, 2)), np.zeros(4), batch_size=2, epochs=1, callbacks=[log], verbose=0)
    >>> [round(s["lr"], 3) for s in log.steps]
    [0.05, 0.025]
"""

from __future__ import annotations

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="tfxfer")
class LearningRateLog(keras.callbacks.Callback):
    """Logs ``{"step", "epoch", "lr"}`` after every ``every``-th training batch.

    Args:
        every: log every n-th batch (1 = all).
        epoch_offset: added to the epoch numbers (a second ``fit`` continuing a first one).
        max_points: the log never holds more: when it would, every other entry is dropped and
            ``every`` doubles (the curve keeps its shape; a checkpoint carrying the log stays small
            however long the run). None: unbounded.
    """

    def __init__(self, every: int = 1, epoch_offset: float = 0.0, max_points: int | None = 4096):
        super().__init__()
        from tfxfer.errors import ArgumentError

        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ArgumentError("every", every, "must be an int >= 1")
        if max_points is not None and (isinstance(max_points, bool) or not isinstance(max_points, int)
                                       or max_points < 2):
            raise ArgumentError("max_points", max_points, "must be None or an int >= 2")
        self.every = every
        self.max_points = max_points
        self.epoch_offset = float(epoch_offset)
        self.steps: list = []
        self._step = 0
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every:
            return
        lr = self.model.optimizer.learning_rate
        steps = (self.params or {}).get("steps") or 0
        fraction = (batch + 1) / steps if steps else 0.0
        self.steps.append({"step": self._step, "epoch": self.epoch_offset + self._epoch + fraction,
                           "lr": float(np.asarray(keras.ops.convert_to_numpy(lr)))})
        if self.max_points is not None and len(self.steps) > self.max_points:
            self.every *= 2  # steps logged so far are multiples of the old `every`: keep those of the new one
            self.steps = [s for s in self.steps if s["step"] % self.every == 0]

    def get_state(self) -> dict:
        """The steps logged so far (`tfxfer.reliability.Stateful`: a resumed run keeps the whole log)."""
        return {"steps": list(self.steps), "step": self._step, "epoch_offset": self.epoch_offset,
                "every": self.every}

    def restore_state(self, state: dict) -> None:
        self.steps = [dict(s) for s in state["steps"]]
        self._step = int(state["step"])
        self.epoch_offset = float(state["epoch_offset"])
        self.every = int(state.get("every", self.every))  # doubled by thinning before the interruption

    def get_config(self):
        return {"every": self.every, "epoch_offset": self.epoch_offset, "max_points": self.max_points}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
