"""Tiny backbone specs (a few conv layers) and brightness images, so ranking and probe tests run in seconds."""

import pytest

from tests.factories import tiny_images, tiny_spec


@pytest.fixture
def tiny_specs():
    """Three "convs" specs of growing width (4, 16, 48); only the first has an ImageNet-style head."""
    return [tiny_spec(name="tiny_a", width=4, with_head=True), tiny_spec(name="tiny_b", width=16),
            tiny_spec(name="tiny_c", width=48)]


@pytest.fixture
def bright_dark_images():
    """60 grayscale 24x24 images whose label (3 classes) is their brightness: any conv feature can see it."""
    return tiny_images(60, size=24, channels=1, classes=3, signal="brightness_steps")
