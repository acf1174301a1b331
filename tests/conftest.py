"""Shared test set-up: quiet TensorFlow, deterministic seeds, small helpers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # The xdist workers already fill the cores: one TensorFlow compute thread each (and in the fresh
    # processes tests start), instead of thread pools spinning against each other. Measured on 2 cores,
    # 2 workers, 169 training-heavy tests: 144 -> 132 s.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil  # noqa: E402
import tempfile  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Converted offline weights go to a per-session cache, never the user's ~/.cache. The process that
# makes it removes it at the end (with xdist: the controller; its workers inherit the variable and
# share the folder, whose writes are atomic). A cache the caller named is left alone.
_CACHE_MADE = None
if not os.environ.get("TFXFER_CACHE_DIR"):
    _CACHE_MADE = os.environ["TFXFER_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfxfer-test-cache-")


def pytest_unconfigure(config):
    if _CACHE_MADE and not hasattr(config, "workerinput"):
        shutil.rmtree(_CACHE_MADE, ignore_errors=True)


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
    # What survives a full collection at a module's end lives on (imported modules, session fixtures,
    # caches): freezing it keeps every later collection, this one's and Python's own, from walking it
    # again. A worker's heap grew to where each module's collection took 3-4 s (173 modules: ~450 s
    # of worker time in a full run); objects still die by reference counting as before.
    gc.freeze()


@pytest.fixture(autouse=True)
def _one_memory_heavy_test_at_a_time(request):
    """Tests marked ``memory_heavy`` (a real LLM converted to TFLite: ~9.4 GiB) hold an exclusive file
    lock, so the two xdist workers never run two of them at once on a 24 GiB machine."""
    if request.node.get_closest_marker("memory_heavy") is None:
        yield
        return
    import fcntl

    with open(os.path.join(tempfile.gettempdir(), "tfxfer-tests-memory-heavy.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
