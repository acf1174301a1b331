"""Recipe configuration: strict YAML -> frozen dataclasses, ``--set`` overrides, resolved output.

A recipe is a YAML file with the sections below; every key is optional except that ``data.source``
must name a packaged data set, a folder or a table. Unknown keys, wrong types and bad choices are
`ConfigError` s that name the key path and suggest the closest valid key.

Example:
    >>> cfg = load_config(text="data: {source: animal_mnist}\\ntrain: {epochs: 1}",
    ...                   overrides=["model.input_size=[32, 32]", "model.weights=null"])
    >>> cfg.data.source, cfg.train.epochs, cfg.model.input_size, cfg.model.weights
    ('animal_mnist', 1, (32, 32), None)
    >>> load_config(text="train: {head_epochz: 2}")
    Traceback (most recent call last):
    ...
    tfxfer.errors.ConfigError: unknown key `train.head_epochz`. Did you mean `train.head_epochs`?
"""

from __future__ import annotations

import codecs
import copy
import dataclasses
import math
import os
import re

import yaml

from tfxfer.errors import ConfigError, bounded_repr
from tfxfer.recipes.causal_lm_config import CausalLMConfig, check_causal_lm, check_causal_lm_keys
from tfxfer.recipes.schema import closest, convert, from_mapping, schema_at, to_plain
from tfxfer.utils.validate import is_int

TASKS = ("image_classification", "text_classification", "token_classification", "causal_lm")
#: Mirrors tfxfer.augment.list_policies() and tfxfer.export.VARIANTS (a test keeps them in step);
#: kept here so that checking a recipe does not import TensorFlow.
AUGMENT_POLICIES = ("none", "flips", "light", "medium", "heavy")
EXPORT_VARIANTS = ("float32", "float16", "dynamic", "int8")
#: ``export.thresholds`` may also set the limits of the text remedy file (default: the dynamic file's).
THRESHOLD_VARIANTS = EXPORT_VARIANTS + ("weight_only",)
STRATEGIES = ("default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")  # tfxfer.reliability.STRATEGIES
THRESHOLD_KEYS = ("min_top1_agreement", "max_accuracy_drop", "max_abs_error", "max_class_accuracy_drop",
                  "max_ece_increase")
#: The range of each gate limit {key: (low, high or None)}, both ends included: agreement and ECE are
#: fractions, accuracy drops are points. Recipes and ``tfxfer export`` refuse a limit outside it;
#: `tfxfer.export.gate.check_thresholds` refuses only NaN and inf (a finite limit no file meets just
#: fails the gate, which is how a caller forces a failure).
THRESHOLD_RANGES = {"min_top1_agreement": (0.0, 1.0), "max_accuracy_drop": (0.0, 100.0), "max_abs_error": (0.0, None),
                    "max_class_accuracy_drop": (0.0, 100.0), "max_ece_increase": (0.0, 1.0)}
#: The values ``train.monitor`` may name, per task: the training core (`tfxfer.train.fine_tune`) takes
#: validation values only, and the recipes compile the default loss and metrics of
#: `tfxfer.train.losses.compile_args` ("accuracy"; "binary_accuracy" for a multi-label text table).
MONITORS = {"image_classification": ("val_loss", "val_accuracy"),
            "text_classification": ("val_loss", "val_accuracy", "val_binary_accuracy"),
            "token_classification": ("val_loss", "val_accuracy"),
            "causal_lm": ("val_loss",)}
#: The largest ``seed``: NumPy and TensorFlow take seeds in [0, 2**32 - 1].
MAX_SEED = 2**32 - 1


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are split.

    ``source`` is a packaged data set name (``tfxfer datasets``), a folder of class sub-folders
    (images), a CSV/TSV table (images: path,label; texts: text,label) or a CoNLL file (NER).
    ``allow_outside_root`` lets an image table's rows name absolute paths or paths leading outside
    the table's folder (refused and counted as skips by default).
    """

    source: str = ""
    validation_split: float = 0.1
    test_split: float = 0.1
    max_train: int | None = None
    max_eval: int | None = None
    color_mode: str = "rgb"
    augment: str = "none"
    on_leakage: str = "warn"
    text_column: str = "text"
    label_column: str = "label"
    path_column: str = "path"
    allow_outside_root: bool = False


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The pretrained backbone (image catalog name, or a text encoder preset) and the new head."""

    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"
    input_size: tuple[int, int] | None = None
    pooling: str = "avg"
    dropout: float = 0.2
    hidden_units: int | None = None
    bn_policy: str = "frozen"
    sequence_length: int = 64


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Head on cached features, then staged top-down unfreezing (see `tfxfer.train.fine_tune.fine_tune`).

    ``l2sp`` > 0 pulls the backbone towards its pretrained weights during unfreezing (L2-SP).
    ``strategy`` trains under a ``tf.distribute`` strategy by name (see
    `tfxfer.reliability.get_strategy`; "multi_worker_mirrored" reads ``TF_CONFIG`` and each worker
    other than the chief writes to ``<run>/workers/worker-<index>``). ``deterministic`` turns on
    TensorFlow's deterministic ops and seeds every random source with ``seed``.
    ``warmup_epochs`` None warms up over 10 % of each unfreezing stage, then decays within it.
    ``monitor`` picks the best validation epoch of every step (``restore_best``) and decides whether
    the unfreezing step is kept (``keep_if_better``: else the head-only model is kept and the
    report says so). ``label_smoothing`` (image recipes; 0 = off) smooths the classification loss of
    both steps; ``average_weights`` ("none", "ema" or "swa", image recipes) averages the weights over
    the last unfreezing epochs (`tfxfer.train.averaging`). Both are off by default: neither gained on
    the benchmarks (benchmarks/results/vs_hand_written.json).
    """

    batch_size: int = 32
    head_epochs: int = 5
    epochs: int = 2
    base_lr: float = 1e-3
    unfreeze_lr_factor: float = 0.1
    warmup_epochs: float | None = None
    layer_decay: float = 0.8
    monitor: str = "val_loss"
    restore_best: bool = True
    keep_if_better: bool = True
    optimizer: str = "adam"
    stages: dict[int, int] | None = None
    cached_features: bool = True
    class_weight: str = "none"
    l2sp: float = 0.0
    strategy: str = "default"
    deterministic: bool = False
    label_smoothing: float = 0.0
    average_weights: str = "none"


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Teacher -> student distillation (the student is the ``model`` section)."""

    enabled: bool = False
    teacher: str = "efficientnet_lite2"
    teacher_weights: str | None = "imagenet"
    teacher_epochs: int = 2
    epochs: int = 3
    temperature: float = 4.0
    alpha: float = 0.5
    learning_rate: float = 1e-3


@dataclasses.dataclass(frozen=True)
class QuantizeConfig:
    """Quantization-aware training / pruning before the TFLite export."""

    enabled: bool = False
    method: str = "qat"
    epochs: int = 1
    learning_rate: float = 1e-5
    sparsity: float = 0.5


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """TFLite variants, the verification gate and the latency benchmark."""

    variants: tuple[str, ...] = ("float32", "int8")
    deliver: str = "int8"
    num_calibration: int = 200
    thresholds: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    benchmark: bool = True
    bench_runs: int = 30
    threads: tuple[int, ...] = (1, 2)
    saved_model: bool = False


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """What the HTML / Markdown report shows."""

    misclassified: int = 16
    reliability_bins: int = 15  # the reliability diagram's bins (ECE is always 15 bins, tfxfer.metrics)


ADAPT_METHODS = ("adabn", "coral", "dann", "self_train", "coral_input", "label_shift")


@dataclasses.dataclass(frozen=True)
class AdaptConfig:
    """Domain adaptation of the fine-tuned model to ``target`` (`tfxfer.recipes.adapt_stages`).

    ``method`` null (the default) adapts nothing; else "adabn" (BatchNorm statistics, image
    models), "coral", "dann", "self_train", "coral_input" (the head retrained on source features
    given the target's mean and covariance, closed form) or "label_shift" (the output layer
    corrected for the target's EM-estimated class priors). ``target`` is read like ``data.source``; only its
    inputs are adapted on, its labels score the result (``<run>/adaptation.json``). ``epochs``,
    ``learning_rate`` (null: ``train.base_lr * train.unfreeze_lr_factor``) and ``weight`` (the
    CORAL / domain loss weight) drive coral / dann; ``threshold``, ``rounds``, ``epochs`` (per
    round) and ``per_class_fraction`` drive self_train. ``max_examples`` caps each domain's
    training and held-out examples; ``shift`` runs `tfxfer.adapt.detect_shift` first.
    """

    method: str | None = None
    target: str = ""
    epochs: int = 2
    learning_rate: float | None = None
    weight: float = 1.0
    threshold: float = 0.9
    rounds: int = 2
    per_class_fraction: float | None = 0.2
    max_examples: int | None = 1000
    shift: bool = True


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole recipe, resolved."""

    name: str = "run"
    task: str = "image_classification"
    seed: int = 0
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    distill: DistillConfig = dataclasses.field(default_factory=DistillConfig)
    quantize: QuantizeConfig = dataclasses.field(default_factory=QuantizeConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)
    adapt: AdaptConfig = dataclasses.field(default_factory=AdaptConfig)
    causal_lm: CausalLMConfig = dataclasses.field(default_factory=CausalLMConfig)  # task: causal_lm only

    def to_dict(self) -> dict:
        """Plain nested dict (YAML/JSON safe)."""
        return to_plain(self)

    def section(self, *names: str) -> dict:
        """Plain dicts of the named sections (``"seed"``/``"task"``/``"name"`` give the value)."""
        return {n: to_plain(getattr(self, n)) for n in names}


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise ConfigError(f"duplicate key `{key}` (line {key_node.start_mark.line + 1})")
        seen[key] = True
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

#: Limits on a recipe: its size in bytes, its nesting depth, and the number of values it holds once
#: YAML aliases are expanded (a few hundred bytes of aliases can stand for billions of values).
MAX_RECIPE_BYTES = 1 << 20
MAX_DEPTH = 16
MAX_VALUES = 10_000

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def decode_recipe(data: bytes, *, where: str = "recipe") -> str:
    """Recipe bytes -> text: UTF-8, or any UTF-8/16/32 text that starts with a byte-order mark.

    Example:
        >>> decode_recipe("seed: 1".encode("utf-16"))
        'seed: 1'
    """
    if len(data) > MAX_RECIPE_BYTES:
        raise ConfigError(f"{where} is {len(data)} bytes; a recipe holds at most {MAX_RECIPE_BYTES} bytes")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding)
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{where} starts with a {encoding} byte-order mark but is not valid {encoding} "
                                  f"at byte {exc.start + len(bom)}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 text (byte {exc.start}: {bounded_repr(data[exc.start:exc.start + 4])}) "
                          "and has no byte-order mark; save it as UTF-8") from None


def check_shape(raw, *, where: str = "recipe") -> None:
    """Refuse values nested deeper than `MAX_DEPTH` or holding more than `MAX_VALUES` values.

    The walk stops as soon as a limit is passed, so an alias bomb or a recursive alias costs at
    most `MAX_VALUES` steps.
    """
    budget = [MAX_VALUES]

    def walk(value, depth):
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where} is nested more than {MAX_DEPTH} levels deep (a recursive YAML alias?)")
        budget[0] -= 1
        if budget[0] < 0:
            raise ConfigError(f"{where} holds more than {MAX_VALUES} values once YAML aliases are expanded "
                              "(an alias bomb?)")
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k, depth + 1)
                walk(v, depth + 1)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, depth + 1)

    walk(raw, 0)


def parse_yaml(text: str, *, where: str = "recipe") -> dict:
    """YAML text -> dict (safe loader, duplicate keys rejected, size and nesting bounded)."""
    if len(text) > MAX_RECIPE_BYTES:
        raise ConfigError(f"{where} holds {len(text)} characters; a recipe holds at most {MAX_RECIPE_BYTES}")
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{at}: {bounded_repr(problem)[1:-1]}") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to read") from None
    if raw is None:
        return {}
    check_shape(raw, where=where)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping of sections (data:, model:, ...). "
                          f"Received: {bounded_repr(raw)}")
    return raw


def parse_override(item: str) -> tuple[list[str], object]:
    """``"train.epochs=3"`` -> (["train", "epochs"], 3); the value is read as a YAML scalar/list."""
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"--set expects key.sub=value. Received: {bounded_repr(item)}")
    key, _, text = item.partition("=")
    if len(key) > 200 or key.count(".") > MAX_DEPTH:
        raise ConfigError(f"--set: the key path is too long (at most 200 characters, {MAX_DEPTH} levels). "
                          f"Received: {bounded_repr(key)}")
    keys = [k.strip() for k in key.strip().split(".")]
    if not all(keys):
        raise ConfigError(f"--set expects key.sub=value. Received: {bounded_repr(item)}")
    if len(text) > MAX_RECIPE_BYTES:
        raise ConfigError(f"--set {'.'.join(keys)}: the value holds {len(text)} characters (at most {MAX_RECIPE_BYTES})")
    try:
        value = yaml.load(text, Loader=_StrictLoader) if text.strip() else None  # noqa: S506
    except yaml.YAMLError:
        value = text
    except RecursionError:
        raise ConfigError(f"--set {'.'.join(keys)}: the value is nested too deeply") from None
    check_shape(value, where=f"--set {'.'.join(keys)}")
    return keys, value


def apply_overrides(raw: dict, overrides) -> dict:
    """Apply ``--set`` items to the parsed recipe (validated against the schema first)."""
    out = copy.deepcopy(raw)
    for item in overrides or ():
        keys, value = parse_override(item)
        schema_at(RunConfig, keys, where=f"--set {item}: ")
        node = out
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {item}: `{'.'.join(keys[:i + 1])}` is not a section")
            node = child
        node[keys[-1]] = value
    return out


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
    integers = (("seed", cfg.seed, 0), ("data.max_train", d.max_train, 1), ("data.max_eval", d.max_eval, 1),
                ("model.hidden_units", m.hidden_units, 1), ("model.sequence_length", m.sequence_length, 4),
                ("train.batch_size", t.batch_size, 1), ("train.head_epochs", t.head_epochs, 0),
                ("train.epochs", t.epochs, 0), ("train.warmup_epochs", t.warmup_epochs, 0),
                ("distill.teacher_epochs", di.teacher_epochs, 0), ("distill.epochs", di.epochs, 0),
                ("quantize.epochs", q.epochs, 0), ("export.num_calibration", e.num_calibration, 1),
                ("export.bench_runs", e.bench_runs, 1), ("report.misclassified", r.misclassified, 0),
                ("report.reliability_bins", r.reliability_bins, 1))
    for path, value, low in integers:
        _in_range(path, value, low, None, what="an integer")
    _in_range("seed", cfg.seed, None, MAX_SEED, what="an integer")  # NumPy and TensorFlow seeds are 32-bit
    for i, n in enumerate(e.threads):
        _in_range(f"export.threads[{i}]", n, 1, None, what="a thread count")
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
    _in_range("train.layer_decay", t.layer_decay, 0.0, 1.0, low_open=True)
    _in_range("train.l2sp", t.l2sp, 0.0, None)
    _in_range("train.label_smoothing", t.label_smoothing, 0.0, 1.0, high_open=True)
    _in_range("distill.alpha", di.alpha, 0.0, 1.0)
    _in_range("quantize.sparsity", q.sparsity, 0.0, 1.0, high_open=True)
    for stage, layers in (t.stages or {}).items():
        _in_range(f"train.stages.{stage}", stage, 0, None, what="an integer (an epoch)")
        _in_range(f"train.stages.{stage}", layers, 0, None, what="an integer (a layer count)")


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
    for path, value, low in (("adapt.epochs", a.epochs, 1), ("adapt.rounds", a.rounds, 1),
                             ("adapt.max_examples", a.max_examples, 2)):
        _in_range(path, value, low, None, what="an integer")
    _in_range("adapt.learning_rate", a.learning_rate, 0.0, None, low_open=True)
    _in_range("adapt.weight", a.weight, 0.0, None)
    _in_range("adapt.threshold", a.threshold, 0.0, 1.0, low_open=True)
    _in_range("adapt.per_class_fraction", a.per_class_fraction, 0.0, 1.0, low_open=True)


def read_recipe_file(path, *, where: str | None = None) -> str:
    """The text of recipe file ``path`` (a regular file of at most `MAX_RECIPE_BYTES`, any BOM).

    Raises:
        ConfigError: missing, not a regular file (a FIFO would block), too large, or not text.
    """
    import stat

    path = os.fspath(path)
    where = where or path
    try:
        st = os.stat(path)
    except OSError:
        raise ConfigError(f"recipe file not found: {path}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"recipe file not found: {path} (it is not a regular file)")
    with open(path, "rb") as f:
        data = f.read(MAX_RECIPE_BYTES + 1)
    return decode_recipe(data, where=where)


def load_config(path=None, *, text: str | None = None, overrides=()) -> RunConfig:
    """Read a recipe (file ``path`` or YAML ``text``), apply ``--set`` overrides, validate.

    Args:
        path: a YAML recipe file.
        text: YAML text instead of a file.
        overrides: ``["key.sub=value", ...]``; values are YAML (``3``, ``1e-3``, ``null``, ``[96, 96]``).

    Returns:
        A frozen `RunConfig`; ``name`` defaults to the file name without extension.

    Raises:
        ConfigError: unreadable file, invalid YAML, unknown key (with the closest valid key), wrong
            type, bad choice, or a bad override path.
    """
    where = "recipe"
    if path is not None:
        path = os.fspath(path)
        where = path
        text = read_recipe_file(path)
    raw = parse_yaml(text or "", where=where)
    raw = apply_overrides(raw, overrides)
    if "name" not in raw and path is not None:
        raw["name"] = os.path.splitext(os.path.basename(path))[0]
    try:
        check_causal_lm_keys(raw)  # keys a causal-LM recipe would ignore, even set to their defaults
        return validate(from_mapping(RunConfig, raw))
    except ConfigError as exc:
        if path is not None:
            raise ConfigError(f"{os.path.basename(path)}: {exc}") from None
        raise


def config_to_yaml(cfg: RunConfig) -> str:
    """The resolved recipe as YAML (what is saved beside the outputs)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)


def replace(cfg: RunConfig, **sections) -> RunConfig:
    """A copy of ``cfg`` with sections replaced, e.g. ``replace(cfg, train={"epochs": 1})``."""
    values = {}
    for name, value in sections.items():
        current = getattr(cfg, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            merged = {**to_plain(current), **value}
            values[name] = convert(merged, type(current), name)
        else:
            values[name] = value
    return validate(dataclasses.replace(cfg, **values))


__all__ = ["AdaptConfig", "DataConfig", "DistillConfig", "ExportConfig", "ModelConfig", "QuantizeConfig", "ReportConfig",
           "RunConfig", "TrainConfig", "apply_overrides", "config_to_yaml", "load_config", "parse_override",
           "replace"]
