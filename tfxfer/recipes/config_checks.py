"""Checks on a `RunConfig` that types alone cannot express: choices, ranges and combinations of keys.

`validate` runs once `tfxfer.recipes.schema.from_mapping` has given every key its type. Each
failure is a `ConfigError` that names the key path, what it must be and what was received (with
the closest valid choice). `MAX_INPUT_SIDE` caps ``model.input_size`` (and ``tfxfer rank
--input-size``).

Example:
    >>> from tfxfer.recipes.config import DataConfig, RunConfig, TrainConfig
    >>> validate(RunConfig(data=DataConfig(source="animal_mnist"), train=TrainConfig(optimizer="adan")))
    Traceback (most recent call last):
    ...
    tfxfer.errors.ConfigError: `train.optimizer` must be one of 'adam', 'adamw', 'sgd'. Received: 'adan'. Did you mean 'adam'?
"""

from __future__ import annotations

import math
import re

from tfxfer.errors import ConfigError, bounded_repr
from tfxfer.recipes.causal_lm_config import check_causal_lm
from tfxfer.recipes.config import (
    ADAPT_METHODS,
    AUGMENT_POLICIES,
    EXPORT_VARIANTS,
    MAX_SEED,
    MONITORS,
    STRATEGIES,
    TASKS,
    THRESHOLD_KEYS,
    THRESHOLD_RANGES,
    THRESHOLD_VARIANTS,
    RunConfig,
)
from tfxfer.recipes.schema import closest
from tfxfer.utils.validate import is_int


def _choice(path, value, choices):
    if value not in choices:
        match = closest(value, choices)
        hint = f" Did you mean {match!r}?" if match else ""
        raise ConfigError(f"`{path}` must be one of {', '.join(map(repr, choices))}. "
                          f"Received: {bounded_repr(value)}.{hint}")


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def validate(cfg: RunConfig) -> RunConfig:
    """Checks across keys and choices that types alone cannot express."""
    _choice("task", cfg.task, TASKS)
    check_causal_lm(cfg)  # the causal_lm: section (and, for that task, the keys it does not read)
    if not _SAFE_NAME.fullmatch(cfg.name or ""):
        raise ConfigError("`name` names the run folder (runs/<name>) and the exported files, so it must be "
                          "letters, digits, '.', '_' or '-' (no spaces or '/', at most 64 characters). "
                          f"Received: {bounded_repr(cfg.name)}")
    d, m, t, e = cfg.data, cfg.model, cfg.train, cfg.export
    if not d.source.strip():  # "  " would resolve to the current folder
        raise ConfigError("`data.source` is required: a packaged data set name (see `tfxfer datasets`), "
                          f"a folder of class sub-folders, or a table file. Received: {bounded_repr(d.source)}")
    _choice("data.color_mode", d.color_mode, ("rgb", "grayscale"))
    _choice("data.augment", d.augment, AUGMENT_POLICIES)
    _choice("data.on_leakage", d.on_leakage, ("warn", "raise", "drop", "ignore"))
    image = cfg.task == "image_classification"
    _choice("model.pooling", m.pooling, ("avg", "max") if image else ("avg", "mean", "cls", "pooled"))
    _choice("model.bn_policy", m.bn_policy, ("frozen", "train"))
    _choice("train.optimizer", t.optimizer, ("adam", "adamw", "sgd"))
    _choice("train.class_weight", t.class_weight, ("none", "balanced"))
    _choice("train.strategy", t.strategy, STRATEGIES)
    _choice("train.average_weights", t.average_weights, ("none", "ema", "swa"))
    _choice("train.monitor", t.monitor, MONITORS.get(cfg.task, MONITORS["image_classification"]))
    for key, value, off in (("label_smoothing", t.label_smoothing, 0.0), ("average_weights", t.average_weights, "none")):
        if value != off and not image:
            raise ConfigError(f"`train.{key}` is applied by image recipes only; use {off!r} for task {cfg.task!r}")
    if t.strategy != "default" and not image:
        raise ConfigError(f"`train.strategy` is applied by image recipes only; use 'default' for task {cfg.task!r}")
    _choice("quantize.method", cfg.quantize.method, ("qat", "prune", "cluster"))
    _check_ranges(cfg)
    _check_adapt(cfg)
    if t.l2sp > 0 and not image:
        raise ConfigError(f"`train.l2sp` is applied by image recipes only; set it to 0 for task {cfg.task!r}")
    if t.head_epochs + t.epochs == 0:
        raise ConfigError("`train.head_epochs` and `train.epochs` cannot both be 0")
    if not e.variants:
        raise ConfigError("`export.variants` must list at least one variant")
    for i, v in enumerate(e.variants):
        _choice(f"export.variants[{i}]", v, EXPORT_VARIANTS)
        if v in e.variants[:i]:
            raise ConfigError(f"`export.variants` must list each variant once; `export.variants[{i}]` repeats "
                              f"{v!r}. Received: {bounded_repr(list(e.variants))}")
    _choice("export.deliver", e.deliver, e.variants)
    if not e.threads:
        raise ConfigError("`export.threads` must list at least one thread count (the latency benchmark's columns). "
                          f"Received: {bounded_repr(list(e.threads))}")
    for variant, limits in e.thresholds.items():
        _choice(f"export.thresholds.{variant}", variant, THRESHOLD_VARIANTS)
        for key, value in limits.items():
            _choice(f"export.thresholds.{variant}.{key}", key, THRESHOLD_KEYS)
            low, high = THRESHOLD_RANGES[key]  # two checks: the message names the end that was crossed
            _in_range(f"export.thresholds.{variant}.{key}", value, low, None)
            _in_range(f"export.thresholds.{variant}.{key}", value, None, high)
    return cfg


#: Largest input side a recipe may ask for (a 4096x4096 float32 batch of 32 is already 6 GiB).
MAX_INPUT_SIDE = 4096
#: Upper bounds of the integer keys (`_check_ranges`): far above real recipes, below what overflows
#: TensorFlow's int32/int64 shapes or makes a run that never ends.
MAX_EXAMPLES = 2**31 - 1
MAX_BATCH_SIZE = 65536
MAX_EPOCHS = 100_000
MAX_BENCH_RUNS = 1_000_000
MAX_BINS = 10_000
MAX_THREADS = 1024
MAX_LAYERS = 100_000


def _bound(value) -> str:
    """A range bound as written in an error: integers in full (``4294967295``), floats short (``1e-05``)."""
    if value is None:
        return ""
    return str(value) if is_int(value) else f"{value:g}"


def _in_range(path, value, low, high, *, low_open=False, high_open=False, what="a finite number"):
    """`ConfigError` unless ``low <= value <= high`` (open ends as asked; NaN and inf never pass)."""
    if value is None:
        return
    finite = is_int(value) or math.isfinite(value)  # a huge YAML integer does not fit a float
    ok = finite and (low is None or (value > low if low_open else value >= low)) \
        and (high is None or (value < high if high_open else value <= high))
    if not ok:
        lo, hi = _bound(low), _bound(high)
        if low is not None and high is not None:
            need = f"in {'(' if low_open else '['}{lo}, {hi}{')' if high_open else ']'}"
        elif low is not None:
            need = f"{'>' if low_open else '>='} {lo}"
        else:
            need = f"{'<' if high_open else '<='} {hi}"
        raise ConfigError(f"`{path}` must be {what} {need}. Received: {bounded_repr(value)}")


def _check_ranges(cfg: RunConfig) -> None:
    """Every numeric key's range: learning rates > 0, epochs >= 0, fractions in range, counts >= 1..."""
    d, m, t, di, q, e, r = cfg.data, cfg.model, cfg.train, cfg.distill, cfg.quantize, cfg.export, cfg.report
    # (path, value, low, high): the highs keep a typo (an extra digit, 1e20) from reaching TensorFlow as an
    # int64 overflow or a run that never ends; they are far above any real recipe
    integers = (("seed", cfg.seed, 0, MAX_SEED), ("data.max_train", d.max_train, 1, MAX_EXAMPLES),
                ("data.max_eval", d.max_eval, 1, MAX_EXAMPLES), ("model.hidden_units", m.hidden_units, 1, 65536),
                ("model.sequence_length", m.sequence_length, 4, 65536),
                ("train.batch_size", t.batch_size, 1, MAX_BATCH_SIZE),
                ("train.head_epochs", t.head_epochs, 0, MAX_EPOCHS), ("train.epochs", t.epochs, 0, MAX_EPOCHS),
                ("distill.teacher_epochs", di.teacher_epochs, 0, MAX_EPOCHS),
                ("distill.epochs", di.epochs, 0, MAX_EPOCHS), ("quantize.epochs", q.epochs, 0, MAX_EPOCHS),
                ("export.num_calibration", e.num_calibration, 1, MAX_EXAMPLES),
                ("export.bench_runs", e.bench_runs, 1, MAX_BENCH_RUNS),
                ("report.misclassified", r.misclassified, 0, MAX_EXAMPLES),
                ("report.reliability_bins", r.reliability_bins, 1, MAX_BINS))
    for path, value, low, high in integers:  # two checks: the message names the end that was crossed
        _in_range(path, value, low, None, what="an integer")
        _in_range(path, value, None, high, what="an integer")
    for i, n in enumerate(e.threads):
        _in_range(f"export.threads[{i}]", n, 1, None, what="a thread count")
        _in_range(f"export.threads[{i}]", n, None, MAX_THREADS, what="a thread count")
    for path, value in (("data.validation_split", d.validation_split), ("data.test_split", d.test_split)):
        _in_range(path, value, 0.0, 1.0, high_open=True)
    if d.validation_split + d.test_split >= 1.0:
        raise ConfigError("`data.validation_split` + `data.test_split` must be < 1 (something must be left to "
                          f"train on). Received: {d.validation_split} + {d.test_split}")
    if m.input_size is not None:
        for i, side in enumerate(m.input_size):
            _in_range(f"model.input_size[{i}]", side, 1, MAX_INPUT_SIDE, what="an integer")
    _in_range("model.dropout", m.dropout, 0.0, 1.0, high_open=True)
    for path, value in (("train.base_lr", t.base_lr), ("train.unfreeze_lr_factor", t.unfreeze_lr_factor),
                        ("distill.temperature", di.temperature), ("distill.learning_rate", di.learning_rate),
                        ("quantize.learning_rate", q.learning_rate)):
        _in_range(path, value, 0.0, None, low_open=True)
    _in_range("train.warmup_epochs", t.warmup_epochs, 0.0, None)  # a float: half an epoch of warmup is fine
    _in_range("train.warmup_epochs", t.warmup_epochs, None, MAX_EPOCHS)
    _in_range("train.layer_decay", t.layer_decay, 0.0, 1.0, low_open=True)
    _in_range("train.l2sp", t.l2sp, 0.0, None)
    _in_range("train.label_smoothing", t.label_smoothing, 0.0, 1.0, high_open=True)
    _in_range("distill.alpha", di.alpha, 0.0, 1.0)
    _in_range("quantize.sparsity", q.sparsity, 0.0, 1.0, high_open=True)
    for stage, layers in (t.stages or {}).items():
        for value, high, what in ((stage, MAX_EPOCHS, "an integer (an epoch)"),
                                  (layers, MAX_LAYERS, "an integer (a layer count)")):
            _in_range(f"train.stages.{stage}", value, 0, None, what=what)
            _in_range(f"train.stages.{stage}", value, None, high, what=what)


def _check_adapt(cfg: RunConfig) -> None:
    """``adapt:``: a known method, a target, the method possible for the task, ranges."""
    a = cfg.adapt
    if a.method is None:
        return
    _choice("adapt.method", a.method, ADAPT_METHODS)
    if not a.target.strip():
        raise ConfigError(f"`adapt.target` is required with `adapt.method: {a.method}`: the target domain's data, "
                          "given like `data.source` (a packaged data set name, a folder, or a table file)")
    if a.target.strip() == cfg.data.source.strip():
        raise ConfigError(f"`adapt.target` is the recipe's own `data.source` ({bounded_repr(a.target)}): adapt to "
                          "data from the domain you deploy on")
    if cfg.task == "token_classification":
        raise ConfigError("`adapt` is applied by image and text classification recipes; remove it for "
                          "task 'token_classification'")
    if a.method == "adabn" and cfg.task != "image_classification":
        raise ConfigError("`adapt.method: adabn` re-estimates BatchNorm statistics, and text encoders have none "
                          "(they use LayerNorm); use 'coral', 'dann', 'self_train', 'coral_input' or 'label_shift'")
    if cfg.train.strategy != "default":
        raise ConfigError("`adapt` runs on one device; set `train.strategy: default` to adapt")
    if cfg.distill.enabled or cfg.quantize.enabled:
        raise ConfigError("`adapt` adapts the fine-tuned model; with `distill.enabled` or `quantize.enabled` the "
                          "exported model is another one, so the adaptation would not reach it. Turn one off")
    for path, value, low, high in (("adapt.epochs", a.epochs, 1, MAX_EPOCHS), ("adapt.rounds", a.rounds, 1, MAX_EPOCHS),
                                   ("adapt.max_examples", a.max_examples, 2, MAX_EXAMPLES)):
        _in_range(path, value, low, None, what="an integer")
        _in_range(path, value, None, high, what="an integer")
    _in_range("adapt.learning_rate", a.learning_rate, 0.0, None, low_open=True)
    _in_range("adapt.weight", a.weight, 0.0, None)
    _in_range("adapt.threshold", a.threshold, 0.0, 1.0, low_open=True)
    _in_range("adapt.per_class_fraction", a.per_class_fraction, 0.0, 1.0, low_open=True)


__all__ = ["MAX_BATCH_SIZE", "MAX_BENCH_RUNS", "MAX_BINS", "MAX_EPOCHS", "MAX_EXAMPLES", "MAX_INPUT_SIDE",
           "MAX_LAYERS", "MAX_THREADS", "validate"]
