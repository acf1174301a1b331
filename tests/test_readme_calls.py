"""Every tfxfer call in the README's Python blocks names a function that exists and arguments it takes.

Only the first block ("Ten lines of Python") can run offline as written (`test_readme_example.py` runs
it); the others need the reader's data or files. This test reads each block's imports, resolves every
call on an imported name or module (``tfxfer.fine_tune``, ``tx.export_all``, ``DANN``) and binds its
positional count and keyword names to the real signature, so a renamed function or argument fails here
instead of in a user's first session. Attributes the blocks read on what tfxfer returns
(``result.to_markdown()``, ``shift.verdict``, ``ds.class_weights()``) are checked against the class the
function's return annotation names.
"""

import ast
import dataclasses
import importlib
import inspect
import os
import re
import sys
import typing

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


def _return_class(obj):
    """The class a tfxfer callable returns: itself for a class, else its resolved return annotation."""
    if inspect.isclass(obj):
        return obj
    try:
        hint = typing.get_type_hints(obj).get("return")
    except Exception:  # an annotation naming a type only imported for type checkers
        hint = inspect.signature(obj).return_annotation
        if isinstance(hint, str):
            hint = getattr(sys.modules[obj.__module__], hint, None)
    return hint if inspect.isclass(hint) else None


def _has_attribute(cls, name):
    if hasattr(cls, name) or name in getattr(cls, "_fields", ()):
        return True
    if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
        return True
    for klass in cls.__mro__:  # an instance attribute set in a method
        try:
            if re.search(rf"self\.{name}\s*[:=]", inspect.getsource(klass)):
                return True
        except (OSError, TypeError):
            continue
    return False


def check_attributes(code):
    """(attributes checked, problems): ``VAR.attr`` where ``VAR = tfxfer_call(...)``, and ``tfxfer_call(...).attr``."""
    tree = ast.parse(code)
    names = imported_names(tree)
    types, problems, checked = {}, [], 0

    def resolve(func):
        if isinstance(func, ast.Name):
            return names.get(func.id)
        if isinstance(func, ast.Attribute):
            base = resolve(func.value)
            return getattr(base, func.attr, None) if inspect.ismodule(base) else None
        return None

    def class_of(node):
        if isinstance(node, ast.Name):
            return types.get(node.id)
        if isinstance(node, ast.Call):
            obj = resolve(node.func)
            if callable(obj) and getattr(obj, "__module__", "").split(".")[0] == "tfxfer":
                return _return_class(obj)
        return None

    for statement in tree.body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Attribute) and (cls := class_of(node.value)) is not None:
                checked += 1
                if not _has_attribute(cls, node.attr):
                    problems.append(f"{ast.unparse(node)[:80]}: {cls.__name__} has no attribute {node.attr!r}")
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name) and (cls := class_of(statement.value)) is not None):
            types[statement.targets[0].id] = cls
    return checked, problems


def test_the_attribute_check_catches_a_misspelt_result_field():
    code = "import tfxfer\nresult = tfxfer.fine_tune(model, data)\nresult.history\nresult.histroy\n"
    checked, problems = check_attributes(code)
    assert checked == 2 and len(problems) == 1 and "FineTuneResult has no attribute 'histroy'" in problems[0]


def test_readme_blocks_read_attributes_their_results_have():
    totals = [check_attributes(code) for code in python_blocks()]
    assert sum(checked for checked, _ in totals) >= 10
    assert [p for _, problems in totals for p in problems] == []


def test_the_checker_catches_a_wrong_argument_and_a_missing_function():
    checked, problems = check_block("import tfxfer\ntfxfer.fine_tune(model, data, head_epoch=3)\ntfxfer.no_such()\n")
    assert checked == 1 and len(problems) == 2
    assert any("head_epoch" in p for p in problems) and any("no_such does not exist" in p for p in problems)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_block_calls_match_the_api(index):
    checked, problems = check_block(python_blocks()[index])
    assert checked >= 1, "no tfxfer call found: the block's imports changed"
    assert not problems, problems
