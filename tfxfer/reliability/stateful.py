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

import hashlib
import io
import os
from typing import Protocol, runtime_checkable

import numpy as np

from tfxfer.errors import CheckpointError
from tfxfer.utils.atomic import atomic_write_bytes


@runtime_checkable
class Stateful(Protocol):
    """Training state a checkpoint can carry: ``get_state()`` -> JSON-able dict, ``restore_state(state)``."""

    def get_state(self) -> dict:
        """The state to save (JSON-able: str, numbers, bools, None, lists, dicts)."""

    def restore_state(self, state: dict) -> None:
        """Put back a state returned by `get_state` (possibly in a new process)."""


def split_stateful(callbacks) -> tuple[list, list]:
    """``(stateful, others)``: the callbacks a checkpoint must carry (`Stateful`; they go before the
    checkpoint, so each epoch's state is complete when it is saved) and the rest, in their order."""
    callbacks = list(callbacks)
    return ([c for c in callbacks if isinstance(c, Stateful)], [c for c in callbacks if not isinstance(c, Stateful)])


def match_states(items, saved: list) -> tuple[list, list, list]:
    """Pair each `Stateful` in ``items`` with its entry of a checkpoint's ``saved`` list (``{"class",
    "state"}``), by class in order: ``(pairs, fresh, left)`` — ``(item, entry)`` pairs, the items the
    checkpoint holds no state for, and the saved entries no item took."""
    left, pairs, fresh = list(saved), [], []
    for item in items:
        k = next((i for i, entry in enumerate(left) if entry["class"] == type(item).__name__), None)
        if k is None:
            fresh.append(item)
        else:
            pairs.append((item, left.pop(k)))
    return pairs, fresh, left


def write_state_arrays(directory, prefix: str, number: int, arrays: dict, *, keep: int = 3) -> dict:
    """Arrays a `Stateful` state refers to: written atomically to ``directory/<prefix>-<number>.npz``
    (the newest ``keep`` such files kept, so the checkpoints still kept can name theirs); returns the
    ``{"file", "sha256"}`` entries for the state (`read_state_arrays` reads them back)."""
    os.makedirs(directory, exist_ok=True)
    name = f"{prefix}-{int(number):06d}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    atomic_write_bytes(os.path.join(directory, name), data)
    for old in sorted(f for f in os.listdir(directory) if f.startswith(f"{prefix}-"))[:-keep]:
        os.remove(os.path.join(directory, old))
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest()}


def read_state_arrays(directory, state: dict, *, what: str) -> list:
    """The arrays `write_state_arrays` wrote for ``state`` (``{"file", "sha256"}``), in name order;
    `tfxfer.errors.CheckpointError` naming ``what`` and the file when it is missing or differs."""
    path = os.path.join(directory or "", state["file"])
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"The {what} {path} named by the checkpoint cannot be read: {e}") from e
    if hashlib.sha256(data).hexdigest() != state["sha256"]:
        raise CheckpointError(f"The {what} {path} do not match the checkpoint (sha256 differs)")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return [arrays[k] for k in sorted(arrays.files)]

