"""The docstring examples of tfxfer.adapt and tfxfer.data.domains run as written."""

import doctest
import importlib

import pytest

MODULES = [
    "tfxfer.adapt", "tfxfer.adapt.two_sample", "tfxfer.adapt.shift", "tfxfer.adapt.domain_data",
    "tfxfer.adapt.adabn", "tfxfer.adapt.trainer", "tfxfer.adapt.coral", "tfxfer.adapt.dann",
    "tfxfer.adapt.self_training", "tfxfer.adapt.feature_coral", "tfxfer.adapt.label_shift",
    "tfxfer.adapt.selection", "tfxfer.data.domains",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no runnable example"
    assert not result.failed, f"failing doctests: pytest --doctest-modules {name.replace('.', '/')}.py"
