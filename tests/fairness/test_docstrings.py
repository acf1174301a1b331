"""The docstring examples of tfxfer.fairness run as written."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["tfxfer.fairness", "tfxfer.fairness.group_metrics", "tfxfer.fairness.group_report",
                                  "tfxfer.fairness.reweighting", "tfxfer.fairness.bias_transfer"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no runnable example"
    assert not result.failed, f"failing doctests: pytest --doctest-modules {name.replace('.', '/')}.py"
