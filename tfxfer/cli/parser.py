"""The ``tfxfer`` argument parser, the table from command name to the function that runs it, and the
did-you-mean checks that run before argparse sees the command line.

Each command module adds its own sub-parser(s) (``add_parser`` / ``add_parsers``) and holds its
``cmd_*`` function(s); this module only puts them together. Every parse error is a `UsageError`
(exit code 2) with a suggestion where there is one: ``tfxfer rnu`` -> "unknown command 'rnu'; did
you mean 'run'?", ``tfxfer run --epohcs 2 r.yaml`` -> "unknown flag --epohcs for `tfxfer run`;
did you mean --set train.epochs=2?" (an unknown flag is reported as such, never as a misplaced
positional argument).

Example:
    >>> from tfxfer.cli.parser import build_parser, parse
    >>> build_parser().parse_args(["report", "runs/quick"]).command
    'report'
    >>> try:
    ...     parse(["rnu", "pipelines/quick.yaml"])
    ... except Exception as exc:
    ...     print(exc)
    unknown command 'rnu'; did you mean 'run'? (see `tfxfer --help`)
"""

from __future__ import annotations

import argparse
import difflib

import tfxfer.cli.benchmark as benchmark
import tfxfer.cli.catalog as catalog
import tfxfer.cli.doctor as doctor
import tfxfer.cli.export as export
import tfxfer.cli.generate as generate
import tfxfer.cli.predict as predict
import tfxfer.cli.rank as rank
import tfxfer.cli.report as report
import tfxfer.cli.run as run
from tfxfer import __version__
from tfxfer.cli.common import EXIT_CODES_HELP, UsageError

COMMANDS = {"run": run.cmd_run, "predict": predict.cmd_predict, "evaluate": predict.cmd_evaluate,
            "export": export.cmd_export, "datasets": catalog.cmd_datasets, "backbones": catalog.cmd_backbones,
            "rank": rank.cmd_rank, "report": report.cmd_report, "doctor": doctor.cmd_doctor,
            "generate": generate.cmd_generate, "benchmark": benchmark.cmd_benchmark}

#: Commands whose recipe keys an unknown flag may be meant for (suggested as ``--set KEY=VALUE``).
RECIPE_COMMANDS = ("run", "rank")


class ParagraphFormatter(argparse.HelpFormatter):
    """argparse's help layout, wrapping each blank-line-separated paragraph of a description or
    epilog on its own (argparse's default runs them together)."""

    def _fill_text(self, text, width, indent):
        return "\n\n".join(super(ParagraphFormatter, self)._fill_text(p, width, indent) for p in text.split("\n\n"))


class Parser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are `UsageError` s (one line, exit 2), not exits."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", ParagraphFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> Parser:
    """The ``tfxfer`` parser with one sub-command per entry of `COMMANDS`."""
    parser = Parser(
        prog="tfxfer", description="Transfer learning for Keras 3 / TensorFlow: from a pretrained backbone to a "
        "verified edge model.",
        epilog=f"Run `tfxfer COMMAND --help` for a command's options.\n\n{EXIT_CODES_HELP}.\n\n"
        "Commands that report take --json: one JSON document on stdout (schema tfxfer/1), also on errors.")
    parser.add_argument("--version", action="version", version=f"tfxfer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    run.add_parser(sub)
    predict.add_parsers(sub)
    export.add_parser(sub)
    catalog.add_parsers(sub)
    rank.add_parser(sub)
    report.add_parser(sub)
    doctor.add_parser(sub)
    generate.add_parser(sub)
    benchmark.add_parser(sub)
    for command in sub.choices.values():
        command.epilog = "\n\n".join(filter(None, (command.epilog, EXIT_CODES_HELP + ".")))
    return parser


def parse(argv) -> argparse.Namespace:
    """Parse ``argv`` after the did-you-mean checks; raises `UsageError` on any mistake."""
    parser = build_parser()
    check_argv(parser, list(argv))
    return parser.parse_args(argv)


# -- did-you-mean --------------------------------------------------------------------------------
def _subparsers(parser) -> dict:
    for action in parser._actions:  # argparse keeps its sub-parsers here (stable since Python 3.2)
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _flags(parser) -> list[str]:
    return [flag for action in parser._actions for flag in action.option_strings]


def _ratio(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


def _recipe_keys() -> list[str]:
    """Every leaf key of a recipe (``train.epochs``), in schema order (loaded only on an unknown flag)."""
    import dataclasses

    from tfxfer.recipes.config import RunConfig
    from tfxfer.recipes.schema import field_hints

    keys = []

    def walk(cls, prefix):
        for name, hint in field_hints(cls).items():
            if dataclasses.is_dataclass(hint):
                walk(hint, f"{prefix}{name}.")
            else:
                keys.append(prefix + name)

    walk(RunConfig, "")
    return keys


def suggest_flag(flag: str, known: list[str], *, command: str, value: str | None = None) -> str | None:
    """The likeliest meaning of an unknown ``flag``: one of ``known`` or, for `RECIPE_COMMANDS`,
    ``--set KEY=VALUE`` for the recipe key whose last part it resembles most.

    Example:
        >>> suggest_flag("--epohcs", ["--set", "--out", "--force"], command="run", value="2")
        '--set train.epochs=2'
        >>> suggest_flag("--candidate", ["--candidates", "--probe"], command="rank")
        '--candidates'
    """
    bare = flag.lstrip("-").replace("-", "_").lower()
    scored = [(_ratio(bare, k.lstrip("-").replace("-", "_")), k) for k in known if k.startswith("--")]
    if command in RECIPE_COMMANDS:
        leaves = {}
        for key in _recipe_keys():
            leaves.setdefault(key.rsplit(".", 1)[-1], key)  # the first section wins (train before distill)
        scored += [(max(_ratio(bare, leaf), _ratio(bare, key.replace(".", "_"))) + 1e-6,
                    f"--set {key}={value if value is not None else 'VALUE'}") for leaf, key in leaves.items()]
    best = max(scored, default=(0.0, None))
    return best[1] if best[0] >= 0.6 else None


def _check_flags(sub, argv: list[str], command: str) -> None:
    known = _flags(sub)
    for i, token in enumerate(argv):
        if token == "--":
            return
        if not token.startswith("-") or token == "-" or token[1:2].isdigit():
            continue
        name, _, inline = token.partition("=")
        if name in known or (name.startswith("--") and sum(k.startswith(name) for k in known) >= 1):
            continue  # exact, or an abbreviation argparse resolves (or reports as ambiguous)
        value = inline or (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("-") else None)
        match = suggest_flag(name, known, command=command, value=value)
        hint = f"; did you mean {match}?" if match else ""
        raise UsageError(f"unknown flag {name} for `tfxfer {command}`{hint} (see `tfxfer {command} --help`)")


def check_argv(parser, argv: list[str]) -> None:
    """Unknown commands and flags, with suggestions, before argparse assigns tokens to positionals."""
    commands = _subparsers(parser)
    for i, token in enumerate(argv):
        if token in ("-h", "--help", "--version"):
            return  # argparse prints and exits 0
        if token.startswith("-"):
            match = suggest_flag(token.partition("=")[0], _flags(parser), command="")
            hint = f"; did you mean {match}?" if match else ""
            raise UsageError(f"unknown flag {token.partition('=')[0]} before the command{hint} "
                             "(see `tfxfer --help`)")
        if token not in commands:
            match = difflib.get_close_matches(token, list(commands), n=1, cutoff=0.5)
            hint = f"; did you mean {match[0]!r}?" if match else f"; the commands are: {', '.join(commands)}"
            raise UsageError(f"unknown command {token!r}{hint} (see `tfxfer --help`)")
        _check_flags(commands[token], argv[i + 1:], token)
        return
