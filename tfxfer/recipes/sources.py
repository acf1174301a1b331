"""`data.source` resolution: a packaged data set name, a folder, or a table / CoNLL file.

One key switches a recipe from its packaged default to the user's own data
(``--set data.source=~/photos``). Resolution is strict: a missing path, an unknown data set name,
or a data set of the wrong task is a `ConfigError` naming ``data.source``.

Example:
    >>> from tfxfer.recipes.config import load_config
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

from tfxfer.errors import ConfigError
from tfxfer.recipes.fingerprint import fingerprint, package_fingerprint, path_fingerprint
from tfxfer.recipes.schema import closest

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
            from tfxfer.data import describe  # imports TensorFlow: not at `import tfxfer.recipes`

            info = describe(self.value)
            found = package_fingerprint(info.package)
            return found or fingerprint([info.name, info.package, info.sizes], length=64)
        return path_fingerprint(self.value)


def _packaged_names(task: str) -> list[str]:
    from tfxfer.data import describe, list_datasets  # imports TensorFlow: not at `import tfxfer.recipes`

    return [n for n in list_datasets() if describe(n).task == task]


def resolve_source(cfg) -> Source:
    """Resolve ``cfg.data.source`` for ``cfg.task``; raises `ConfigError` on any problem."""
    from tfxfer.data import describe, list_datasets  # imports TensorFlow: not at `import tfxfer.recipes`

    raw = cfg.data.source.strip()
    key = raw.lower().replace("-", "_")
    if key in list_datasets():
        info = describe(key)
        if info.task != cfg.task:
            raise ConfigError(f"`data.source`: packaged data set {key!r} is for {info.task}, but the recipe's "
                              f"task is {cfg.task}. Data sets for {cfg.task}: {', '.join(_packaged_names(cfg.task))}")
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
    looks_like_path = os.sep in raw or raw.startswith(("~", ".")) or os.path.splitext(raw)[1] != ""
    if looks_like_path:
        kind = "folder or file"
        raise ConfigError(f"`data.source`: {kind} not found: {raw}")
    names = _packaged_names(cfg.task)
    match = closest(key, names)
    hint = f" Did you mean {match!r}?" if match else ""
    raise ConfigError(f"`data.source`: unknown packaged data set {raw!r}.{hint} Packaged {cfg.task} data sets: "
                      f"{', '.join(names)}; or give a folder or a table file")
