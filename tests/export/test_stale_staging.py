"""`export_all` removes the staging folders that runs killed outright (SIGKILL) left in its output folder,
and nothing else: not a run's that is still writing, not a folder of another name."""

import os
import time

import numpy as np

from tfxfer.export import export_all
from tfxfer.export.staging import STALE_AFTER_S, make_staging
from tfxfer.utils.stale import host_tag as _host


def test_export_all_removes_stale_staging_folders_only(tmp_path):
    import keras

    dead_pid = 2 ** 22 + 1  # above Linux's largest pid_max: no process has it
    dead = tmp_path / f".model.export-{dead_pid}-{_host()}-abcd_123"
    live = tmp_path / os.path.basename(make_staging(tmp_path, "model"))  # this process's: still running
    old, recent = tmp_path / ".model.export-old_1234", tmp_path / ".model.export-new_1234"  # no pid: dated
    elsewhere = tmp_path / f".model.export-{dead_pid}-00000000-abcd_123"  # another host: dated too
    kept = [tmp_path / ".cache", tmp_path / ".model.export-notours", tmp_path / "model.export-abcd_123"]
    for folder in (dead, old, recent, elsewhere, *kept):
        folder.mkdir()
        (folder / "model_float32.tflite").write_bytes(b"partial")
    (tmp_path / f".other.export-{dead_pid}-{_host()}-file_123").write_bytes(b"a file, not a folder")
    hours_ago = time.time() - 2 * STALE_AFTER_S
    for path in (old, old / "model_float32.tflite"):
        os.utime(path, (hours_ago, hours_ago))

    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, activation="softmax")])
    x = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    export_all(model, tmp_path, variants=("float32",), eval_data=(x, model.predict(x, verbose=0).argmax(1)),
               benchmark=False)
    assert not dead.exists() and not old.exists()
    assert all(p.exists() for p in (live, recent, elsewhere, *kept))
    assert (tmp_path / f".other.export-{dead_pid}-{_host()}-file_123").is_file()
    assert (tmp_path / "model_float32.tflite").is_file()
