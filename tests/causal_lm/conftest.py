"""Fixtures for the causal LM tests: tiny GGUF files and tiny random language models."""

import pytest

from tests.causal_lm.helpers import write_tiny_gguf


@pytest.fixture
def tiny_gguf(tmp_path):
    """``tiny_gguf(**options)`` -> path of a freshly written tiny Llama GGUF file."""
    counter = iter(range(1000))

    def make(**options):
        path = tmp_path / f"tiny-{next(counter)}.gguf"
        write_tiny_gguf(path, **options)
        return str(path)

    return make


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A tiny `LanguageModel` (2 layers, hidden 16) loaded from a tiny GGUF file."""
    from tfxfer.causal_lm import load_causal_lm

    root = tmp_path_factory.mktemp("tiny-lm")
    path = root / "tiny.gguf"
    write_tiny_gguf(path)
    return load_causal_lm(str(path), cache_dir=str(root / "cache"))
