"""Every `tfxfer COMMAND --flag` the documentation mentions is a command and a flag the CLI has.

The README, ARCHITECTURE.md, benchmarks/README.md, export/README.md, the Makefile, the recipes'
comments and the code's own messages, docstrings and help texts quote command lines; a renamed flag
must fail here, not in a reader's terminal.
"""

import glob
import os
import re

from tfxfer.cli.parser import _flags, _recipe_keys, _subparsers, build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS = ["README.md", "ARCHITECTURE.md", "benchmarks/README.md", "export/README.md", "Makefile", "pipelines/*.yaml",
        "tfxfer/**/*.py", "export/*.py", "benchmarks/*.py"]
MISSPELT_ON_PURPOSE = {"--epohcs"}  # the did-you-mean example in tfxfer/cli/parser.py
PLACEHOLDERS = {"key.sub", "key", "k"}  # --set KEY=VALUE in usage lines
MENTION = re.compile(r"tfxfer ([a-z][a-z-]*)((?:[ \t]+(?:\\\n\s*)?[^\s`|#;)\]]+)*)")


def _documents():
    """(path relative to the checkout, text) of every file in `DOCS`."""
    for pattern in DOCS:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern), recursive=True)):
            with open(path, encoding="utf-8") as f:
                yield os.path.relpath(path, ROOT), f.read()


def documented_commands():
    """(file, command, the rest of the line) for every ``tfxfer WORD ...`` in the documentation."""
    return [(path, m.group(1), m.group(2)) for path, text in _documents() for m in MENTION.finditer(text)]


def documented_overrides():
    """(file, key) for every ``--set KEY=VALUE`` in the documentation (placeholders such as ``key.sub`` left out)."""
    return [(path, key) for path, text in _documents() for key in re.findall(r"--set[ =]([a-z_][a-z0-9_.]*)=", text)
            if key not in PLACEHOLDERS]


def unknown(mentions, subparsers):
    problems = []
    for path, command, rest in mentions:
        flags = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest)
        if command not in subparsers:
            if flags:  # "tfxfer is ..." in prose has no flags; "tfxfer exprt --x" does
                problems.append(f"{path}: `tfxfer {command}` is not a command")
            continue
        known = set(_flags(subparsers[command]))
        problems += [f"{path}: `tfxfer {command}` has no {flag}" for flag in flags
                     if flag not in known and flag not in MISSPELT_ON_PURPOSE]
    return problems


def test_every_documented_command_and_flag_exists():
    subparsers = _subparsers(build_parser())
    mentions = documented_commands()
    assert sum(command in subparsers for _, command, _ in mentions) >= 100
    assert unknown(mentions, subparsers) == []


def test_the_check_catches_a_renamed_flag_and_command():
    subparsers = _subparsers(build_parser())
    problems = unknown([("doc", "export", " model.keras --formats tflite"), ("doc", "exprt", " --json")], subparsers)
    assert problems == ["doc: `tfxfer export` has no --formats", "doc: `tfxfer exprt` is not a command"]


def test_every_documented_override_is_a_recipe_key():
    keys = set(_recipe_keys())
    overrides = documented_overrides()
    assert len(overrides) >= 10
    # a dict-valued key takes an entry: train.stages.0
    assert [(path, key) for path, key in overrides if key not in keys and key.rsplit(".", 1)[0] not in keys] == []
