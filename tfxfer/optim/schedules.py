"""`WarmupSchedule`: linear warmup into cosine, linear or constant decay; serializable.

Example:
    >>> from tfxfer.optim import WarmupSchedule
    >>> s = WarmupSchedule(peak_learning_rate=1e-3, warmup_steps=10, decay_steps=90)
    >>> [round(float(s(step)), 6) for step in (0, 5, 10, 100)]
    [0.0, 0.0005, 0.001, 0.0]
"""

from __future__ import annotations

import math

import keras
from keras import ops

from tfxfer.errors import ArgumentError
from tfxfer.utils.validate import check_float, check_int

DECAYS = ("cosine", "linear", "constant")


@keras.saving.register_keras_serializable(package="tfxfer")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from ``initial_learning_rate`` to ``peak_learning_rate`` over ``warmup_steps``,
    then ``decay`` ("cosine", "linear" or "constant") to ``final_learning_rate`` over ``decay_steps``.

    After ``warmup_steps + decay_steps`` the rate stays at ``final_learning_rate`` ("constant" keeps
    the peak). Every constructor argument is returned by ``get_config``.

    Rates are finite numbers (``peak_learning_rate`` > 0, ``initial_learning_rate`` and
    ``final_learning_rate`` >= 0) and step counts ints >= 0; anything else (2.7, NaN, "ten") raises an
    `ArgumentError` naming the argument, so a schedule never yields NaN or a negative rate.
    """

    def __init__(
        self,
        peak_learning_rate: float,
        warmup_steps: int,
        decay_steps: int = 0,
        *,
        decay: str = "cosine",
        initial_learning_rate: float = 0.0,
        final_learning_rate: float = 0.0,
    ):
        peak_learning_rate = check_float("peak_learning_rate", peak_learning_rate, low=0, low_open=True)
        warmup_steps = check_int("warmup_steps", warmup_steps, low=0)
        decay_steps = check_int("decay_steps", decay_steps, low=0)
        if not isinstance(decay, str) or decay not in DECAYS:
            raise ArgumentError("decay", decay, "must be one of " + ", ".join(DECAYS))
        if decay != "constant" and decay_steps == 0:
            raise ArgumentError("decay_steps", decay_steps, f"must be > 0 for decay={decay!r}")
        self.peak_learning_rate = peak_learning_rate
        self.warmup_steps = warmup_steps
        self.decay_steps = decay_steps
        self.decay = decay
        self.initial_learning_rate = check_float("initial_learning_rate", initial_learning_rate, low=0)
        self.final_learning_rate = check_float("final_learning_rate", final_learning_rate, low=0)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warm = float(max(self.warmup_steps, 1))
        warmup_lr = self.initial_learning_rate + (peak - self.initial_learning_rate) * ops.minimum(step / warm, 1.0)
        if self.decay == "constant":
            after = ops.convert_to_tensor(peak, "float32")
        else:
            progress = ops.clip((step - self.warmup_steps) / float(self.decay_steps), 0.0, 1.0)
            if self.decay == "cosine":
                shape = 0.5 * (1.0 + ops.cos(math.pi * progress))
            else:
                shape = 1.0 - progress
            after = self.final_learning_rate + (peak - self.final_learning_rate) * shape
        if self.warmup_steps == 0:
            return after
        return ops.where(step < self.warmup_steps, warmup_lr, after)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "decay": self.decay,
            "initial_learning_rate": self.initial_learning_rate,
            "final_learning_rate": self.final_learning_rate,
        }
