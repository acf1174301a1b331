"""`ResumableCheckpoint`: per-epoch, atomic training state, and resuming after ``kill -9``.

What one checkpoint holds (folder ``epoch-NNNNN`` inside the run's checkpoint directory):

* ``arrays.npz``: every model variable (weights, BatchNorm statistics, dropout seed-generator
  states), every optimizer variable (moments, and ``iterations`` — the learning-rate schedule
  position), the Keras global seed-generator state and NumPy's RNG key; no pickle anywhere
  (``numpy.load(allow_pickle=False)``).
* ``state.json``: the epoch, its logs, the state of every ``stateful`` callback (the `Stateful`
  protocol: e.g. the staged-unfreezing callback's stage and the epoch it was applied, so its
  warmup/cosine schedule is planned exactly as before), Python's RNG state, variable paths and
  shapes (checked on restore).

Each folder is written under a temporary name, fsynced and renamed into place; ``latest.json``
is then replaced atomically. A crash, ``kill -9`` or a full disk at any moment leaves the previous
checkpoint complete and ``latest.json`` pointing at it. States with a NaN/Inf loss or weight are
never saved (see `StopOnDivergence`). By default the state is copied in memory at the end of the
epoch and written by a background thread while the next epoch trains (one write in flight at a
time; a write error is raised at the next save or when ``fit`` ends). An exception that ends
``fit`` (Ctrl-C, an error) does not lose the write in flight: `latest_state` in the same process
waits for it, and the interpreter waits for it before it exits.

Resuming continues the same run: weights, optimizer moments, the schedule step, the stateful
callbacks' state (the unfreezing stage) and the random states all come back, so the resumed run ends where the uninterrupted one
would. Data order: use `EpochShuffle` (or unshuffled data) so epoch *k* sees the same batches.

Example:
    >>> import keras, numpy as np, tempfile
    >>> from tfxfer.reliability import ResumableCheckpoint
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("adam", "mse")
    >>> ckpt = ResumableCheckpoint(tempfile.mkdtemp())
    >>> x = np.ones((8, 2), "float32")
    >>> _ = model.fit(x, x[:, :1], epochs=2, initial_epoch=ckpt.initial_epoch, callbacks=[ckpt], verbose=0)
    >>> ckpt.initial_epoch  # a restarted script would continue from epoch 2
    2
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import threading
import zipfile

import keras
import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, CheckpointError, ModelError
from tfxfer.reliability.stateful import Stateful, match_states
from tfxfer.reliability.training_state import (  # noqa: F401  (TrainingState, latest_state, resume: re-exported)
    FORMAT,
    LATEST,
    TrainingState,
    assign_variables,
    describe_variables,
    global_seed_state,
    latest_state,
    resume,
    track_writer,
)
from tfxfer.utils.atomic import atomic_path, atomic_write_json
from tfxfer.utils.validate import check_int


def _check_stateful(stateful) -> list:
    if stateful is None:
        return []
    if not isinstance(stateful, (list, tuple)):
        raise ArgumentTypeError("stateful", stateful, "a list of callbacks with get_state() / restore_state(state)")
    out = []
    for item in stateful:
        if isinstance(item, dict):  # from get_config
            item = keras.saving.deserialize_keras_object(item)
        if not isinstance(item, Stateful):
            raise ArgumentTypeError("stateful", item, "a list of objects with get_state() and restore_state(state) "
                                    "(the tfxfer.reliability.Stateful protocol)")
        out.append(item)
    return out


def _is_chief(model) -> bool:
    strategy = getattr(model, "distribute_strategy", None)
    return bool(getattr(getattr(strategy, "extended", None), "should_checkpoint", True))


@keras.saving.register_keras_serializable(package="tfxfer")
class ResumableCheckpoint(keras.callbacks.Callback):
    """Save the full training state after every epoch; restore it when ``fit`` resumes.

    Args:
        directory: the run's checkpoint folder (created when needed).
        stateful: callbacks of the run whose state lives outside the variables (the `Stateful`
            protocol, e.g. the run's staged-unfreezing callback): their ``get_state()`` is saved
            with every checkpoint and handed to ``restore_state`` on resume, in this order. Keep
            them in ``fit``'s callbacks too.
        keep: how many checkpoints to keep (>= 1); older ones are deleted after a new one is complete.
        background: write files in a background thread (the epoch only pays for copying the state
            in memory); False writes before ``on_epoch_end`` returns.
        verbose: print a line per save / restore.

    Use ``initial_epoch=ckpt.initial_epoch`` in ``fit``: 0 for a new run, the epoch after the last
    checkpoint for a restarted one. In multi-worker runs only the chief writes; all workers restore.
    """

    def __init__(self, directory, *, stateful=None, keep: int = 2, background: bool = True, verbose: int = 0):
        super().__init__()
        if not isinstance(directory, (str, os.PathLike)):
            raise ArgumentTypeError("directory", directory, "a folder path")
        self.directory = os.fspath(directory)
        self.stateful = _check_stateful(stateful)
        self.keep = check_int("keep", keep, low=1)
        self.background = bool(background)
        self.verbose = int(verbose)
        self._writer = None
        self._write_error = None
        self.saved = []
        self.skipped = []
        self.restored_from = None
        self.history = {}
        self._pending = None

    @property
    def state(self) -> TrainingState | None:
        """The newest complete checkpoint (None for a new run)."""
        return latest_state(self.directory)

    @property
    def initial_epoch(self) -> int:
        state = self.state
        return 0 if state is None else state.initial_epoch

    # -- Keras hooks -------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._pending = self.state
        if self._pending is None:
            self.history = {}

    def on_train_end(self, logs=None):
        self.wait()
        state, self._pending = self._pending, None
        if state is not None and (self.params or {}).get("epochs") == state.initial_epoch:
            self.restore(state)  # the run had already finished: hand back its final state

    def on_epoch_begin(self, epoch, logs=None):
        state, self._pending = self._pending, None
        if state is None:
            return
        if epoch != state.initial_epoch:
            raise ArgumentError(
                "initial_epoch", epoch, f"must be {state.initial_epoch} to resume from {state.path}",
                hint="Pass fit(initial_epoch=ckpt.initial_epoch), or use a new checkpoint directory "
                     "for a new run")
        self.restore(state)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(np.asarray(v)) for k, v in (logs or {}).items() if np.ndim(v) == 0}
        if not all(np.isfinite(v) for v in logs.values()):
            self.skipped.append({"epoch": epoch, "reason": "non-finite logs"})
            return
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        if _is_chief(self.model):
            self.save(epoch, logs)

    # -- save / restore ----------------------------------------------------------------------
    def wait(self) -> None:
        """Wait for the checkpoint being written (if any); raises `CheckpointError` if it failed."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        error, self._write_error = self._write_error, None
        if error is not None:
            raise error

    def save(self, epoch: int, logs: dict | None = None) -> str | None:
        """Checkpoint ``epoch`` now; returns its folder (None if skipped: non-finite). With
        ``background=True`` the files are complete only after `wait` (or the next save)."""
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        arrays = {}
        model_vars = list(model.variables)
        for i, v in enumerate(model_vars):
            arrays[f"model/{i:06d}"] = np.array(v.numpy(), copy=True)
        opt_vars = list(optimizer.variables) if optimizer is not None else []
        for i, v in enumerate(opt_vars):
            arrays[f"optimizer/{i:06d}"] = np.array(v.numpy(), copy=True)
        if not all(np.all(np.isfinite(a)) for a in arrays.values() if a.dtype.kind == "f"):
            self.skipped.append({"epoch": epoch, "reason": "non-finite weights"})
            return None
        seed_state = global_seed_state()
        if seed_state is not None:
            arrays["rng/keras_global"] = np.asarray(seed_state.numpy())
        np_state = np.random.get_state()
        arrays["rng/numpy_keys"] = np.asarray(np_state[1])
        meta = {
            "format": FORMAT,
            "epoch": int(epoch),
            "logs": dict(logs or {}),
            "history": {k: list(v) for k, v in self.history.items()},
            "model_variables": describe_variables(model_vars),
            "optimizer_variables": describe_variables(opt_vars),
            "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
            "stateful": [{"class": type(item).__name__, "state": item.get_state()} for item in self.stateful],
            "python_random": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy_random": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        }
        name = f"epoch-{int(epoch):05d}"
        final = os.path.join(self.directory, name)
        self.wait()  # one write in flight at a time; a failed previous write raises here
        if self.background:
            self._writer = threading.Thread(target=self._write_in_background, args=(epoch, name, arrays, meta),
                                            name=f"tfxfer-checkpoint-{epoch}", daemon=False)
            self._writer.start()
            track_writer(self.directory, self._writer)
        else:
            self._write(epoch, name, arrays, meta)
        return final

    def _write_in_background(self, epoch, name, arrays, meta):
        try:
            self._write(epoch, name, arrays, meta)
        except CheckpointError as exc:
            self._write_error = exc

    def _write(self, epoch, name, arrays, meta):
        final = os.path.join(self.directory, name)
        previous = latest_state(self.directory) if os.path.isdir(self.directory) else None
        try:
            os.makedirs(self.directory, exist_ok=True)
            with atomic_path(final, directory=True) as tmp:
                with open(os.path.join(tmp, "arrays.npz"), "wb") as f:
                    np.savez(f, **arrays)
                    f.flush()
                    os.fsync(f.fileno())
                with open(os.path.join(tmp, "state.json"), "w", encoding="utf-8") as f:
                    json.dump(meta, f, indent=1, sort_keys=True)
                    f.flush()
                    os.fsync(f.fileno())
            atomic_write_json(os.path.join(self.directory, LATEST), {"epoch": int(epoch), "path": name})
        except OSError as exc:
            kept = previous.path if previous is not None else "none (this was the first)"
            reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else exc.strerror or str(exc)
            raise CheckpointError(
                exc.errno, f"The checkpoint of epoch {epoch} could not be written to {final} ({reason}). "
                f"The previous checkpoint is intact: {kept}. Free space and resume from it") from exc
        self.saved.append(final)
        self._prune(name)
        if self.verbose:
            print(f"\nResumableCheckpoint: saved epoch {epoch} to {final}")

    def _prune(self, newest: str):
        entries = os.listdir(self.directory)
        names = sorted(n for n in entries if n.startswith("epoch-") and n[6:].isdigit())
        for old in names[: max(0, len(names) - self.keep)]:
            if old != newest:
                shutil.rmtree(os.path.join(self.directory, old), ignore_errors=True)
        for stale in entries:  # temporaries of a write that a kill -9 interrupted
            if stale.startswith(".epoch-") and ".tmp-" in stale:
                shutil.rmtree(os.path.join(self.directory, stale), ignore_errors=True)

    def restore(self, state: TrainingState | None = None, *, weights_only: bool = False) -> TrainingState | None:
        """Load ``state`` (default: the newest) into the model, the stateful callbacks, the optimizer and
        the RNGs (``weights_only``: the model's variables alone)."""
        self.wait()
        state = state or self.state
        if state is None:
            return None
        model, meta = self.model, state.meta
        try:
            with np.load(os.path.join(state.path, "arrays.npz"), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # missing, truncated, empty, bad CRC
            raise ModelError(f"{state.path}/arrays.npz is unreadable ({type(exc).__name__}: {exc}); delete "
                             "the folder to start over") from None
        assign_variables(list(model.variables), arrays, "model/", meta["model_variables"], "model", state.path)
        self.history = {k: list(v) for k, v in meta.get("history", {}).items()}
        self.restored_from = state.path
        if weights_only:
            return state
        self._restore_stateful(meta.get("stateful", []), state.path)
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and meta.get("optimizer_variables"):
            if meta.get("optimizer_class") != type(optimizer).__name__:
                raise ModelError(f"{state.path} was written with a {meta.get('optimizer_class')} optimizer; "
                                 f"the model now has a {type(optimizer).__name__}")
            if not optimizer.built:
                strategy = getattr(model, "distribute_strategy", None)
                if strategy is not None:
                    with strategy.scope():
                        optimizer.build(model.trainable_variables)
                else:
                    optimizer.build(model.trainable_variables)
            assign_variables(list(optimizer.variables), arrays, "optimizer/", meta["optimizer_variables"],
                        "optimizer", state.path)
        seed_state = global_seed_state(create="rng/keras_global" in arrays)
        if seed_state is not None and "rng/keras_global" in arrays:
            seed_state.assign(arrays["rng/keras_global"])
        version, internal, gauss = meta["python_random"]
        random.setstate((version, tuple(internal), gauss))
        kind, pos, has_gauss, cached = meta["numpy_random"]
        np.random.set_state((kind, arrays["rng/numpy_keys"], pos, has_gauss, cached))
        self.restored_from = state.path
        if self.verbose:
            print(f"\nResumableCheckpoint: resumed from {state.path} (epoch {state.epoch} done)")
        return state

    def _restore_stateful(self, saved: list, path: str) -> None:
        """Hand each stateful callback its saved state (before the optimizer: it may rebuild it),
        matched by class in order. A callback the run that wrote ``path`` did not have (a learning-rate
        log added on resume) starts afresh, with a warning; a saved state no callback here takes is a
        `ModelError` (resuming without it would not be the same run)."""
        pairs, fresh, remaining = match_states(self.stateful, saved)
        fresh = [type(item).__name__ for item in fresh]
        if remaining:
            raise ModelError(f"{path} holds the state of stateful callbacks {[e['class'] for e in saved]}; this "
                             f"run has {[type(i).__name__ for i in self.stateful]}, none for "
                             f"{[e['class'] for e in remaining]}: pass the callbacks (fine_tune's `callbacks`, "
                             "ResumableCheckpoint's `stateful`) of the run it resumes, or use a fresh checkpoint "
                             "folder")
        if fresh:
            import warnings

            warnings.warn(f"{path} holds no state for {fresh} (the run that wrote it did not have them): they "
                          "start afresh", UserWarning, stacklevel=2)
        for item, entry in pairs:
            if isinstance(item, keras.callbacks.Callback) and item.model is None:
                item.set_model(self.model)
                item.set_params(self.params)
            item.restore_state(entry["state"])

    def get_config(self):
        return {
            "directory": self.directory,
            "stateful": [keras.saving.serialize_keras_object(item) for item in self.stateful],
            "keep": self.keep,
            "background": self.background,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

