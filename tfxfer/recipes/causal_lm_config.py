"""The ``causal_lm:`` section of a recipe (``task: causal_lm``) and its checks, without TensorFlow.

A causal-LM recipe adapts a decoder (`tfxfer.causal_lm`) to a text corpus and ships it as one
TFLite decoder (`tfxfer.recipes.causal_lm_stages`). Its keys:

* ``data.source``: the corpus: a packaged text data set (``bbc_news``: its train / val splits) or
  a ``.txt`` / ``.md`` file whose documents are separated by blank lines (split by
  ``data.validation_split`` with ``seed``).
* ``causal_lm:``: ``model`` (a catalog name such as ``smollm2-135m``, a ``.gguf`` file, a folder
  `tfxfer.causal_lm.save_causal_lm` wrote, or a local Hugging Face Llama directory),
  ``train_texts`` / ``val_texts`` (how many documents; null: all), ``sequence_length``,
  ``batch_size``, ``base_lr``, ``epochs``, ``lora_rank`` (null: full fine-tuning),
  ``warmup_share``, ``lr_decay``, ``budget_s`` (stop training after this many seconds; null: no
  limit), ``samples`` / ``prompts`` / ``max_new_tokens`` (the sample generations of the report:
  the given prompts, else the first ``prompt_words`` words of the first ``samples`` held-out
  documents) and ``export:`` (``enabled``, ``quantization``: float32 / float16 / int8 /
  dynamic_int8, ``fallback``: the variants tried in order when it fails its gate,
  ``cache_length``, ``gate_texts``, ``min_top1_agreement``, ``max_perplexity_change``, and
  ``saved_model``: also a SavedModel with a string-in, string-out greedy ``generate`` signature of
  ``max_new_tokens`` tokens, `tfxfer.causal_lm.save_generate_savedmodel`).

The image/text sections (``model``, ``train``, ``export``, ``distill``, ``quantize``,
``adapt``) do not apply to this task: a value other than their default is refused, with the
``causal_lm.*`` key to use instead.

Example:
    >>> from tfxfer.recipes.config_loader import load_config
    >>> cfg = load_config(text="task: causal_lm\\ndata: {source: bbc_news}\\ncausal_lm: {lora_rank: 4}")
    >>> cfg.causal_lm.model, cfg.causal_lm.lora_rank, cfg.causal_lm.export.quantization
    ('smollm2-135m', 4, 'float16')
    >>> load_config(text="task: causal_lm\\ndata: {source: bbc_news}\\ntrain: {epochs: 3}")
    Traceback (most recent call last):
    ...
    tfxfer.errors.ConfigError: `train.epochs` is not used by task 'causal_lm'; use `causal_lm.epochs`
"""

from __future__ import annotations

import dataclasses
import math

from tfxfer.errors import ConfigError, bounded_repr
from tfxfer.recipes.schema import closest, to_plain

TASK = "causal_lm"
#: The decoder file variants a recipe may ask for (`tfxfer.export.decoder_tflite.QUANTIZATIONS`,
#: None spelled "float32"); kept here so that checking a recipe does not import TensorFlow.
QUANTIZATIONS = ("float32", "float16", "int8", "int8_hybrid", "dynamic_int8", "int8_block")
LR_DECAYS = ("constant", "cosine")  # tfxfer.causal_lm.adapt.LR_DECAYS
#: Where a key of another section lives in a causal-LM recipe (None: it has no counterpart).
_MOVED = {"model.backbone": "causal_lm.model", "model.sequence_length": "causal_lm.sequence_length",
          "train.batch_size": "causal_lm.batch_size", "train.base_lr": "causal_lm.base_lr",
          "train.epochs": "causal_lm.epochs", "data.max_train": "causal_lm.train_texts",
          "data.max_eval": "causal_lm.val_texts", "export.variants": "causal_lm.export.quantization",
          "export.deliver": "causal_lm.export.quantization", "export.thresholds": "causal_lm.export.min_top1_agreement"}
#: Sections (and data keys) a causal-LM recipe does not read.
_UNUSED_SECTIONS = ("model", "train", "export", "distill", "quantize", "adapt")
_UNUSED_DATA = ("test_split", "max_train", "max_eval", "color_mode", "augment", "on_leakage", "text_column",
                "label_column", "path_column", "allow_outside_root")


@dataclasses.dataclass(frozen=True)
class CausalLMExportConfig:
    """The TFLite decoder (`tfxfer.export.decoder_tflite.save_decoder`), gated on held-out texts."""

    enabled: bool = True
    quantization: str = "float16"
    fallback: tuple[str, ...] = ("float16", "float32")
    cache_length: int = 256
    gate_texts: int = 4
    min_top1_agreement: float = 0.99
    max_perplexity_change: float = 0.02
    saved_model: bool = False


@dataclasses.dataclass(frozen=True)
class CausalLMConfig:
    """Adaptation, evaluation and export of a causal LM (see the module docstring)."""

    model: str = "smollm2-135m"
    train_texts: int | None = 300
    val_texts: int | None = 12
    sequence_length: int = 256
    batch_size: int = 4
    base_lr: float = 1e-3
    epochs: int = 1
    lora_rank: int | None = 16
    warmup_share: float = 0.05
    lr_decay: str = "constant"
    budget_s: float | None = None
    samples: int = 3
    prompts: tuple[str, ...] = ()
    prompt_words: int = 12
    max_new_tokens: int = 32
    export: CausalLMExportConfig = dataclasses.field(default_factory=CausalLMExportConfig)


def _fail_range(path, value, need):
    raise ConfigError(f"`{path}` must be {need}. Received: {bounded_repr(value)}")


def _at_least(path, value, low, *, allow_none=False):
    if value is None and allow_none:
        return
    if value < low:
        _fail_range(path, value, f"an integer >= {low}" + (" (or null)" if allow_none else ""))


def _number(path, value, low, high=None, *, low_open=False, high_open=False, allow_none=False):
    if value is None and allow_none:
        return
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and (
        high is None or (value < high if high_open else value <= high))
    if not ok:
        need = f"{'>' if low_open else '>='} {low:g}" if high is None else \
            f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        _fail_range(path, value, f"a finite number {need}")


def _choice(path, value, choices):
    if value not in choices:
        match = closest(str(value), choices)
        hint = f" Did you mean {match!r}?" if match else ""
        raise ConfigError(f"`{path}` must be one of {', '.join(map(repr, choices))}. "
                          f"Received: {bounded_repr(value)}.{hint}")


def _changed(section: str, value, default) -> list[str]:
    now, was = to_plain(value), to_plain(default)
    return [f"{section}.{key}" for key in now if now[key] != was.get(key)]


def check_causal_lm_keys(raw) -> None:
    """`ConfigError` for any key a ``task: causal_lm`` recipe (parsed YAML with its overrides) sets but
    does not read, even to its default value (`check_causal_lm` sees values only)."""
    if not isinstance(raw, dict) or raw.get("task") != TASK:
        return
    keys = []
    for name in _UNUSED_SECTIONS:
        section = raw.get(name)
        if isinstance(section, dict):
            keys += [f"{name}.{key}" for key in section]
        elif section is not None:
            keys.append(name)
    data = raw.get("data")
    if isinstance(data, dict):
        keys += [f"data.{key}" for key in data if key in _UNUSED_DATA]
    if keys:
        _unused(keys[0])


def _unused(key):
    moved = _MOVED.get(key)
    hint = f"; use `{moved}`" if moved else "; remove it (a causal-LM recipe reads `data.source`, " \
                                           "`data.validation_split`, `seed` and `causal_lm.*`)"
    raise ConfigError(f"`{key}` is not used by task 'causal_lm'{hint}")


def check_causal_lm(cfg) -> None:
    """`ConfigError` unless ``cfg.causal_lm`` (and, for task causal_lm, every other key) makes sense.

    A recipe of another task must leave the ``causal_lm:`` section at its defaults.
    """
    c = cfg.causal_lm
    if cfg.task != TASK:
        changed = _changed("causal_lm", c, CausalLMConfig())
        if changed:
            raise ConfigError(f"`{changed[0]}` is read by task 'causal_lm' only; remove the `causal_lm:` section "
                              f"for task {cfg.task!r}")
        return
    unused = []
    for name in _UNUSED_SECTIONS:
        section = getattr(cfg, name)
        unused += _changed(name, section, type(section)())
    data, data_default = to_plain(cfg.data), to_plain(type(cfg.data)())
    unused += [f"data.{k}" for k in _UNUSED_DATA if data[k] != data_default[k]]
    if unused:
        _unused(unused[0])
    if not c.model.strip():
        raise ConfigError("`causal_lm.model` is required: a catalog name (smollm2-135m), a .gguf file, a folder "
                          "save_causal_lm wrote, or a local Hugging Face Llama directory")
    _at_least("causal_lm.train_texts", c.train_texts, 1, allow_none=True)
    _at_least("causal_lm.val_texts", c.val_texts, 1, allow_none=True)
    _at_least("causal_lm.sequence_length", c.sequence_length, 2)
    _at_least("causal_lm.batch_size", c.batch_size, 1)
    _at_least("causal_lm.epochs", c.epochs, 1)
    _at_least("causal_lm.lora_rank", c.lora_rank, 1, allow_none=True)
    _at_least("causal_lm.samples", c.samples, 0)
    _at_least("causal_lm.prompt_words", c.prompt_words, 1)
    _at_least("causal_lm.max_new_tokens", c.max_new_tokens, 1)
    _number("causal_lm.base_lr", c.base_lr, 0.0, low_open=True)
    _number("causal_lm.warmup_share", c.warmup_share, 0.0, 1.0, high_open=True)
    _number("causal_lm.budget_s", c.budget_s, 0.0, low_open=True, allow_none=True)
    _choice("causal_lm.lr_decay", c.lr_decay, LR_DECAYS)
    for i, prompt in enumerate(c.prompts):
        if not prompt.strip():
            raise ConfigError(f"`causal_lm.prompts[{i}]` must be a non-empty string. Received: {bounded_repr(prompt)}")
    e = c.export
    _choice("causal_lm.export.quantization", e.quantization, QUANTIZATIONS)
    for i, variant in enumerate(e.fallback):
        _choice(f"causal_lm.export.fallback[{i}]", variant, QUANTIZATIONS)
    _at_least("causal_lm.export.cache_length", e.cache_length, 2)
    _at_least("causal_lm.export.gate_texts", e.gate_texts, 1)
    _number("causal_lm.export.min_top1_agreement", e.min_top1_agreement, 0.0, 1.0)
    _number("causal_lm.export.max_perplexity_change", e.max_perplexity_change, 0.0)


__all__ = ["CausalLMConfig", "CausalLMExportConfig", "QUANTIZATIONS", "check_causal_lm", "check_causal_lm_keys"]
