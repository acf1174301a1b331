"""The docstring examples of tfxfer.causal_lm run as written (those needing SmolLM2 are skipped)."""

import doctest
import importlib

import pytest

MODULES = ["tfxfer.causal_lm.config", "tfxfer.causal_lm.weights", "tfxfer.causal_lm.tokenizer", "tfxfer.causal_lm.adapt",
           "tfxfer.causal_lm.samplers", "tfxfer.causal_lm.language_model", "tfxfer.causal_lm.chat", "tfxfer.causal_lm.in_context",
           "tfxfer.causal_lm.serving"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no runnable example"
    assert not result.failed, f"failing doctests: run pytest --doctest-modules {name}"
