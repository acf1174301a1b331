"""`data.source` resolution: a packaged data set name, a folder, or a table / CoNLL file.

One key switches a recipe from its packaged default to the user's own data
(``--set data.source=~/photos``). Resolution is strict: a missing path, an unknown data set name,
or a data set of the wrong task is a `ConfigError` naming ``data.source``.

Example:
    >>> from tfxfer.recipes.config_loader import load_config
    >>> resolve_source(load_config(text="data: {source: animal_mnist}")).kind
    'packaged'
    >>> try:
    ...     resolve_source(load_config(text="data: {source: animal_mnst}"))
    ... except ConfigError as e:
    ...     print(str(e).split(" Packaged")[0])
    `data.source`: unknown packaged data set 'animal_mnst'. Did you mean 'animal_mnist'?
"""

from __future__ import annotations

import dataclasses
import os

from tfxfer.errors import ConfigError, bounded_repr
from tfxfer.recipes.catalog import DATASETS, check_source, dataset_key
from tfxfer.recipes.fingerprint import fingerprint, package_fingerprint, path_fingerprint

_TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson")
_CONLL_SUFFIXES = (".txt", ".conll", ".conllu", ".bio", ".iob")


@dataclasses.dataclass(frozen=True)
class Source:
    """A resolved data source: ``kind`` is "packaged", "folder", "table" or "conll"."""

    kind: str
    value: str

    def content_fingerprint(self) -> str:
        """Hash of the source's file list and contents (a package's RECORD for packaged sets)."""
        if self.kind == "packaged":
            info = DATASETS[self.value]
            found = package_fingerprint(info["package"])
            return found or fingerprint([self.value, info["package"], info["sizes"]], length=64)
        return path_fingerprint(self.value)


def resolve_source(cfg) -> Source:
    """Resolve ``cfg.data.source`` for ``cfg.task``; raises `ConfigError` on any problem.

    Works from the catalog snapshot (`tfxfer.recipes.catalog`): no TensorFlow is imported.
    """
    raw = cfg.data.source.strip()
    if not raw:  # os.path.abspath("") is the current folder: never read it by accident
        raise ConfigError("`data.source` is required: a packaged data set name (see `tfxfer datasets`), a folder "
                          f"of class sub-folders, or a table file. Received: {bounded_repr(cfg.data.source)}")
    key = dataset_key(raw)
    if key is not None:
        check_source(raw, task=cfg.task)  # a data set of another task is an error
        return Source("packaged", key)
    path = os.path.abspath(os.path.expanduser(raw))
    if os.path.isdir(path):
        if cfg.task != "image_classification":
            raise ConfigError(f"`data.source`: {raw} is a folder; {cfg.task} reads a table file "
                              f"({'CoNLL .txt' if cfg.task == 'token_classification' else '.csv/.tsv/.jsonl'})")
        return Source("folder", path)
    if os.path.isfile(path):
        suffix = os.path.splitext(path)[1].lower()
        if cfg.task == "token_classification":
            return Source("conll", path)
        if suffix not in _TABLE_SUFFIXES:
            raise ConfigError(f"`data.source`: {raw} is not a table (.csv, .tsv, .jsonl)"
                              + (" or a folder of class sub-folders" if cfg.task == "image_classification" else ""))
        return Source("table", path)
    if os.path.exists(path):
        raise ConfigError(f"`data.source`: {raw} is neither a regular file nor a folder (a FIFO, a device or a "
                          "socket cannot be read as data)")
    check_source(raw, task=cfg.task)  # raises: not found, or an unknown data set name with close matches
    raise ConfigError(f"`data.source`: folder or file not found: {raw}")
