"""Fixtures for the data tests."""

import pytest

from tests.factories import make_messy_folder


@pytest.fixture
def messy_folder(tmp_path):
    """A class folder pair holding every valid image kind and every broken-file kind."""
    root = tmp_path / "messy"
    expected = make_messy_folder(str(root))
    return str(root), expected
