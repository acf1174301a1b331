"""`Stateful`: the protocol of training state that a checkpoint saves and restores.

A callback whose effect on training is not in the model's or optimizer's variables (the stage of
`tfxfer.freezing.GradualUnfreezing`, a counter, a plan) implements ``get_state()`` (a JSON-able
dict) and ``restore_state(state)``. `tfxfer.reliability.ResumableCheckpoint` stores the state of
every object given as ``stateful=[...]`` after each epoch and hands it back on resume, without
knowing what the objects are. ``restore_state`` runs before the optimizer's variables are
restored, so it may rebuild the optimizer (as staged unfreezing does).

Example:
    >>> import keras
    >>> from tfxfer.reliability.stateful import Stateful
    >>> class Counter(keras.callbacks.Callback):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.epochs_seen = 0
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         self.epochs_seen += 1
    ...     def get_state(self):
    ...         return {"epochs_seen": self.epochs_seen}
    ...     def restore_state(self, state):
    ...         self.epochs_seen = state["epochs_seen"]
    >>> isinstance(Counter(), Stateful), isinstance(keras.callbacks.History(), Stateful)
    (True, False)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Stateful(Protocol):
    """Training state a checkpoint can carry: ``get_state()`` -> JSON-able dict, ``restore_state(state)``."""

    def get_state(self) -> dict:
        """The state to save (JSON-able: str, numbers, bools, None, lists, dicts)."""

    def restore_state(self, state: dict) -> None:
        """Put back a state returned by `get_state` (possibly in a new process)."""
