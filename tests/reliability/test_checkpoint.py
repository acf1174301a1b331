"""Resume after faults: kill -9 mid-epoch, crashes, schedules, full disks, bad checkpoint folders."""

from __future__ import annotations

import errno
import hashlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.reliability.conftest import fill_disk, read_json, run_scenario
from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.freezing import GradualUnfreezing
from tfxfer.optim import DiscriminativeAdam, layerwise_decay
from tfxfer.reliability import (
    CheckpointError,
    EpochShuffle,
    ResumableCheckpoint,
    latest_state,
    resume,
)

TOL = dict(rtol=1e-6, atol=1e-6)  # the stated tolerance: resumed == uninterrupted to float32 round-off


class Crash(Exception):
    pass


class CrashAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise Crash(f"simulated crash at {self.at}")


class Recorder(keras.callbacks.Callback):
    """Learning rate (from the schedule at the optimizer's step) and step count per epoch."""

    def on_train_begin(self, logs=None):
        self.rows = {}

    def on_epoch_end(self, epoch, logs=None):
        opt = self.model.optimizer
        self.rows[epoch] = (float(np.asarray(opt.learning_rate)), int(opt.iterations.numpy()), dict(logs))


def train(directory, *, epochs=5, crash_at=None, restore_optimizer=True):
    keras.utils.set_random_seed(7)
    model = tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=0.1)
    x, y = tiny_images(32, size=16, classes=3, signal="mean_colour")
    shuffle = EpochShuffle(seed=3)
    ds = shuffle.apply(tf.data.Dataset.from_tensor_slices((x, y)), buffer_size=32).batch(8)
    unfreezer = GradualUnfreezing({0: 0, 2: 2}, learning_rates={0: 2e-2, 2: 1e-2}, warmup_epochs=1,
                                  layer_decay=0.5, verbose=0)
    model.compile(DiscriminativeAdam(2e-2, lr_multipliers=layerwise_decay(model, decay=0.5)),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    ckpt = ResumableCheckpoint(directory, stateful=[unfreezer] if restore_optimizer else None)
    rec = Recorder()
    callbacks = [ckpt, unfreezer, shuffle, rec] + ([CrashAt(*crash_at)] if crash_at else [])
    start = ckpt.initial_epoch
    if not restore_optimizer and ckpt.state is not None:  # the naive resume other trainers do
        ckpt.set_model(model)
        ckpt.restore(weights_only=True)
        callbacks.remove(ckpt)
    model.fit(ds, epochs=epochs, initial_epoch=start, callbacks=callbacks, shuffle=False, verbose=0)
    return model, ckpt, rec


def weights(model):
    return [np.asarray(v.numpy()) for v in model.weights]


def test_crash_mid_epoch_then_resume_matches_uninterrupted_including_lr_schedule(tmp_path):
    ref_model, ref_ckpt, ref = train(str(tmp_path / "ref"))
    with pytest.raises(Crash):
        train(str(tmp_path / "run"), crash_at=(3, 1))
    state = latest_state(str(tmp_path / "run"))
    assert state.epoch == 2 and state.meta["stateful"][0]["state"]["current_stage"] == 2
    model, ckpt, rec = train(str(tmp_path / "run"))
    assert ckpt.restored_from == state.path
    for epoch in (3, 4):  # the learning-rate schedule continues where it stopped
        assert rec.rows[epoch][1] == ref.rows[epoch][1]
        np.testing.assert_allclose(rec.rows[epoch][0], ref.rows[epoch][0], rtol=1e-6)
        np.testing.assert_allclose(rec.rows[epoch][2]["loss"], ref.rows[epoch][2]["loss"], **TOL)
    for a, b in zip(weights(model), weights(ref_model)):
        np.testing.assert_allclose(a, b, **TOL)
    assert ckpt.history["loss"] == pytest.approx(ref_ckpt.history["loss"], rel=1e-6)
    assert len(ckpt.history["loss"]) == 5

    # The bug class this prevents: restoring weights but not the optimizer restarts the schedule.
    with pytest.raises(Crash):
        train(str(tmp_path / "naive"), crash_at=(3, 1))
    _, _, naive = train(str(tmp_path / "naive"), restore_optimizer=False)
    assert naive.rows[3][1] != ref.rows[3][1]
    assert abs(naive.rows[3][0] - ref.rows[3][0]) > 1e-4


def test_kill_9_mid_epoch_in_fine_tune_then_resume_matches_uninterrupted(tmp_path):
    from tests.reliability.scenario import run_fine_tune, summary

    directory = str(tmp_path / "ckpt")
    proc = run_scenario(["fine_tune", "--out", str(tmp_path / "killed.json"), "--checkpoint-dir", directory,
                         "--kill-at", "3", "2"], check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]  # really killed by SIGKILL mid-epoch 3
    assert not (tmp_path / "killed.json").exists()
    assert latest_state(os.path.join(directory, "head")).epoch == 1
    unfreeze = latest_state(os.path.join(directory, "unfreeze"))  # epoch 2's write may have been cut off
    assert unfreeze is None or unfreeze.epoch == 2

    model, result = run_fine_tune(directory)  # the restarted run
    resumed = summary(model, result)
    keras.backend.clear_session()
    ref_model, ref_result = run_fine_tune(None)  # the same seed, never interrupted
    ref = summary(ref_model, ref_result)
    assert resumed["resumed_from"].endswith(os.path.join("unfreeze", "epoch-00002") if unfreeze else
                                            os.path.join("head", "epoch-00001"))
    assert resumed["stages"][-1] == ref["stages"][-1]
    for key in ref["history"]:
        np.testing.assert_allclose(resumed["history"][key], ref["history"][key], **TOL)
    for a, b in zip(resumed["weights"], ref["weights"]):
        np.testing.assert_allclose(a, b, **TOL)
    np.testing.assert_allclose(resumed["predictions"], ref["predictions"], **TOL)
    assert ref["history"]["val_accuracy"][-1] > 0.5  # it learned something worth resuming


def test_fine_tune_rerun_after_it_finished_hands_back_the_final_model(tmp_path):
    from tests.reliability.scenario import run_fine_tune

    kw = dict(head_epochs=1, epochs=1, stages={0: 1}, use_cached_features=False)
    model, first = run_fine_tune(str(tmp_path), **kw)
    again, second = run_fine_tune(str(tmp_path), **kw)
    assert second.resumed_from is not None
    assert second.history["loss"] == pytest.approx(first.history["loss"])
    assert second.selection == first.selection and first.selection["head"] is not None  # scored again, same choice
    assert [(s["name"], s["best_epoch"]) for s in second.steps] == [(s["name"], s["best_epoch"]) for s in first.steps]
    for a, b in zip(weights(model), weights(again)):
        np.testing.assert_array_equal(a, b)


def _small_fit(directory, epochs=2, initial_epoch=None, model=None, lr=0.05, x=None, background=True):
    keras.utils.set_random_seed(1)
    model = model or keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                                       keras.layers.Dropout(0.2), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(lr), "mse")
    ckpt = ResumableCheckpoint(directory, keep=2, background=background)
    x = np.ones((16, 3), "float32") if x is None else x
    start = ckpt.initial_epoch if initial_epoch is None else initial_epoch
    model.fit(x, x[:, :1] * 2, epochs=epochs, initial_epoch=start, batch_size=8, callbacks=[ckpt], verbose=0)
    return model, ckpt


def _digest(directory):
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out[os.path.relpath(os.path.join(root, name), directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def test_checkpoints_are_pruned_and_the_state_round_trips(tmp_path):
    _, ckpt = _small_fit(str(tmp_path), epochs=4)
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("epoch-")) == ["epoch-00002", "epoch-00003"]
    assert resume(str(tmp_path)) == 4 and ckpt.initial_epoch == 4
    with np.load(os.path.join(latest_state(str(tmp_path)).path, "arrays.npz"), allow_pickle=False) as npz:
        assert any(k.startswith("optimizer/") for k in npz.files) and "rng/numpy_keys" in npz.files
    clone = ResumableCheckpoint.from_config(ckpt.get_config())
    assert clone.directory == ckpt.directory and clone.keep == 2 and clone.background
    os.makedirs(tmp_path / ".epoch-00009.tmp-abc")  # what a kill -9 during a write leaves behind
    _small_fit(str(tmp_path), epochs=5)
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    unfreezer = GradualUnfreezing({0: 0, 1: 1}, verbose=0)
    config = ResumableCheckpoint(str(tmp_path), stateful=[unfreezer]).get_config()
    assert ResumableCheckpoint.from_config(config).stateful[0].schedule == unfreezer.schedule


@pytest.mark.parametrize("background", [True, False])
def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint_enospc_simulated(tmp_path, monkeypatch,
                                                                                     background):
    model, ckpt = _small_fit(str(tmp_path), epochs=1, background=background)
    before = _digest(str(tmp_path))

    def full_disk(file, **arrays):
        file.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(CheckpointError, match=r"the disk is full.*previous checkpoint is intact: .*epoch-00000"):
        _small_fit(str(tmp_path), epochs=2, model=model, background=background)
    monkeypatch.undo()
    assert _digest(str(tmp_path)) == before  # nothing half-written, no temporary left behind
    assert latest_state(str(tmp_path)).epoch == 0


def test_full_disk_on_a_real_tiny_filesystem_keeps_checkpoint_and_export(tiny_fs):
    from tfxfer.export import export_tflite

    ckdir = os.path.join(tiny_fs, "ckpt")
    model, _ = _small_fit(ckdir, epochs=1)
    image_model = tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=0.1)
    tflite = os.path.join(tiny_fs, "model.tflite")
    export_tflite(image_model, tflite, variant="float32")
    before = _digest(tiny_fs)
    filler = fill_disk(tiny_fs)
    with pytest.raises(CheckpointError, match="the disk is full"):
        _small_fit(ckdir, epochs=2, model=model)
    with pytest.raises(OSError) as info:
        export_tflite(image_model, tflite, variant="float32")
    assert info.value.errno == errno.ENOSPC
    os.remove(filler)
    assert _digest(tiny_fs) == before
    assert latest_state(ckdir).epoch == 0


def test_non_finite_states_are_never_saved(tmp_path):
    x = np.ones((16, 3), "float32")
    model, ckpt = _small_fit(str(tmp_path), epochs=1)
    x_bad = x.copy()
    x_bad[0, 0] = np.nan
    _, ckpt2 = _small_fit(str(tmp_path), epochs=2, model=model, x=x_bad)
    assert ckpt2.skipped and ckpt2.skipped[0]["epoch"] == 1
    assert latest_state(str(tmp_path)).epoch == 0


def test_resume_errors(tmp_path):
    _small_fit(str(tmp_path), epochs=1)
    with pytest.raises(ArgumentError, match="`initial_epoch` must be 1 to resume from"):
        _small_fit(str(tmp_path), epochs=2, initial_epoch=0)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ModelError, match="different model or stage"):
        _small_fit(str(tmp_path), epochs=2, model=other)
    (tmp_path / "latest.json").write_text("{broken")
    with pytest.raises(ModelError, match="unreadable"):
        latest_state(str(tmp_path))
    (tmp_path / "latest.json").write_text(json.dumps({"epoch": 0, "path": "epoch-00000"}))
    meta = read_json(tmp_path / "epoch-00000" / "state.json")
    (tmp_path / "epoch-00000" / "state.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ModelError, match="checkpoint format 99"):
        latest_state(str(tmp_path))
    with pytest.raises(ArgumentError, match="`keep` must be an int >= 1"):
        ResumableCheckpoint(str(tmp_path), keep=0)
    with pytest.raises(ArgumentTypeError, match="`directory` must be a folder path"):
        ResumableCheckpoint(3)
    with pytest.raises(ArgumentTypeError, match="`stateful` must be a list of objects with get_state"):
        ResumableCheckpoint(str(tmp_path), stateful=[keras.callbacks.History()])
    with pytest.raises(ArgumentTypeError, match="`stateful` must be a list of callbacks"):
        ResumableCheckpoint(str(tmp_path), stateful=GradualUnfreezing({0: 0}))
    with pytest.raises(ArgumentTypeError, match="`state` must be a dict from GradualUnfreezing"):
        GradualUnfreezing({0: 0}).restore_state([1])
    with pytest.raises(ArgumentError, match="not in this schedule"):
        GradualUnfreezing({0: 0}).restore_state({"current_stage": 5})


def test_kill_9_on_a_shuffled_tfdata_pipeline_then_resume_matches_uninterrupted(tmp_path):
    """A recipe trains on a tfxfer tf.data pipeline: its shuffle is driven by the epoch, so the resumed
    run (which made more iterators before resuming) sees the uninterrupted run's batches, and the
    learning-rate log (a Stateful callback) keeps the steps before the kill."""
    from tests.reliability.scenario import run_fine_tune, summary
    from tfxfer.recipes.training_log import LearningRateLog

    directory = str(tmp_path / "ckpt")
    proc = run_scenario(["fine_tune", "--out", str(tmp_path / "killed.json"), "--checkpoint-dir", directory,
                         "--kill-at", "3", "2", "--source", "pipeline"], check=False)
    assert proc.returncode == -9, proc.stderr[-2000:]
    log = LearningRateLog()
    model, result = run_fine_tune(directory, source="pipeline", pulls=3, callbacks=[log])
    resumed = summary(model, result)
    keras.backend.clear_session()
    ref_log = LearningRateLog()
    ref_model, ref_result = run_fine_tune(None, source="pipeline", callbacks=[ref_log])
    ref = summary(ref_model, ref_result)
    assert resumed["resumed_from"]
    for key in ref["history"]:
        np.testing.assert_allclose(resumed["history"][key], ref["history"][key], **TOL)
    np.testing.assert_allclose(resumed["predictions"], ref["predictions"], **TOL)
    assert [s["step"] for s in log.steps] == [s["step"] for s in ref_log.steps]
    np.testing.assert_allclose([s["lr"] for s in log.steps], [s["lr"] for s in ref_log.steps], rtol=1e-6)
