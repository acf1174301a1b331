"""Lazy public names for a package: ``import tfxfer`` stays cheap until TensorFlow is needed.

A package lists ``{public name: module}`` once and gets a module-level ``__getattr__`` and
``__dir__`` that import the module on first use (PEP 562) and cache the value.

Example:
    >>> table = {"sqrt": "math"}
    >>> __getattr__, __dir__ = lazy_exports("demo", table)
    >>> __getattr__("sqrt")(9.0), __dir__()
    (3.0, ['sqrt'])
"""

from __future__ import annotations

import importlib
import sys


def lazy_exports(package: str, exports: dict, *, subpackages=()):
    """``(__getattr__, __dir__)`` for ``package`` serving ``exports`` and ``subpackages`` lazily."""
    names = sorted(exports) + list(subpackages)

    def __getattr__(name):
        if name in subpackages:
            return importlib.import_module(f"{package}.{name}")
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace = sys.modules.get(package)
        if namespace is not None:
            setattr(namespace, name, value)
        return value

    def __dir__():
        return list(names)

    return __getattr__, __dir__
