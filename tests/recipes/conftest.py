"""Fixtures for the pipeline tests."""

import pytest

from tests.factories import make_image_folder


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"))
