"""Shared test set-up: quiet TensorFlow, deterministic seeds, small helpers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Converted offline weights go to a per-session cache, never the user's ~/.cache.
os.environ.setdefault("TFXFER_CACHE_DIR", tempfile.mkdtemp(prefix="tfxfer-test-cache-"))


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
