"""`GradualUnfreezing`: staged top-to-bottom unfreezing that really takes effect during ``fit``.

Flipping ``trainable`` while ``fit`` runs is silently ignored by Keras (the train function is
cached) and recompiling with the same optimizer fails with "Unknown variable". At each stage this
callback changes the trainable set, gives the optimizer fresh state for the new variable set (same
class and configuration, new learning rate plan), and rebuilds the train function.

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.freezing import GradualUnfreezing
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> x = np.random.rand(8, 32, 32, 3) * 255; y = np.arange(8) % 2
    >>> cb = GradualUnfreezing({0: 0, 1: 1}, learning_rates={0: 1e-3, 1: 1e-4}, verbose=0)
    >>> _ = model.fit(x, y, epochs=2, batch_size=4, callbacks=[cb], verbose=0)
    >>> cb.current_stage
    1
"""

from __future__ import annotations

import warnings

import keras

from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.freezing.freeze import _check_bn_policy, freeze_backbone, unfreeze
from tfxfer.optim.discriminative import _MultiplierMixin, layerwise_decay
from tfxfer.optim.schedules import WarmupSchedule
from tfxfer.optim.swap import use_optimizer
from tfxfer.utils.validate import check_float, check_int, is_int


def _normalize_schedule(schedule) -> dict:
    if not isinstance(schedule, dict) or not schedule:
        raise ArgumentTypeError("schedule", schedule, "a non-empty dict {epoch: top groups (int) or [group names]}")
    out = {}
    for epoch, what in schedule.items():
        if isinstance(epoch, str) and epoch.strip().lstrip("-").isdigit():  # keys of a saved config are text
            epoch = int(epoch)
        if not is_int(epoch):  # 1.7 was truncated to 1
            raise ArgumentError("schedule", schedule, "must have integer epochs as keys")
        e = int(epoch)
        if e < 0:
            raise ArgumentError("schedule", schedule, "must have epochs >= 0")
        if not is_int(what) and not (
            isinstance(what, (list, tuple)) and all(isinstance(g, str) for g in what)
        ):
            raise ArgumentError("schedule", {epoch: what}, "values must be an int (top groups) or a list of group names")
        if is_int(what) and int(what) < 0:
            raise ArgumentError("schedule", {epoch: what}, "must unfreeze a number of top groups >= 0")
        out[e] = list(what) if isinstance(what, (list, tuple)) else int(what)
    if 0 not in out:
        out[0] = 0
    return dict(sorted(out.items()))


UNKNOWN_STEPS = ("the number of batches per epoch is unknown (a tf.data input of unknown cardinality, e.g. after "
                 ".filter): the unfreezing stages run at their peak learning rate without warmup or decay. Give the "
                 "dataset its size with dataset.apply(tf.data.experimental.assert_cardinality(batches)) or pass "
                 "steps_per_epoch to fit")


@keras.saving.register_keras_serializable(package="tfxfer")
class GradualUnfreezing(keras.callbacks.Callback):
    """Unfreeze a transfer model stage by stage during ``fit``.

    Args:
        schedule: ``{epoch: n}`` (unfreeze the top ``n`` backbone groups from that epoch on) or
            ``{epoch: ["group", ...]}``. Epoch 0 defaults to head only.
        learning_rates: optional ``{epoch: peak learning rate}`` per stage; stages not listed keep
            the optimizer's configured learning rate (a schedule restarts from step 0).
        warmup_epochs: linear warmup length inside each stage that has a learning rate (then cosine
            decay to the end of the stage); 0 means a constant rate.
        layer_decay: if set, each stage re-plans discriminative multipliers with
            `tfxfer.optim.layerwise_decay` (requires a `tfxfer.optim` discriminative optimizer).
        bn_policy: BatchNorm policy for every stage ("frozen" by default).
        verbose: print a line per stage change.

    Resuming ``fit(initial_epoch=k)`` applies the stage in force at epoch ``k``. To continue an
    interrupted run exactly (same stage, same point of the stage's learning-rate schedule), save
    `get_state` and call `restore_state` before the first resumed epoch (the
    `tfxfer.reliability.Stateful` protocol) — or let
    ``tfxfer.reliability.ResumableCheckpoint(..., stateful=[this callback])`` do both.
    """

    def __init__(self, schedule, *, learning_rates=None, warmup_epochs: int = 0, layer_decay=None,
                 bn_policy: str = "frozen", verbose: int = 1):
        super().__init__()
        self.schedule = _normalize_schedule(schedule)
        if learning_rates is not None and not isinstance(learning_rates, dict):
            raise ArgumentTypeError("learning_rates", learning_rates, "a dict {epoch: learning rate}")
        self.learning_rates = {int(k): float(v) for k, v in (learning_rates or {}).items()}
        for epoch, lr in self.learning_rates.items():
            if epoch not in self.schedule:
                raise ArgumentError("learning_rates", {epoch: lr}, "must use epochs that start a stage in `schedule`")
            check_float(f"learning_rates[{epoch}]", lr, low=0, low_open=True)
        _check_bn_policy(bn_policy)
        self.warmup_epochs = check_int("warmup_epochs", warmup_epochs, low=0)
        self.layer_decay = check_float("layer_decay", layer_decay, low=0, high=1, low_open=True, allow_none=True)
        self.bn_policy = bn_policy
        self.verbose = int(verbose)
        self.current_stage = None
        self.history = []

    def on_train_begin(self, logs=None):
        """Check every stage against the model before the first epoch (an unknown group or too many
        top groups failed only when training reached that stage, hours in), and warn about stages
        that start after the fit's last epoch (they would never apply)."""
        from tfxfer.backbones.groups import HEAD, layer_groups, select_groups

        groups = [g for g in layer_groups(self.model) if g != HEAD]
        for epoch, what in self.schedule.items():
            if isinstance(what, int):
                check_int(f"schedule[{epoch}]", what, low=0, high=len(groups))
            else:
                select_groups(self.model, what)
        last = (self.params or {}).get("epochs")
        never = sorted(e for e in self.schedule if last is not None and e >= last)
        if never:
            warnings.warn(f"GradualUnfreezing: the stage(s) starting at epoch(s) {never} come after the fit's last "
                          f"epoch ({last - 1}) and will not apply", UserWarning, stacklevel=2)

    def stage_for(self, epoch: int) -> int:
        """The stage (its starting epoch) in force at ``epoch``."""
        return max(e for e in self.schedule if e <= epoch)

    def on_epoch_begin(self, epoch, logs=None):
        stage = self.stage_for(epoch)
        if stage == self.current_stage:
            return
        self.apply_stage(stage, epoch)

    def apply_stage(self, stage: int, epoch: int | None = None):
        """Apply stage ``stage`` now: trainable set, fresh optimizer state, rebuilt train function."""
        model = self.model
        what = self.schedule[stage]
        if what == 0:
            summary = freeze_backbone(model, bn_policy=self.bn_policy)
        elif isinstance(what, int):
            summary = unfreeze(model, top_groups=what, bn_policy=self.bn_policy)
        else:
            summary = unfreeze(model, groups=what, bn_policy=self.bn_policy)
        if getattr(model, "optimizer", None) is not None and getattr(model, "compiled", False):
            self._fresh_optimizer(stage, epoch if epoch is not None else stage)
            model.make_train_function(force=True)
        self.current_stage = stage
        self.history.append({"epoch": epoch, "stage": stage, "trainable_groups": summary.trainable_groups,
                             "trainable_params": summary.trainable_params})
        if self.verbose:
            print(f"\nGradualUnfreezing: epoch {epoch}: training {', '.join(summary.trainable_groups)} "
                  f"({summary.trainable_params:,} parameters)")

    def _stage_steps(self, stage: int, epoch: int):
        """``(steps in the stage from ``epoch``, steps per epoch)``, or ``(None, None)`` when fit does
        not know its steps per epoch (a tf.data input of unknown cardinality): a warmup and decay
        planned over a guessed length would end early and leave the rate at 0 for the rest of the
        stage, so the caller keeps the stage's peak rate instead (with a warning)."""
        later = [e for e in self.schedule if e > stage]
        total_epochs = (self.params or {}).get("epochs") or (later[0] if later else epoch + 1)
        end = later[0] if later else total_epochs
        steps = (self.params or {}).get("steps")
        if not steps:
            warnings.warn(UNKNOWN_STEPS, UserWarning, stacklevel=3)
            return None, None
        return max(1, (end - epoch) * steps), steps

    def _fresh_optimizer(self, stage: int, epoch: int):
        model = self.model
        old = model.optimizer
        config = old.get_config()
        if stage in self.learning_rates:
            peak = self.learning_rates[stage]
            total, steps = self._stage_steps(stage, epoch) if self.warmup_epochs else (None, None)
            if total is not None:
                warmup = min(self.warmup_epochs * steps, total - 1)
                config["learning_rate"] = WarmupSchedule(peak, warmup, max(1, total - warmup), decay="cosine")
            else:
                config["learning_rate"] = peak
        if self.layer_decay is not None:
            if not isinstance(old, _MultiplierMixin):
                raise ArgumentError("layer_decay", self.layer_decay,
                                    "needs a tfxfer.optim discriminative optimizer (e.g. DiscriminativeAdam)")
            config["lr_multipliers"] = layerwise_decay(model, decay=self.layer_decay)
        strategy = getattr(model, "distribute_strategy", None)
        if strategy is not None:
            with strategy.scope():
                new = old.__class__.from_config(config)
                new.build(model.trainable_variables)
        else:
            new = old.__class__.from_config(config)
            new.build(model.trainable_variables)
        use_optimizer(model, new)  # the saved compile config follows, so the state loads back

    def get_state(self) -> dict:
        """JSON-able state for checkpoints: the stage in force and the epoch it was applied at."""
        applied = self.history[-1]["epoch"] if self.history else None
        return {"current_stage": self.current_stage, "applied_epoch": applied,
                "history": [dict(entry) for entry in self.history]}

    def restore_state(self, state: dict) -> None:
        """Re-apply the saved stage as it was applied originally (trainable set, optimizer class and
        learning-rate plan from the stage's first epoch); the caller then restores the optimizer's
        variables (``iterations`` continues the schedule)."""
        if not isinstance(state, dict) or "current_stage" not in state:
            raise ArgumentTypeError("state", state, "a dict from GradualUnfreezing.get_state()")
        stage = state["current_stage"]
        if stage is not None:
            stage = int(stage)
            if stage not in self.schedule:
                raise ArgumentError("state", state, f"names stage {stage}, which is not in this schedule "
                                    f"{sorted(self.schedule)}")
            applied = state.get("applied_epoch")
            self.apply_stage(stage, stage if applied is None else int(applied))
        self.current_stage = stage
        self.history = [dict(entry) for entry in state.get("history", [])]

    def get_config(self):
        return {
            "schedule": {str(k): v for k, v in self.schedule.items()},
            "learning_rates": {str(k): v for k, v in self.learning_rates.items()},
            "warmup_epochs": self.warmup_epochs,
            "layer_decay": self.layer_decay,
            "bn_policy": self.bn_policy,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
