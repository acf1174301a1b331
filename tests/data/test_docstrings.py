"""The docstring examples of tfxfer.data and tfxfer.augment run as written."""

import doctest
import importlib
from importlib import metadata

import pytest

MODULES = [
    "tfxfer.data", "tfxfer.data.splits", "tfxfer.data.hygiene", "tfxfer.data.scan", "tfxfer.data.tfdata",
    "tfxfer.data.images", "tfxfer.data.arrays", "tfxfer.data.text", "tfxfer.data.conll", "tfxfer.data.registry",
    "tfxfer.augment", "tfxfer.augment.policies", "tfxfer.augment.apply", "tfxfer.augment.strip",
]


def test_docstring_examples_run():
    failures = {}
    modules = list(MODULES)
    try:
        metadata.distribution("animal-mnist")
    except metadata.PackageNotFoundError:  # its example loads Animal-MNIST
        modules.remove("tfxfer.data.registry")
    for name in modules:
        result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
        if result.failed:
            failures[name] = result.failed
        if result.attempted == 0:
            pytest.fail(f"{name} has no runnable example")
    assert not failures, f"failing doctests (run pytest --doctest-modules {list(failures)}): {failures}"
