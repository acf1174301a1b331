"""The recipe's sections as frozen dataclasses (`RunConfig` and its parts) and the values they may take.

A recipe is a YAML file with the sections below; every key is optional except that ``data.source``
must name a packaged data set, a folder or a table. `tfxfer.recipes.config_loader.load_config`
reads one into a `RunConfig` (the YAML: `tfxfer.recipes.recipe_yaml`; the checks across keys:
`tfxfer.recipes.config_checks`), and `config_to_yaml` writes the resolved recipe back out. Nothing
here imports TensorFlow.

Example:
    >>> cfg = RunConfig(data=DataConfig(source="animal_mnist"))
    >>> cfg.train.epochs, cfg.model.backbone, cfg.section("seed", "data")["data"]["source"]
    (2, 'efficientnet_lite0', 'animal_mnist')
    >>> print(config_to_yaml(cfg).splitlines()[0])
    name: run
"""

from __future__ import annotations

import dataclasses

import yaml

from tfxfer.recipes.causal_lm_config import CausalLMConfig
from tfxfer.recipes.schema import to_plain

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


def config_to_yaml(cfg: RunConfig) -> str:
    """The resolved recipe as YAML (what is saved beside the outputs)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)


__all__ = ["AdaptConfig", "DataConfig", "DistillConfig", "ExportConfig", "ModelConfig", "QuantizeConfig", "ReportConfig",
           "RunConfig", "TrainConfig", "config_to_yaml"]
