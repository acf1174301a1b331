"""The unfreezing step: staged top-down unfreezing with warmup, layer-wise rates, BN policy, L2-SP, resume.

`unfreeze_step` compiles a discriminative optimizer (each backbone group below the head at
``layer_decay**depth`` of the head's rate) and fits with `StagedUnfreezing`, which at every stage
unfreezes the top groups of the plan, gives the optimizer fresh state and a warmup-then-decay
learning-rate plan for the stage, and rebuilds the train function. Image backbones and text
encoders go through the same code: their groups come from `tfxfer.backbones.layer_groups` (a text
model's pooler is left out when its pooling does not use it).

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.train.data import as_dataset
    >>> from tfxfer.train.unfreeze import unfreeze_step
    >>> x = np.random.rand(8, 32, 32, 3).astype("float32") * 255; y = np.arange(8) % 2
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> result = unfreeze_step(model, as_dataset((x, y), batch_size=4), epochs=2, learning_rate=1e-4,
    ...                        stages={0: 1, 1: 2}, verbose=0)
    >>> [s["trainable_groups"][0] for s in result.stages]
    ['top', 'block13_16']
"""

from __future__ import annotations

import os

import keras
import numpy as np

from tfxfer.backbones.groups import HEAD, layer_groups, unused_groups
from tfxfer.errors import ArgumentError
from tfxfer.freezing import GradualUnfreezing
from tfxfer.optim.discriminative import discriminative
from tfxfer.optim.schedules import WarmupSchedule
from tfxfer.optim.swap import use_optimizer
from tfxfer.train.best import RestoreBest, better
from tfxfer.train.head import _fit_scope, _scope, _stopper
from tfxfer.train.losses import compile_args
from tfxfer.train.result import FineTuneResult
from tfxfer.utils.validate import check_float

LR_DECAYS = ("cosine", "linear")


def unfreezable_groups(model: keras.Model) -> list[str]:
    """The backbone groups an unfreezing plan can train, bottom to top ("head" excluded; a text
    model's pooler is left out when its pooling does not use it: it would get no gradient)."""
    groups = layer_groups(model)
    unused = set(unused_groups(model, groups))  # the rule each room registers (tfxfer.text: its pooler)
    return [g for g in groups if g != HEAD and g not in unused]


def _saved_trainable_variables(model: keras.Model) -> list:
    """The variables to build a stage's optimizer on: the model's trainable variables as a reload of the
    saved model will list them (a text encoder's inner frozen layers come back trainable), so the
    optimizer state saved with the model loads back one-to-one."""
    if isinstance(model, keras.Model) and pooling_layer_is_text(model):
        from tfxfer.text.tuning import reloaded_trainable_variables

        return reloaded_trainable_variables(model)
    return list(model.trainable_variables)


def default_stages(model: keras.Model, epochs: int) -> dict:
    """One more group every ``max(1, epochs // 3)`` epochs (image backbones); a text encoder trains
    whole from the first epoch (the BERT recipe)."""
    n = len([g for g in layer_groups(model) if g != HEAD])
    if pooling_layer_is_text(model):
        return {0: n}
    step = max(1, epochs // 3)
    return {e: min(n, 1 + e // step) for e in range(0, max(epochs, 1), step)}


def pooling_layer_is_text(model: keras.Model) -> bool:
    """Whether ``model`` is a tfxfer text model (its pooling is a `tfxfer.text.SequencePooling`)."""
    from tfxfer.text.layers import SequencePooling

    return any(isinstance(layer, SequencePooling) for layer in model.layers)


def layer_multipliers(model: keras.Model, *, decay: float) -> dict:
    """``{variable path: multiplier}``: head 1, the top trainable group ``decay``, the next
    ``decay**2`` ... (layer-wise learning-rate decay over `unfreezable_groups`)."""
    groups = layer_groups(model)
    names = unfreezable_groups(model)
    factors = {HEAD: 1.0, **{g: float(decay) ** d for d, g in enumerate(reversed(names), start=1)}}
    below = factors[names[-1]] if names else 1.0
    return {v.path: factors.get(group, below) for group, layers in groups.items() for layer in layers
            if not isinstance(layer, keras.Model) for v in layer.weights}


@keras.saving.register_keras_serializable(package="tfxfer")
class StagedUnfreezing(GradualUnfreezing):
    """`GradualUnfreezing` whose stage plan is a linear warmup of ``warmup_epochs`` (may be a
    fraction) then ``decay`` ("cosine" or "linear") to 0 at the end of the stage; the optimizer's
    per-variable multipliers carry over from stage to stage. ``warmup_share`` (0-1), when given,
    replaces ``warmup_epochs``: the warmup is that share of each stage's steps, so a stage of any
    length warms up once and then decays (``warmup_epochs=1`` on a one-epoch stage is all warmup).
    ``warmup_epochs=0`` without ``warmup_share`` runs each stage at a constant rate."""

    def __init__(self, schedule, *, learning_rates=None, warmup_epochs: float = 0, warmup_share: float | None = None,
                 decay: str = "cosine", bn_policy: str = "frozen", verbose: int = 1):
        super().__init__(schedule, learning_rates=learning_rates, bn_policy=bn_policy, verbose=verbose)
        if decay not in LR_DECAYS:
            raise ArgumentError("lr_decay", decay, "must be one of " + ", ".join(LR_DECAYS))
        self.warmup_epochs = check_float("warmup_epochs", warmup_epochs, low=0)
        self.warmup_share = check_float("warmup_share", warmup_share, low=0, high=1, allow_none=True)
        self.decay = decay

    def _fresh_optimizer(self, stage: int, epoch: int):
        model = self.model
        old = model.optimizer
        config = old.get_config()
        if stage in self.learning_rates:
            peak = self.learning_rates[stage]
            scheduled = self.warmup_share is not None or self.warmup_epochs
            total, steps = self._stage_steps(stage, epoch) if scheduled else (None, None)
            if total is not None:
                wanted = self.warmup_share * total if self.warmup_share is not None else self.warmup_epochs * steps
                warmup = max(0, min(int(round(wanted)), total - 1))
            config["learning_rate"] = (WarmupSchedule(peak, warmup, max(1, total - warmup), decay=self.decay)
                                       if total is not None else peak)
        with _scope(getattr(model, "distribute_strategy", None)):
            new = old.__class__.from_config(config)
            new.build(_saved_trainable_variables(model))
        use_optimizer(model, new)  # the saved compile config follows, so the state loads back

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k != "layer_decay"}
        return {**config, "warmup_epochs": self.warmup_epochs, "warmup_share": self.warmup_share, "decay": self.decay}


def _plan(model, stages: dict, offset: int) -> dict:
    """``{epoch + offset: [group names]}`` from ``{epoch: how many top backbone groups}`` (a pooler the
    model does not use counts as a group but stays frozen)."""
    names = [g for g in layer_groups(model) if g != HEAD]
    usable = set(unfreezable_groups(model))
    plan = {}
    for epoch, n in stages.items():
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(names):
            raise ArgumentError("stages", stages, f"must map epochs to a number of top groups in [0, {len(names)}]")
        plan[offset + epoch] = [g for g in names[len(names) - n:] if g in usable] if n else 0
    return {e: what or 0 for e, what in plan.items()}


def _averaged(model, averager, val_ds, keeper, *, monitor: str, strategy) -> dict:
    """Put ``averager``'s weights into ``model`` if they score better on ``val_ds`` than the weights the
    step ends with (``keeper.best``; always without validation data); ``{"averaged", "kept_average"}``."""
    if averager is None or not averager.count:
        return {}
    current = [np.array(w) for w in model.get_weights()]
    averager.apply(model)
    if val_ds is None or keeper is None:
        return {"averaged": None, "kept_average": True}
    with _fit_scope(model, strategy):
        score = model.evaluate(val_ds, verbose=0, return_dict=True).get(monitor.removeprefix("val_"))
    score = None if score is None else float(score)
    keep = better(score, keeper.best, monitor=monitor)
    if keep:
        keeper.best = score
    else:
        model.set_weights(current)
    return {"averaged": score, "kept_average": bool(keep), "averaging": averager.mode}


def _subfolder(checkpoint_dir, name: str):
    return None if checkpoint_dir is None else os.path.join(os.fspath(checkpoint_dir), name)


def unfreeze_step(model: keras.Model, train_ds, *, val_ds=None, epochs: int, learning_rate: float,
                  stages: dict | None = None, start_epoch: int = 0, warmup_epochs: float = 1, lr_decay: str = "cosine",
                  layer_decay: float = 0.5, optimizer: str = "adam", weight_decay: float | None = None, loss=None,
                  metrics=None, class_weight=None, bn_policy: str = "frozen", callbacks=(), verbose: int = 1,
                  strategy=None, epoch_shuffle=None, checkpoint_dir=None, stop_on_divergence: bool = True,
                  l2sp: float = 0.0, warmup_share: float | None = None, monitor: str = "val_loss",
                  restore_best: bool = True, keep_if_better: bool = True, label_smoothing: float = 0.0,
                  average_weights=None) -> FineTuneResult:
    """Staged top-down unfreezing for ``epochs`` epochs at peak rate ``learning_rate``.

    Args:
        train_ds, val_ds: batched datasets (see `tfxfer.train.data.training_datasets`).
        stages: ``{epoch: top groups to unfreeze}`` counted from the step's first epoch; default
            `default_stages`.
        start_epoch: the epoch number the step starts at (after ``start_epoch`` head epochs).
        warmup_epochs, lr_decay: each stage warms up linearly for ``warmup_epochs`` (a fraction is
            fine), then decays ("cosine" or "linear") to 0 at its end; 0 keeps the rate constant.
        layer_decay: discriminative multiplier per group below the head.
        optimizer, weight_decay: "adam", "adamw" or "sgd"; weight decay (None: the optimizer's).
        checkpoint_dir: save every epoch here and continue from the newest checkpoint.
        l2sp: L2-SP strength towards the backbone as it is when the step starts (0 = off).
        warmup_share: warm up for this share of each stage instead of ``warmup_epochs``.
        monitor, restore_best: with validation data, restore the epoch with the best ``monitor``
            (e.g. "val_loss", "val_accuracy") when the step ends.
        keep_if_better: with validation data, score the model before the step; if no epoch of the
            step beats it, restore the weights the step started from (``selection["kept"] ==
            "head"``).

    Returns:
        `FineTuneResult` of the step (its ``history`` holds the step's epochs only; ``selection``
        the scores before / after and which weights were kept).
    """
    from tfxfer.reliability.checkpoint import ResumableCheckpoint
    from tfxfer.reliability.stateful import split_stateful
    from tfxfer.optim.l2sp import attach_l2sp, detach_l2sp, l2sp_drift

    plan = _plan(model, default_stages(model, epochs) if stages is None else stages, start_epoch)
    unfreezer = StagedUnfreezing(plan, learning_rates={e: learning_rate for e in plan}, warmup_epochs=warmup_epochs,
                                 warmup_share=warmup_share, decay=lr_decay, bn_policy=bn_policy, verbose=verbose)
    averager = [average_weights] if average_weights is not None else []
    if checkpoint_dir is not None and averager and average_weights.directory is None:
        average_weights.directory = os.path.join(os.fspath(checkpoint_dir), "averaging")
    keeper = None
    if (restore_best or keep_if_better) and val_ds is not None:
        keeper = RestoreBest(monitor, restore=restore_best, directory=_subfolder(checkpoint_dir, "best"))
    carried, callbacks = split_stateful(callbacks)  # the caller's Stateful callbacks (a learning-rate log)
    ckpt = (ResumableCheckpoint(os.fspath(checkpoint_dir),
                                stateful=[unfreezer, *averager, *([keeper] if keeper is not None else []), *carried])
            if checkpoint_dir is not None else None)
    state = ckpt.state if ckpt is not None else None
    anchored = attach_l2sp(model, alpha=float(l2sp)) if l2sp > 0 else []  # anchors: the backbone as it is now
    labels = next(iter(train_ds))[1].numpy()
    with _scope(strategy):
        model.compile(optimizer=discriminative(optimizer, learning_rate=learning_rate,
                                               lr_multipliers=layer_multipliers(model, decay=layer_decay),
                                               **({} if weight_decay is None else {"weight_decay": weight_decay})),
                      **compile_args(model, labels, loss=loss, metrics=metrics, weighted=len(train_ds.element_spec) > 2,
                                     label_smoothing=label_smoothing))
    # the best-epoch keeper goes before the checkpoint: the epoch's best is then in the state it saves
    extra = [*([keeper] if keeper is not None else []), *carried, *([ckpt] if ckpt is not None else [])]
    before = before_score = None
    if val_ds is not None and keep_if_better:  # a resumed step starts from the same model: the same score
        before = [np.array(w) for w in model.get_weights()]
        with _fit_scope(model, strategy):
            before_score = model.evaluate(val_ds, verbose=0, return_dict=True).get(monitor.removeprefix("val_"))
    try:
        with _fit_scope(model, strategy):
            h = model.fit(train_ds, validation_data=val_ds, initial_epoch=state.initial_epoch if state else start_epoch,
                          epochs=start_epoch + epochs, shuffle=False, class_weight=class_weight, verbose=verbose,
                          callbacks=[*averager, *extra, unfreezer, *([epoch_shuffle] if epoch_shuffle else []), *callbacks,
                                     *(_stopper(checkpoint_dir) if stop_on_divergence else [])])
        if keeper is not None:  # a step that had finished: its checkpoint handed back the best weights after the fit
            keeper.apply(model)
    finally:
        drift = list(l2sp_drift(model).values()) if anchored else []
        if anchored:  # never leave the anchors on the caller's model (also after a crash)
            detach_l2sp(model)
    done = state.meta.get("history", {}) if state is not None else {}
    skip = (state.initial_epoch - start_epoch) if state is not None else 0
    history = {k: list(done.get(k, []))[:skip] + [float(v) for v in h.history.get(k, [])] for k in {*done, *h.history}}
    stage_log = [{"epoch": entry["epoch"], "trainable_groups": entry["trainable_groups"],
                  "learning_rate": learning_rate, "cached_features": False, **({"l2sp": float(l2sp)} if anchored else {})}
                 for entry in unfreezer.history]
    selection = None
    if keeper is not None:
        if not restore_best:  # the last epoch stays: score it
            keeper.best = float(history.get(monitor, [np.nan])[-1])
    averaged = _averaged(model, average_weights, val_ds, keeper, monitor=monitor, strategy=strategy)
    if keeper is not None:
        kept = "fine_tuned"
        if before is not None and not better(keeper.best, before_score, monitor=monitor):
            model.set_weights(before)
            kept = "head"
        selection = {"monitor": monitor, "head": None if before_score is None else float(before_score),
                     "fine_tuned": keeper.best, "kept": kept,
                     "best_epoch": keeper.best_epoch if restore_best else None, **averaged}
    info = None
    if anchored:
        info = {"alpha": float(l2sp), "anchored": len(anchored), "mean_drift": float(sum(drift) / len(drift)) if drift
                else 0.0, "max_drift": float(max(drift, default=0.0))}
    return FineTuneResult(history=history, stages=stage_log, head_epochs=start_epoch,
                          resumed_from=state.path if state is not None else None, l2sp=info, selection=selection)
