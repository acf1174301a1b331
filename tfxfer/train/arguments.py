"""The argument checks of `tfxfer.train.fine_tune.fine_tune`, made before any data is touched.

Every check raises a typed error naming the argument and what was received (`tfxfer.errors`).

Example:
    >>> from tfxfer.models import build_model
    >>> from tfxfer.train.arguments import check_arguments
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> check_arguments(model, head_epochs=0, epochs=0, batch_size=8, base_lr=1e-3, unfreeze_lr_factor=0.1,
    ...                 stages=None, warmup_epochs=None, lr_decay=None, optimizer=None, weight_decay=None, l2sp=0.0,
    ...                 callbacks=[], strategy=None, checkpoint_dir=None, layer_decay=0.8, monitor="val_loss")
    Traceback (most recent call last):
    ...
    tfxfer.errors.ArgumentError: `epochs` and `head_epochs` cannot both be 0. Received: epochs=0
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from tfxfer.backbones.groups import layer_groups
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.train.unfreeze import LR_DECAYS
from tfxfer.utils.validate import check_float, check_int

OPTIMIZERS = ("adam", "adamw", "sgd")
_LR_CALLBACKS = (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)


def check_arguments(model, *, head_epochs, epochs, batch_size, base_lr, unfreeze_lr_factor, stages, warmup_epochs,
                     lr_decay, optimizer, weight_decay, l2sp, callbacks, strategy, checkpoint_dir, layer_decay,
                     monitor, label_smoothing=0.0) -> None:
    """Every argument check of `fine_tune`, before any data is touched."""
    check_int("head_epochs", head_epochs, low=0)
    check_int("epochs", epochs, low=0)
    check_int("batch_size", batch_size, low=1)
    if head_epochs + epochs == 0:
        raise ArgumentError("epochs", epochs, "and `head_epochs` cannot both be 0")
    check_float("base_lr", base_lr, low=0, low_open=True)
    check_float("unfreeze_lr_factor", unfreeze_lr_factor, low=0, high=1, low_open=True)
    check_float("l2sp", l2sp, low=0)
    check_float("label_smoothing", label_smoothing, low=0, high=1, high_open=True)
    check_float("warmup_epochs", warmup_epochs, low=0, allow_none=True)
    check_float("weight_decay", weight_decay, low=0, allow_none=True)
    if lr_decay is not None and lr_decay not in LR_DECAYS:
        raise ArgumentError("lr_decay", lr_decay, "must be one of " + ", ".join(LR_DECAYS) + " or None")
    if optimizer is not None and str(optimizer).lower() not in OPTIMIZERS:
        raise ArgumentError("optimizer", optimizer, "must be one of " + ", ".join(OPTIMIZERS) + " or None")
    scheduled = epochs > 0 and (warmup_epochs is None or warmup_epochs > 0)
    for cb in callbacks:
        if not isinstance(cb, keras.callbacks.Callback):
            raise ArgumentTypeError("callbacks", cb, "a list of keras.callbacks.Callback")
        if scheduled and isinstance(cb, _LR_CALLBACKS):
            raise ArgumentError("callbacks", type(cb).__name__,
                                "cannot change the learning rate of a schedule-driven optimizer (warmup_epochs > 0)",
                                hint="Pass warmup_epochs=0 to use a learning-rate callback, or drop the callback")
    if strategy is not None:
        if not isinstance(strategy, tf.distribute.Strategy):
            raise ArgumentTypeError("strategy", strategy, "a tf.distribute.Strategy or None")
        if model.distribute_strategy is not strategy:
            raise ArgumentError("strategy", type(strategy).__name__, "must be the strategy the model was built under",
                                hint="Build the model inside `with strategy.scope():` and pass that strategy")
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise ArgumentTypeError("checkpoint_dir", checkpoint_dir, "a folder path or None")
    if stages is not None and (not isinstance(stages, dict) or not stages):
        raise ArgumentTypeError("stages", stages, "a dict {epoch: top groups to unfreeze}")
    check_float("layer_decay", layer_decay, low=0, high=1, low_open=True)
    if not isinstance(monitor, str) or not monitor.startswith("val_"):
        raise ArgumentError("monitor", monitor, "must name a validation value such as 'val_loss' or 'val_accuracy'")
    groups = len(layer_groups(model)) - 1  # backbone groups ("head" is the last)
    for e, n in (stages or {}).items():
        if isinstance(e, bool) or not isinstance(e, int) or not 0 <= e < max(epochs, 1):
            raise ArgumentError("stages", stages, f"must have epochs in [0, {epochs})")
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= groups:
            raise ArgumentError("stages", stages, f"must map epochs to a number of top groups in [0, {groups}]")
