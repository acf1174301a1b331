"""The transfer-learning recipe as functions over a plain ``keras.Model`` and ``model.fit``.

* `extract_features` / `train_head_on_features` (from `tfxfer.train.head`): the cached-feature
  fast path — the frozen backbone runs once, the head trains on its pooled features.
* `fine_tune` does the whole recipe: head on cached features, then staged top-down unfreezing at a
  10-100x lower learning rate with warmup and layer-wise (discriminative) rates, BatchNorm frozen.
  ``strategy=`` runs it on several devices or workers (tf.distribute); ``checkpoint_dir=`` saves
  the full training state every epoch and continues an interrupted run where it stopped.

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.train.fine_tune import fine_tune
    >>> x = np.random.rand(32, 32, 32, 3).astype("float32") * 255; y = np.arange(32) % 2
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> result = fine_tune(model, (x, y), head_epochs=1, epochs=2, batch_size=8, verbose=0)
    >>> [s["trainable_groups"][0] for s in result.stages]
    ['head', 'top', 'block13_16']
"""

from __future__ import annotations

import dataclasses
import os

import keras
import tensorflow as tf

from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.train.head import (  # noqa: F401  (as_dataset, default_loss: re-exported, long-standing imports)
    _default_metrics,
    _fit_scope,
    _scope,
    as_dataset,
    default_loss,
    extract_features,
    train_head_on_features,
)
from tfxfer.freezing import GradualUnfreezing, freeze_backbone, group_names
from tfxfer.models import head_model
from tfxfer.optim.discriminative import discriminative, layerwise_decay

_LR_CALLBACKS = (keras.callbacks.ReduceLROnPlateau, keras.callbacks.LearningRateScheduler)


@dataclasses.dataclass
class FineTuneResult:
    """What `fine_tune` did: per-epoch ``history`` (both phases), ``stages`` and where they began.

    ``l2sp`` is None without L2-SP, else ``{"alpha", "anchored", "mean_drift", "max_drift"}``: the
    strength, how many backbone kernels were anchored, and their relative distance
    ``||w - w_pretrained|| / ||w_pretrained||`` at the end.
    """

    history: dict
    stages: list
    head_epochs: int
    resumed_from: str | None = None
    l2sp: dict | None = None

    def final(self, metric: str):
        values = self.history.get(metric)
        return values[-1] if values else None


def _check_callbacks(callbacks, scheduled: bool):
    for cb in callbacks:
        if not isinstance(cb, keras.callbacks.Callback):
            raise ArgumentTypeError("callbacks", cb, "a list of keras.callbacks.Callback")
        if scheduled and isinstance(cb, _LR_CALLBACKS):
            raise ArgumentError(
                "callbacks", type(cb).__name__,
                "cannot change the learning rate of a schedule-driven optimizer (warmup_epochs > 0)",
                hint="Pass warmup_epochs=0 to use a learning-rate callback, or drop the callback",
            )


def fine_tune(
    model: keras.Model,
    train,
    *,
    val=None,
    head_epochs: int = 3,
    epochs: int = 6,
    base_lr: float = 1e-3,
    unfreeze_lr_factor: float = 0.1,
    stages: dict | None = None,
    warmup_epochs: int = 1,
    layer_decay: float = 0.5,
    optimizer: str = "adam",
    use_cached_features: bool = True,
    batch_size: int = 32,
    loss=None,
    metrics=None,
    class_weight=None,
    bn_policy: str = "frozen",
    callbacks=(),
    verbose: int = 1,
    strategy=None,
    checkpoint_dir=None,
    seed: int = 0,
    stop_on_divergence: bool = True,
    l2sp: float = 0.0,
) -> FineTuneResult:
    """Feature extraction, then progressive top-down unfreezing at a lower learning rate.

    Args:
        model: a transfer model from `tfxfer.build_model`.
        train: ``(x, y)`` arrays or a batched ``tf.data.Dataset`` of raw-pixel images.
        val: optional validation data, same forms.
        head_epochs: epochs of the head-only stage (0 skips it).
        epochs: epochs of the unfreezing stages after the head stage (0 skips them).
        base_lr: learning rate of the head stage.
        unfreeze_lr_factor: unfreezing stages run at ``base_lr * unfreeze_lr_factor`` (0.1-0.01 is
            the usual "10-100x lower"); lower groups get less via ``layer_decay``.
        stages: ``{epoch: top groups to unfreeze}`` counted from the start of the unfreezing
            stages; default unfreezes one more group every ``max(1, epochs // 3)`` epochs.
        warmup_epochs: linear warmup at the start of each unfreezing stage (then cosine).
        layer_decay: discriminative multiplier per group below the head (head 1, top group
            ``layer_decay``, the next ``layer_decay**2`` ...).
        optimizer: "adam", "adamw" or "sgd" for the unfreezing stages.
        use_cached_features: train the head on features extracted once (the fast path). The cache
            sees ``train`` without re-running its augmentation each epoch; set False for a
            ``tf.data`` pipeline whose augmentation must be re-sampled every epoch.
        class_weight: optional ``{class index: weight}``.
        bn_policy: "frozen" (default) keeps BatchNorm in inference mode throughout.
        strategy: a ``tf.distribute.Strategy`` (see `tfxfer.reliability.get_strategy`). Build the
            model inside ``with strategy.scope():``; ``fine_tune`` creates the optimizers, compiles
            and builds the head model in that scope, and ``batch_size`` is the global batch.
        checkpoint_dir: save the full training state after every epoch (weights, optimizer state,
            schedule position, unfreezing stage, RNG states) under this folder, and continue from
            the newest checkpoint in it when called again (after a crash or ``kill -9``).
            Give a fresh folder for a new run.
        seed: seed of the epoch-keyed shuffle of array data (same order on every worker and
            after a resume).
        stop_on_divergence: stop at the first NaN/Inf loss and raise
            `tfxfer.reliability.TrainingDivergedError` (naming the last good checkpoint).
        l2sp: L2-SP strength (0 = off). When > 0, every backbone kernel is anchored at its
            value before the unfreezing stages (the pretrained weights) with
            `tfxfer.transfer.L2SP`, so the unfreezing stages penalise
            ``l2sp * sum((w - w_pretrained) ** 2)`` instead of letting the backbone drift (less
            forgetting on small data; 1e-4 to 1e-2 is typical). The regularizers are removed again
            when ``fine_tune`` returns; ``result.l2sp`` reports the drift.
            Example: ``fine_tune(model, (x, y), head_epochs=1, epochs=2, l2sp=0.01)``.

    Raises:
        DataError: array inputs with NaN/Inf pixels, a wrong image shape, class ids outside the
            head, or a single class; empty or mismatched data.

    Returns:
        `FineTuneResult` with the merged history and the stages applied.
    """
    for arg, value, low in (("head_epochs", head_epochs, 0), ("epochs", epochs, 0), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ArgumentError(arg, value, f"must be an int >= {low}")
    if head_epochs + epochs == 0:
        raise ArgumentError("epochs", epochs, "and `head_epochs` cannot both be 0")
    if not base_lr > 0:
        raise ArgumentError("base_lr", base_lr, "must be > 0")
    if not 0 < unfreeze_lr_factor <= 1:
        raise ArgumentError("unfreeze_lr_factor", unfreeze_lr_factor, "must be in (0, 1]")
    if isinstance(l2sp, bool) or not isinstance(l2sp, (int, float)) or not l2sp >= 0 or l2sp == float("inf"):
        raise ArgumentError("l2sp", l2sp, "must be a finite float >= 0 (0 = off)")
    callbacks = list(callbacks)
    _check_callbacks(callbacks, scheduled=warmup_epochs > 0 and epochs > 0)
    if strategy is not None:
        if not isinstance(strategy, tf.distribute.Strategy):
            raise ArgumentTypeError("strategy", strategy, "a tf.distribute.Strategy or None")
        if model.distribute_strategy is not strategy:
            raise ArgumentError("strategy", type(strategy).__name__, "must be the strategy the model was built under",
                                hint="Build the model inside `with strategy.scope():` and pass that strategy")
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise ArgumentTypeError("checkpoint_dir", checkpoint_dir, "a folder path or None")
    n_groups = len(group_names(model)) - 1
    if stages is None:
        step = max(1, epochs // 3)
        stages = {e: min(n_groups, 1 + e // step) for e in range(0, epochs, step)}
    elif not isinstance(stages, dict) or not stages:
        raise ArgumentTypeError("stages", stages, "a dict {epoch: top groups to unfreeze}")
    for e, n in stages.items():
        if not isinstance(e, int) or not 0 <= e < max(epochs, 1):
            raise ArgumentError("stages", stages, f"must have epochs in [0, {epochs})")

    from tfxfer.reliability.checkpoint import ResumableCheckpoint
    from tfxfer.reliability.distribute import shard_dataset
    from tfxfer.reliability.inputs import check_training_arrays, data_errors, finite_guard
    from tfxfer.reliability.shuffle import EpochShuffle

    epoch_shuffle = EpochShuffle(int(seed))
    check_training_arrays(model, train, name="train")
    if val is not None:
        check_training_arrays(model, val, name="val", require_classes=False)

    def stopper(phase: str) -> list:
        if not stop_on_divergence:
            return []
        from tfxfer.reliability.divergence import StopOnDivergence

        where = os.path.join(os.fspath(checkpoint_dir), phase) if checkpoint_dir is not None else None
        return [StopOnDivergence(checkpoint_dir=where)]

    train_ds = as_dataset(train, batch_size=batch_size, shuffle=True, name="train", epoch_shuffle=epoch_shuffle)
    val_ds = as_dataset(val, batch_size=batch_size, name="val") if val is not None else None
    if isinstance(train, tf.data.Dataset):
        train_ds = finite_guard(train_ds)
    if isinstance(val, tf.data.Dataset):
        val_ds = finite_guard(val_ds)
    train_ds = shard_dataset(train_ds)
    val_ds = shard_dataset(val_ds) if val_ds is not None else None
    with data_errors():
        head_ckpt = unfreeze_ckpt = None
        if checkpoint_dir is not None:
            head_ckpt = ResumableCheckpoint(os.path.join(os.fspath(checkpoint_dir), "head"))
        resumed_from = None
        sample_y = next(iter(train_ds))[1].numpy()
        loss = loss or default_loss(model, sample_y)
        metrics = metrics if metrics is not None else _default_metrics(loss)
        history: dict = {}
        stage_log: list = []

        def merge(h):
            for k, v in h.history.items():
                history.setdefault(k, []).extend(float(x) for x in v)

        unfreezer = None
        if epochs:
            lr = base_lr * unfreeze_lr_factor
            schedule = {head_epochs + e: n for e, n in stages.items()}
            unfreezer = GradualUnfreezing(schedule, learning_rates={e: lr for e in schedule},
                                          warmup_epochs=warmup_epochs, layer_decay=layer_decay,
                                          bn_policy=bn_policy, verbose=verbose)
            if checkpoint_dir is not None:
                unfreeze_ckpt = ResumableCheckpoint(os.path.join(os.fspath(checkpoint_dir), "unfreeze"),
                                                    unfreezer=unfreezer)
        unfreeze_state = unfreeze_ckpt.state if unfreeze_ckpt is not None else None

        # Stage 1: head only.
        summary = freeze_backbone(model, bn_policy=bn_policy)
        if head_epochs:
            stage_log.append({"epoch": 0, "trainable_groups": summary.trainable_groups, "learning_rate": base_lr,
                              "cached_features": use_cached_features})
            head_state = head_ckpt.state if head_ckpt is not None else None
            if head_state is not None:
                history.update({k: list(v) for k, v in head_state.meta.get("history", {}).items()})
                resumed_from = head_state.path
            start = head_state.initial_epoch if head_state is not None else 0
            if unfreeze_state is not None:
                pass  # the trained head is part of the unfreezing checkpoint's weights
            elif start >= head_epochs:  # head stage finished before the interruption: reload its result
                head_ckpt.set_model(head_model(model) if use_cached_features else model)
                head_ckpt.restore(head_state, weights_only=True)
            elif use_cached_features:
                feats, labels = extract_features(model, train_ds, verbose=verbose)
                val_feats = extract_features(model, val_ds) if val_ds is not None else None
                merge(train_head_on_features(model, feats, labels, val=val_feats, epochs=head_epochs,
                                             learning_rate=base_lr, batch_size=batch_size, loss=loss,
                                             metrics=metrics, class_weight=class_weight, verbose=verbose,
                                             strategy=strategy, initial_epoch=start, seed=int(seed),
                                             callbacks=[*([head_ckpt] if head_ckpt is not None else []),
                                                        *stopper("head")]))
            else:
                with _scope(strategy):
                    model.compile(optimizer=keras.optimizers.Adam(base_lr), loss=loss, metrics=metrics)
                extra = [head_ckpt] if head_ckpt is not None else []
                with _fit_scope(model, strategy):
                    merge(model.fit(train_ds, validation_data=val_ds, epochs=head_epochs, initial_epoch=start,
                                    class_weight=class_weight, shuffle=False,
                                    callbacks=[*extra, epoch_shuffle, *stopper("head"), *callbacks],
                                    verbose=verbose))

        # Stage 2..n: top-down unfreezing with warmup and layer-wise rates.
        anchored = []
        if epochs and l2sp > 0:
            from tfxfer.transfer.regularizers import attach_l2sp

            anchored = attach_l2sp(model, alpha=float(l2sp))  # anchors: the backbone as it is now
        if epochs:
            with _scope(strategy):
                model.compile(optimizer=discriminative(optimizer, learning_rate=lr,
                                                       lr_multipliers=layerwise_decay(model, decay=layer_decay)),
                              loss=loss, metrics=metrics)
            start = head_epochs
            extra = []
            if unfreeze_ckpt is not None:
                extra = [unfreeze_ckpt]
                if unfreeze_state is not None:
                    for k, v in unfreeze_state.meta.get("history", {}).items():
                        history[k] = history.get(k, [])[:head_epochs] + list(v)
                    start = unfreeze_state.initial_epoch
                    resumed_from = unfreeze_state.path
            try:
                with _fit_scope(model, strategy):
                    merge(model.fit(train_ds, validation_data=val_ds, initial_epoch=start,
                                    epochs=head_epochs + epochs, shuffle=False, class_weight=class_weight,
                                    callbacks=[*extra, unfreezer, epoch_shuffle, *stopper("unfreeze"), *callbacks],
                                    verbose=verbose))
            except BaseException:
                if anchored:  # never leave the anchors on the caller's model (a diverged or interrupted run)
                    from tfxfer.transfer.regularizers import detach_l2sp

                    detach_l2sp(model)
                raise
            for entry in unfreezer.history:
                stage_log.append({"epoch": entry["epoch"], "trainable_groups": entry["trainable_groups"],
                                  "learning_rate": lr, "cached_features": False,
                                  **({"l2sp": float(l2sp)} if anchored else {})})
        l2sp_info = None
        if anchored:
            from tfxfer.transfer.regularizers import detach_l2sp, l2sp_drift

            drift = list(l2sp_drift(model).values())
            detach_l2sp(model)
            l2sp_info = {"alpha": float(l2sp), "anchored": len(anchored),
                         "mean_drift": float(sum(drift) / len(drift)) if drift else 0.0,
                         "max_drift": float(max(drift, default=0.0))}
    return FineTuneResult(history=history, stages=stage_log, head_epochs=head_epochs, resumed_from=resumed_from,
                          l2sp=l2sp_info)
