"""Reliability, security and scale-out.

* Resume: `ResumableCheckpoint` (atomic per-epoch training state: weights, optimizer moments and
  schedule position, the state of `Stateful` callbacks such as the unfreezing stage, RNG states),
  `resume`, `latest_state`, `EpochShuffle`
  (an epoch-keyed data order, so resumed epochs see the same batches).
* Divergence and bad data: `StopOnDivergence` / `TrainingDivergedError`; `CheckpointError` for a
  full disk; `check_training_arrays` (NaN/Inf, shapes, label range, single class).
* Safe loading: `load_model` (Keras safe mode plus a pre-scan that explains refusals),
  `scan_keras_file`, `load_yaml` (safe loader), `safe_filename` / `safe_join` for labels in paths.
* Determinism: `enable_determinism`.
* Scale-out: `get_strategy`, `shard_dataset`, `distribute_dataset`, `fit_scope` (multi-worker
  ``fit`` under Keras 3), `is_chief`, `local_tf_configs`.

Example:
    >>> from tfxfer.reliability import safe_filename, get_strategy
    >>> safe_filename("cat")
    'cat'
    >>> get_strategy("default").num_replicas_in_sync
    1
"""

from tfxfer.errors import CheckpointError, TrainingDivergedError
from tfxfer.reliability.checkpoint import ResumableCheckpoint
from tfxfer.reliability.training_state import TrainingState, latest_state, resume
from tfxfer.reliability.determinism import enable_determinism
from tfxfer.reliability.distribute import (
    STRATEGIES,
    distribute_dataset,
    fit_scope,
    free_ports,
    get_strategy,
    is_chief,
    local_tf_configs,
    shard_dataset,
)
from tfxfer.reliability.divergence import StopOnDivergence
from tfxfer.reliability.filenames import safe_filename, safe_join
from tfxfer.reliability.inputs import check_training_arrays
from tfxfer.reliability.safe_load import KerasFileReport, load_model, load_yaml, scan_keras_file
from tfxfer.reliability.shuffle import EpochShuffle
from tfxfer.reliability.stateful import Stateful

__all__ = [
    "STRATEGIES", "CheckpointError", "check_training_arrays", "EpochShuffle", "KerasFileReport", "ResumableCheckpoint",
    "Stateful", "StopOnDivergence", "TrainingDivergedError", "TrainingState", "distribute_dataset",
    "enable_determinism", "fit_scope", "free_ports", "get_strategy", "is_chief", "latest_state", "load_model",
    "load_yaml", "local_tf_configs", "resume", "safe_filename", "safe_join", "scan_keras_file",
    "shard_dataset",
]
