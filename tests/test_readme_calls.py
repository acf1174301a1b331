"""Every tfxfer call in the README's Python blocks names a function that exists and arguments it takes.

Only the first block ("Ten lines of Python") can run offline as written (`test_readme_example.py` runs
it); the others need the reader's data or files. This test reads each block's imports, resolves every
call on an imported name or module (``tfxfer.fine_tune``, ``tx.export_all``, ``DANN``) and binds its
positional count and keyword names to the real signature, so a renamed function or argument fails here
instead of in a user's first session.
"""

import ast
import importlib
import inspect
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def imported_names(tree):
    names = {"tfxfer": importlib.import_module("tfxfer")}  # blocks that continue an earlier one use it unimported
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = importlib.import_module(alias.name)
                else:
                    top = alias.name.split(".")[0]
                    names[top] = importlib.import_module(top)
                    importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                obj = getattr(module, alias.name, None)
                if obj is None:  # a submodule
                    obj = importlib.import_module(f"{node.module}.{alias.name}")
                names[alias.asname or alias.name] = obj
    return names


def check_block(code):
    """(calls checked, problems) for one block."""
    tree = ast.parse(code)
    names = imported_names(tree)
    problems = []

    def resolve(func):
        if isinstance(func, ast.Name):
            return names.get(func.id)
        if isinstance(func, ast.Attribute):
            base = resolve(func.value)
            if inspect.ismodule(base):
                if not hasattr(base, func.attr):
                    problems.append(f"{ast.unparse(func)} does not exist")
                    return None
                return getattr(base, func.attr)
        return None

    checked = 0
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        obj = resolve(node.func)
        if obj is None or not callable(obj) or getattr(obj, "__module__", "").split(".")[0] != "tfxfer":
            continue
        signature = inspect.signature(obj)
        keywords = {k.arg: None for k in node.keywords if k.arg}
        try:
            signature.bind_partial(*[None] * len(node.args), **keywords)
        except TypeError as error:
            problems.append(f"{ast.unparse(node)[:100]}: {error}")
        checked += 1
    return checked, problems


def test_the_checker_catches_a_wrong_argument_and_a_missing_function():
    checked, problems = check_block("import tfxfer\ntfxfer.fine_tune(model, data, head_epoch=3)\ntfxfer.no_such()\n")
    assert checked == 1 and len(problems) == 2
    assert any("head_epoch" in p for p in problems) and any("no_such does not exist" in p for p in problems)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_block_calls_match_the_api(index):
    checked, problems = check_block(python_blocks()[index])
    assert checked >= 1, "no tfxfer call found: the block's imports changed"
    assert not problems, problems
