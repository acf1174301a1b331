"""A resumed run keeps the same best epoch and makes the same keep-or-discard choice as an uninterrupted one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.reliability.conftest import ROOT
from tfxfer.errors import ModelError
from tfxfer.reliability import ResumableCheckpoint
from tfxfer.train.averaging import WeightAveraging
from tfxfer.train.best import RestoreBest

VAL_LOSS = [0.5, 0.2, 0.9, 0.8]  # the best epoch (1) is neither the first nor the last

FIT = """
import json, sys
import keras, numpy as np
from tfxfer.reliability import ResumableCheckpoint
from tfxfer.train.best import RestoreBest
VAL_LOSS = [0.5, 0.2, 0.9, 0.8]


class Fake(keras.callbacks.Callback):  # a validation score that is best at epoch 1
    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = VAL_LOSS[epoch]


def fit(directory, epochs):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    keeper = RestoreBest("val_loss", directory=directory + "/best")
    ckpt = ResumableCheckpoint(directory, stateful=[keeper], background=False)
    x = np.linspace(0, 1, 48, dtype="float32").reshape(16, 3)
    model.fit(x, x[:, :1] * 2, epochs=epochs, initial_epoch=ckpt.initial_epoch, batch_size=8, verbose=0,
              callbacks=[Fake(), keeper, ckpt])
    keeper.apply(model)  # a fit that had already finished hands back the best weights after it
    return {"weights": [w.tolist() for w in model.get_weights()], "best_epoch": keeper.best_epoch,
            "best": keeper.best}


if __name__ == "__main__":  # fit.py DIR EPOCHS [CALLS]: CALLS fits one after the other, a JSON line each
    for _ in range(int(sys.argv[3]) if len(sys.argv) > 3 else 1):
        print(json.dumps(fit(sys.argv[1], int(sys.argv[2]))))
"""


def _fresh(script, *args):
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=240, env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3",
                                            "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_a_resumed_fit_restores_the_best_epoch_seen_before_the_interruption(tmp_path):
    script = tmp_path / "fit.py"
    script.write_text(FIT)
    namespace = {"__name__": "fit_module"}
    exec(compile(FIT, str(script), "exec"), namespace)
    reference = namespace["fit"](str(tmp_path / "reference"), 4)  # uninterrupted, this process
    assert reference["best_epoch"] == 1
    namespace["fit"](str(tmp_path / "run"), 3)  # interrupted after epoch 2 (best so far: epoch 1)
    assert sorted(os.listdir(tmp_path / "run" / "best")) == ["best-000001.npz", "best-000002.npz"]
    # a fresh process resumes at epoch 3, then a second call (the same fresh process: one interpreter start
    # instead of two) finds the run finished
    resumed, again = _fresh(script, tmp_path / "run", 4, 2)
    for result in (resumed, again):
        assert result["best_epoch"] == 1 and result["best"] == pytest.approx(0.2)
        for a, b in zip(result["weights"], reference["weights"]):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_damaged_best_weights_file_is_a_typed_error_naming_it(tmp_path):
    keeper = RestoreBest("val_loss", directory=str(tmp_path))
    keeper.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    keeper.on_train_begin()
    keeper.on_epoch_end(0, {"val_loss": 0.3})
    state = keeper.get_state()
    with open(tmp_path / state["file"], "r+b") as f:
        f.write(b"garbage")
    with pytest.raises(OSError, match="best-000001.npz"):
        RestoreBest("val_loss", directory=str(tmp_path)).restore_state(state)
    with pytest.raises(ValueError, match="monitor"):
        RestoreBest("val_accuracy", directory=str(tmp_path)).restore_state(state)


def test_restore_best_and_a_checkpoint_carrying_averaging_round_trip_their_config(tmp_path):
    keeper = RestoreBest("val_accuracy", restore=False, directory=str(tmp_path / "best"))
    for rebuilt in (RestoreBest.from_config(keeper.get_config()),
                    keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(keeper))):
        assert isinstance(rebuilt, RestoreBest) and rebuilt.get_config() == keeper.get_config()
    ckpt = ResumableCheckpoint(str(tmp_path), stateful=[WeightAveraging("swa", last_epochs=2), keeper])
    rebuilt = ResumableCheckpoint.from_config(json.loads(json.dumps(ckpt.get_config())))
    assert [type(s).__name__ for s in rebuilt.stateful] == ["WeightAveraging", "RestoreBest"]
    assert rebuilt.stateful[0].get_config() == ckpt.stateful[0].get_config()


@pytest.mark.parametrize("damage", ["truncated", "empty", "crc", "no_epoch", "no_random", "no_variables"])
def test_a_damaged_checkpoint_is_a_typed_error_naming_its_folder(tmp_path, damage):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    ckpt = ResumableCheckpoint(str(tmp_path), background=False)
    x = np.ones((8, 2), "float32")
    model.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[ckpt])
    folder = tmp_path / "epoch-00000"
    arrays, state = folder / "arrays.npz", folder / "state.json"
    data = arrays.read_bytes()
    if damage == "truncated":
        arrays.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        arrays.write_bytes(b"")
    elif damage == "crc":
        import zipfile

        with zipfile.ZipFile(arrays) as z:
            member = z.getinfo("model/000000.npy")
        start = member.header_offset + 30 + len(member.filename) + len(member.extra) + member.file_size - 1
        arrays.write_bytes(data[:start] + bytes([data[start] ^ 0xFF]) + data[start + 1:])  # its last data byte
    else:
        meta = json.loads(state.read_text())
        del meta[{"no_epoch": "epoch", "no_random": "python_random", "no_variables": "model_variables"}[damage]]
        state.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=str(tmp_path)):
        model.fit(x, x[:, :1], epochs=2, initial_epoch=ResumableCheckpoint(str(tmp_path)).initial_epoch,
                  verbose=0, callbacks=[ResumableCheckpoint(str(tmp_path), background=False)])
