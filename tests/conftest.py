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
    # Reset Keras's global state (names, graphs) after every test, but leave the expensive
    # gc.collect() (1-2 s with TensorFlow objects alive) to the module-level fixture below.
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(autouse=True, scope="module")
def _free_memory_per_module():
    yield
    import gc

    gc.collect()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
