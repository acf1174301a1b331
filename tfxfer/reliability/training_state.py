"""The on-disk training state of `ResumableCheckpoint`: format, reading, and restore helpers.

A checkpoint directory holds ``latest.json`` (a pointer, replaced atomically) and one folder per
kept epoch (``epoch-NNNNN/arrays.npz`` + ``state.json``). `latest_state` reads the newest complete
one; `resume` gives the ``initial_epoch`` that continues the run.

Example:
    >>> from tfxfer.reliability.training_state import latest_state
    >>> latest_state("/nonexistent/run") is None
    True
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading

from tfxfer.errors import ArgumentTypeError, ModelError

FORMAT = 2  # 2: stateful callbacks (was: one "unfreezer" entry)
LATEST = "latest.json"
#: Keys every checkpoint's ``state.json`` holds (a missing one: the checkpoint is damaged).
REQUIRED = ("epoch", "model_variables", "optimizer_variables", "python_random", "numpy_random")


# The background write of each checkpoint folder still in flight in this process (its real path ->
# the writing thread): an exception that ends `fit` leaves the last epoch's write running.
_WRITERS: dict = {}
_WRITERS_LOCK = threading.Lock()


def track_writer(directory, thread: threading.Thread) -> None:
    """Record ``thread`` as the one writing a checkpoint into ``directory`` (`latest_state` waits for it)."""
    with _WRITERS_LOCK:
        _WRITERS[os.path.realpath(directory)] = thread


def wait_for_writer(directory) -> None:
    """Wait for a checkpoint write into ``directory`` still in flight in this process, so what is
    read next is the newest checkpoint (not the one before it)."""
    key = os.path.realpath(directory)
    with _WRITERS_LOCK:
        thread = _WRITERS.get(key)
    if thread is None or thread is threading.current_thread():
        return
    thread.join()
    with _WRITERS_LOCK:
        if _WRITERS.get(key) is thread:
            del _WRITERS[key]


@dataclasses.dataclass
class TrainingState:
    """The newest complete checkpoint of a run (see `latest_state`)."""

    path: str
    epoch: int
    logs: dict
    meta: dict

    @property
    def initial_epoch(self) -> int:
        """The ``initial_epoch`` that continues the run."""
        return self.epoch + 1


def latest_state(directory) -> TrainingState | None:
    """The newest complete checkpoint in ``directory``, or None when there is none yet."""
    if not isinstance(directory, (str, os.PathLike)):
        raise ArgumentTypeError("directory", directory, "a folder path")
    directory = os.fspath(directory)
    wait_for_writer(directory)  # a write this process started (e.g. before an exception ended fit)
    pointer = os.path.join(directory, LATEST)
    if not os.path.isfile(pointer):
        return None
    try:
        with open(pointer, encoding="utf-8") as f:
            latest = json.load(f)
        path = os.path.join(directory, os.path.basename(str(latest["path"])))
        with open(os.path.join(path, "state.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"The checkpoint in {directory} is unreadable ({type(exc).__name__}: {exc}); "
                         "delete the folder to start over") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{path}/state.json holds a {type(meta).__name__}, not a checkpoint's state; "
                         "delete the folder to start over")
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path} has checkpoint format {meta.get('format')!r}; this tfxfer reads {FORMAT}")
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise ModelError(f"{path}/state.json lacks {', '.join(missing)}: the checkpoint is damaged; "
                         "delete the folder to start over")
    try:
        epoch = int(meta["epoch"])
    except (TypeError, ValueError):
        raise ModelError(f"{path}/state.json has epoch {meta['epoch']!r}, not a number: the checkpoint is "
                         "damaged; delete the folder to start over") from None
    return TrainingState(path=path, epoch=epoch, logs=meta.get("logs", {}), meta=meta)


def global_seed_state(create: bool = False):
    """The state variable of Keras's global seed generator (used by unseeded ``keras.random``
    calls). Never created while saving: in a multi-worker run only the chief saves, and creating a
    variable there would start a collective broadcast the other workers never join."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.random.seed_generator import GLOBAL_SEED_GENERATOR, global_seed_generator
    except ImportError:  # pragma: no cover - private Keras API moved
        return None
    generator = global_state.get_global_attribute(GLOBAL_SEED_GENERATOR)
    if generator is None and create:
        generator = global_seed_generator()
    return None if generator is None else generator.state


def describe_variables(variables):
    return [[v.path, list(v.shape), str(v.dtype)] for v in variables]


def assign_variables(variables, arrays, prefix, recorded, what, path):
    if len(variables) != len(recorded):
        raise ModelError(f"{path} holds {len(recorded)} {what} variables, the current {what} has "
                         f"{len(variables)}: the checkpoint was written for a different model or stage")
    for i, (variable, (rec_path, shape, _)) in enumerate(zip(variables, recorded)):
        value = arrays[f"{prefix}{i:06d}"]
        if list(value.shape) != list(variable.shape):
            raise ModelError(f"{path}: {what} variable {i} ({rec_path}) has shape {list(value.shape)}, the "
                             f"current one ({variable.path}) {list(variable.shape)}")
        variable.assign(value)


def resume(directory) -> int:
    """The ``initial_epoch`` that continues the run checkpointed in ``directory`` (0: none yet).

    Example:
        >>> from tfxfer.reliability import resume
        >>> resume("/nonexistent/run")
        0
    """
    state = latest_state(directory)
    return 0 if state is None else state.initial_epoch
