"""``tfxfer datasets`` and ``tfxfer backbones``: the packaged (offline) data sets and the backbone
catalog, read from `tfxfer.recipes.catalog` without importing TensorFlow.

Example:
    >>> from tfxfer.cli import main
    >>> main(["backbones", "--family", "efficientnet_lite"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

from tfxfer.cli.common import EXIT_OK, add_json, emit_json
from tfxfer.errors import ArgumentError


def add_parsers(sub) -> None:
    p = sub.add_parser("datasets", help="list or describe the packaged (offline) data sets")
    p.add_argument("action", nargs="?", default="list", choices=("list", "describe"))
    p.add_argument("name", nargs="?", help="data set to describe")
    p.add_argument("--task", help="only data sets of this task (image_classification, text_classification, "
                   "token_classification)")
    add_json(p)

    p = sub.add_parser("backbones", help="list the backbone catalog with sizes")
    p.add_argument("--family", help="only this family (e.g. efficientnet_lite, mobilenet_v3)")
    add_json(p)


def cmd_datasets(args) -> int:
    from tfxfer.recipes import catalog  # numpy and yaml, no TensorFlow

    if args.action == "describe":
        if not args.name:
            raise ArgumentError("name", None, "is required: tfxfer datasets describe NAME")
        if args.json:
            emit_json(args, datasets=[catalog.dataset_info(args.name)])
        else:
            print(catalog.dataset_description(args.name))
        return EXIT_OK
    if args.name:
        raise ArgumentError("name", args.name, "is only for `tfxfer datasets describe NAME`")
    if args.json:
        emit_json(args, datasets=[catalog.dataset_info(n) for n in catalog.dataset_names(task=args.task)])
    else:
        print(catalog.dataset_table(task=args.task))
    return EXIT_OK


def cmd_backbones(args) -> int:
    from tfxfer.recipes import catalog  # numpy and yaml, no TensorFlow

    if args.json:
        emit_json(args, backbones=[catalog.backbone_row(n) for n in catalog.backbone_names(family=args.family)])
    else:
        print(catalog.backbone_table(family=args.family))
    return EXIT_OK
