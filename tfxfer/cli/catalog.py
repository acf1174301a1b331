"""``tfxfer datasets`` and ``tfxfer backbones``: the packaged (offline) data sets and the backbone catalog.

Example:
    >>> from tfxfer.cli import main
    >>> main(["backbones", "--family", "efficientnet_lite"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

from tfxfer.cli.common import EXIT_OK, import_tensorflow
from tfxfer.errors import ArgumentError


def add_parsers(sub) -> None:
    p = sub.add_parser("datasets", help="list or describe the packaged (offline) data sets")
    p.add_argument("action", nargs="?", default="list", choices=("list", "describe"))
    p.add_argument("name", nargs="?", help="data set to describe")
    p.add_argument("--task", help="only data sets of this task")

    p = sub.add_parser("backbones", help="list the backbone catalog with sizes")
    p.add_argument("--family", help="only this family (e.g. efficientnet_lite, mobilenet)")


def cmd_datasets(args) -> int:
    import_tensorflow(args)
    from tfxfer.recipes import catalog  # imports TensorFlow: after import_tensorflow hid its start-up logs

    if args.action == "describe":
        if not args.name:
            raise ArgumentError("name", None, "is required: tfxfer datasets describe NAME")
        print(catalog.dataset_description(args.name))
    else:
        print(catalog.dataset_table(task=args.task))
    return EXIT_OK


def cmd_backbones(args) -> int:
    import_tensorflow(args)
    from tfxfer.recipes import catalog  # imports TensorFlow: after import_tensorflow hid its start-up logs

    print(catalog.backbone_table(family=args.family))
    return EXIT_OK
