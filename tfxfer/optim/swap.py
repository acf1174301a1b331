"""Give a compiled model a new optimizer so that what is saved still loads back with its state.

Keras saves the optimizer's *variables* from ``model.optimizer`` but rebuilds the optimizer on load
from the config recorded by ``model.compile``. An unfreezing stage that swaps in a fresh optimizer
(a warmup schedule instead of a fixed rate, another variable set) leaves the two disagreeing, and the
reloaded model silently drops its optimizer state ("Skipping variable loading for optimizer ...: it
has 32 variables whereas the saved optimizer has 31"). `use_optimizer` swaps both together.

Example:
    >>> import keras, numpy as np
    >>> from tfxfer.optim import WarmupSchedule
    >>> from tfxfer.optim.swap import use_optimizer
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> new = keras.optimizers.Adam(WarmupSchedule(peak_learning_rate=1e-3, warmup_steps=1, decay_steps=4))
    >>> use_optimizer(model, new)
    >>> model.get_compile_config()["optimizer"]["class_name"], model.optimizer is new
    ('Adam', True)
"""

from __future__ import annotations

__all__ = ["use_optimizer"]


def use_optimizer(model, optimizer) -> None:
    """Make ``optimizer`` the compiled ``model``'s optimizer, in training and in its saved config."""
    model.optimizer = optimizer
    recorded = getattr(model, "_compile_config", None)  # keras.src.saving.serialization_lib.SerializableDict
    if recorded is not None and isinstance(getattr(recorded, "config", None), dict):
        recorded.config["optimizer"] = optimizer
