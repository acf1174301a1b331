"""What ``tfxfer rank RECIPE|DATA`` ranks: the data source, its kind (images or texts), the
candidates, and the negative-transfer probe of the winner.

A recipe (``.yaml``) gives its data source, color mode and input size, and the default candidates
(its own backbone plus `DEFAULT_CANDIDATES`). Anything else is a data source: a packaged text data
set, a TSV / JSONL table or a CSV with a ``text`` column holds texts (`is_text_source`), the rest
holds images. The ranking itself is `tfxfer.transfer.rank_backbones`.

TensorFlow is imported only by the functions that load data, parse catalog names or probe, so a
recipe typo stays a fast one-line error.

Example:
    >>> from tfxfer.recipes.ranking import image_rank_inputs
    >>> inputs = image_rank_inputs("pipelines/quick.yaml")  # doctest: +SKIP
    >>> [c.label for c in inputs.candidates]  # doctest: +SKIP
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
"""

from __future__ import annotations

import csv
import os
from typing import NamedTuple

from tfxfer.errors import ArgumentError, ConfigError
from tfxfer.recipes.config_checks import MAX_INPUT_SIDE
from tfxfer.recipes.config_loader import load_config
from tfxfer.recipes.sources import resolve_source
from tfxfer.utils.validate import check_int

DEFAULT_CANDIDATES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
TEXT_TABLES = (".tsv", ".tab", ".jsonl", ".ndjson")


def is_recipe(path: str) -> bool:
    """Whether ``path`` names a YAML recipe (by its extension)."""
    return path.lower().endswith((".yaml", ".yml"))


def _dataset_key(source: str) -> str:
    return source.strip().lower().replace("-", "_")


def is_text_source(source: str) -> bool:
    """A packaged text data set, a TSV / JSONL table, or a CSV whose header has a ``text`` column
    (and no ``path`` column).

    Raises:
        ArgumentError: a packaged token-classification (NER) data set, which is not ranked.
    """
    from tfxfer.data import describe, list_datasets  # imports TensorFlow

    key = _dataset_key(source)
    if key in list_datasets():
        task = describe(key).task
        if task == "token_classification":
            raise ArgumentError("data", source, "must be a classification data set; `tfxfer rank` does not rank "
                                "NER (token classification) data")
        return task == "text_classification"
    path = os.path.abspath(os.path.expanduser(source))
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(TEXT_TABLES):
        return True
    if path.lower().endswith(".csv"):
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            header = [c.strip().lower() for c in next(csv.reader(f), [])]
        return "text" in header and "path" not in header
    return False


def image_candidates(items) -> list:
    """Candidate strings -> `Candidate` s in order, without repeats (same backbone, weights and size).

    Raises:
        ArgumentError: an item names a text encoder.
        UnknownNameError: an item names no catalog backbone.
    """
    from tfxfer.transfer.candidates import Candidate  # imports TensorFlow
    from tfxfer.transfer.text_candidates import is_text_candidate

    out, seen = [], set()
    for item in (i.strip() for i in items if i.strip()):
        if is_text_candidate(item):
            raise ArgumentError("candidates", item, "must be image backbones: the data holds images, and this "
                                "is a text encoder")
        candidate = Candidate.parse(item)
        key = (candidate.backbone, candidate.weights, candidate.input_size)
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


def text_candidates(items) -> list:
    """Candidate strings -> `TextCandidate` s in order, without repeats (same preset, weights and length).

    Raises:
        ArgumentError: an item names an image backbone.
    """
    from tfxfer.transfer.text_candidates import as_text_candidate  # imports TensorFlow

    out, seen = [], set()
    for item in (i.strip() for i in items if i.strip()):
        candidate = as_text_candidate(item)
        key = (candidate.preset, candidate.pretrained, candidate.sequence_length)
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


class ImageRankInputs(NamedTuple):
    """What an image ranking runs on: a data source, its channels, an input size (or None for each
    backbone's own) and the candidates."""

    source: str
    channels: int
    input_size: tuple | None
    candidates: list


def image_rank_inputs(data: str, *, candidates=None, overrides=(), input_size: int | None = None) -> ImageRankInputs:
    """`ImageRankInputs` from a recipe or an image data source.

    Args:
        data: a recipe (``.yaml``) or an image data source (packaged name, folder, CSV table).
        candidates: candidate strings; None takes a recipe's backbone plus `DEFAULT_CANDIDATES`
            (a data source needs them).
        overrides: ``key=value`` recipe overrides (a recipe only).
        input_size: square input size (1 to `MAX_INPUT_SIDE`, as a recipe's) for candidates without
            their own; None takes the recipe's ``model.input_size``, else each backbone's native size.

    Raises:
        ConfigError: a bad recipe, a missing data folder, a recipe whose task is not image classification.
        ArgumentError: overrides without a recipe, no candidates for a data source, a bad input size.
    """
    input_size = check_int("input_size", input_size, low=1, allow_none=True)
    if input_size is not None:
        check_int("input_size", input_size, low=None, high=MAX_INPUT_SIDE)  # a recipe's cap
    square = (input_size, input_size) if input_size else None
    if not is_recipe(data):
        if overrides:
            raise ArgumentError("overrides", list(overrides), "apply only when ranking from a recipe (.yaml)")
        if not candidates:
            raise ArgumentError("candidates", candidates, "are required when `data` is not a recipe (.yaml)")
        return ImageRankInputs(data, 3, square, image_candidates(candidates))
    cfg = load_config(data, overrides=list(overrides))
    if cfg.task != "image_classification":
        raise ConfigError(f"{os.path.basename(data)}: `tfxfer rank` ranks image backbones; the recipe's task "
                          f"is {cfg.task!r}")
    resolve_source(cfg)  # strict: a missing folder or an unknown data set is a one-line ConfigError
    size = square or cfg.model.input_size
    if not candidates:
        weights = cfg.model.weights
        own = cfg.model.backbone + ("" if weights == "imagenet" else f":{weights or 'random'}")
        candidates = [own, *DEFAULT_CANDIDATES]
    channels = 1 if cfg.data.color_mode == "grayscale" else 3
    return ImageRankInputs(cfg.data.source, channels, tuple(size) if size else None, image_candidates(candidates))


def load_text_rank_data(source: str, *, max_samples: int | None, seed: int = 0):
    """``(texts, labels)`` to rank on: the train split of a packaged text data set or a text table,
    as a 1-D array of str and a label array, a seeded subset of ``max_samples`` if larger."""
    from tfxfer.data import list_datasets, load, load_texts  # imports TensorFlow
    from tfxfer.transfer.text_ranking import text_arrays

    key = _dataset_key(source)
    if key in list_datasets():
        texts, labels = load(key).train
    else:
        texts, labels = load_texts(os.path.abspath(os.path.expanduser(source)), on_leakage="ignore").train
    return text_arrays(([str(t) for t in texts], labels), max_samples=max_samples, seed=seed)


def probe_target(result, candidates):
    """The candidate ranked first in ``result`` (a `RankingResult`), or None when none is within budget."""
    if result.best is None:
        return None
    return next(c for c in candidates if c.label == result.best["candidate"])


def probe_image_candidate(data, candidate, *, input_size=None, max_samples: int | None = None):
    """`tfxfer.transfer.probe_backbone` for an image `Candidate`: its features vs the same
    architecture with random weights, at its own input size, else ``input_size``, else its native one."""
    from tfxfer.transfer import probe_backbone  # imports TensorFlow

    size = candidate.input_size or input_size or candidate.spec.input_size
    return probe_backbone(data, candidate.spec, weights=candidate.weights, input_size=tuple(size),
                          max_samples=max_samples)


def probe_text_candidate(texts, labels, candidate, *, sequence_length: int | None = None):
    """`tfxfer.transfer.probe_text` for a `TextCandidate`: its mean-pooled embeddings vs the same
    encoder with random weights, and TF-IDF."""
    from tfxfer.transfer import probe_text  # imports TensorFlow
    from tfxfer.transfer.text_ranking import embed_texts

    def encoder(pretrained):
        enc = type(candidate)(candidate.preset, pretrained=pretrained, sequence_length=candidate.sequence_length).load(
            sequence_length=sequence_length)
        return lambda t: embed_texts(enc, list(t), batch_size=32)

    return probe_text(list(texts), labels, encode=encoder(candidate.pretrained), encode_control=encoder(False))
