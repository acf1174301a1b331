"""Static checks of example code against tfxfer's API (used by the README and docstring tests).

`check_block` resolves every call on an imported tfxfer name or module and binds its positional count
and keyword names to the real signature; `check_attributes` checks the attributes read on what a tfxfer
call returns against the class its return annotation names. Neither runs the code.
"""

import ast
import dataclasses
import importlib
import inspect
import re
import sys
import typing


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


def _resolve(node, names, problems=None):
    """The object an expression names (an imported name, or attributes of an imported module), else None;
    a module attribute that does not exist is added to ``problems`` when given."""
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, names, problems)
        if inspect.ismodule(base):
            if not hasattr(base, node.attr) and problems is not None:
                problems.append(f"{ast.unparse(node)} does not exist")
            return getattr(base, node.attr, None)
    return None


def _tfxfer_callable(node, names, problems=None):
    obj = _resolve(node, names, problems)
    return obj if callable(obj) and getattr(obj, "__module__", "").split(".")[0] == "tfxfer" else None


def check_block(code):
    """(calls checked, problems) for one block."""
    tree = ast.parse(code)
    names = imported_names(tree)
    checked, problems = 0, []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or (obj := _tfxfer_callable(node.func, names, problems)) is None:
            continue
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):  # no introspectable signature (an exception class of builtin init)
            continue
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

    def class_of(node):
        if isinstance(node, ast.Name):
            return types.get(node.id)
        if isinstance(node, ast.Call) and (obj := _tfxfer_callable(node.func, names)) is not None:
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
