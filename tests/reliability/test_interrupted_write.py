"""An exception that ends ``fit`` (Ctrl-C, an error) while the last epoch's checkpoint is still being
written in the background does not lose that checkpoint: `latest_state` in the same process waits for
the write, and a process that dies of the exception finishes the write before it exits (the writer
was a daemon thread, killed at exit: the run resumed one epoch earlier than it could)."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfxfer.reliability import ResumableCheckpoint
from tfxfer.reliability.training_state import latest_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# A slow disk (each checkpoint write takes 1 s) and an error raised at the start of epoch `stop`,
# right after epoch `stop - 1`'s write began.
_SCRIPT = textwrap.dedent("""
    import sys, time
    import keras, numpy as np
    from tfxfer.reliability import ResumableCheckpoint

    directory, stop = sys.argv[1], int(sys.argv[2])
    write = ResumableCheckpoint._write

    def slow_write(self, *args):
        time.sleep(1.0)
        write(self, *args)

    ResumableCheckpoint._write = slow_write

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == stop:
                raise KeyboardInterrupt("stopped by the user")

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    x, y = np.ones((8, 3), "float32"), np.arange(8) % 2
    model.fit(x, y, epochs=5, verbose=0, callbacks=[ResumableCheckpoint(directory), Stop()])
""")


def test_latest_state_waits_for_the_write_an_exception_left_running(tmp_path, monkeypatch):
    import time

    write = ResumableCheckpoint._write

    def slow_write(self, *args):
        time.sleep(1.0)
        write(self, *args)

    monkeypatch.setattr(ResumableCheckpoint, "_write", slow_write)

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("a bug in the user's callback")

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(RuntimeError, match="a bug"):
        model.fit(np.ones((8, 3), "float32"), np.arange(8) % 2, epochs=4, verbose=0,
                  callbacks=[ResumableCheckpoint(str(tmp_path)), Stop()])
    assert latest_state(str(tmp_path)).epoch == 1  # the write of epoch 1 was in flight when fit ended
    assert ResumableCheckpoint(str(tmp_path)).initial_epoch == 2


def test_a_process_stopped_by_ctrl_c_finishes_the_last_write_before_it_exits(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path), "3"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode != 0 and "KeyboardInterrupt" in done.stderr, done.stderr[-2000:]
    assert latest_state(str(tmp_path)).epoch == 2
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("epoch-")) == ["epoch-00001", "epoch-00002"]
