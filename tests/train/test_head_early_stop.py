"""A head step that early stopping ends before its planned epochs: the unfreezing epochs are numbered
from the epochs that ran, and a resume neither trains the stopped step further nor changes the result."""

from __future__ import annotations

import keras
import numpy as np

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.train.best import ResumableEarlyStopping, stopped_early
from tfxfer.train.fine_tune import fine_tune
from tfxfer.train.plan import HEAD_PATIENCE


class EpochLog(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def _run(checkpoint_dir=None, log=None):
    x, y = tiny_images(24, size=16, seed=1)
    vx, vy = tiny_images(4, size=16, seed=2)
    model = tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)
    # val_accuracy on 4 images takes 5 values: it stops improving long before the planned 30 epochs
    return model, fine_tune(model, (x, y), val=(vx, vy), head_epochs=None, epochs=2, batch_size=8, verbose=0,
                            monitor="val_accuracy", checkpoint_dir=checkpoint_dir,
                            callbacks=[log] if log is not None else ())


def test_unfreezing_epochs_follow_the_head_epochs_that_ran(tmp_path):
    log = EpochLog()
    _, result = _run(log=log)
    ran = result.steps[0]["epochs"]
    planned = result.settings["head_epochs"]
    assert HEAD_PATIENCE < ran < planned  # early stopping ended the head step
    assert result.head_epochs == ran == result.settings["head_epochs_run"]
    assert result.stages[1]["epoch"] == ran  # the unfreezing stage starts right after the head epochs that ran
    assert log.epochs == list(range(ran + 2))  # one numbering across both steps, no gap
    assert len(result.history["loss"]) == ran + 2


def test_a_rerun_on_the_checkpoint_of_a_stopped_head_step_trains_no_further(tmp_path):
    model, first = _run(tmp_path / "ckpt")
    weights = [np.array(w) for w in model.get_weights()]
    log = EpochLog()
    again_model, again = _run(tmp_path / "ckpt", log=log)
    assert again.head_epochs == first.head_epochs
    assert len(again.history["loss"]) == len(first.history["loss"])
    assert log.epochs == []  # both steps had finished: nothing trained
    for a, b in zip(weights, again_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_the_stopper_state_round_trips_and_marks_a_stopped_fit():
    stopper = ResumableEarlyStopping("val_loss", patience=3)
    state = {"wait": 2, "best": 0.25, "best_epoch": 4, "stopped_epoch": 7, "stopped": True}
    stopper.restore_state(state)
    assert stopper.get_state() == state
    assert stopped_early([{"class": "ResumableEarlyStopping", "state": state}])
    assert not stopped_early([{"class": "ResumableEarlyStopping", "state": {**state, "stopped": False}}])
    assert ResumableEarlyStopping.from_config(stopper.get_config()).patience == 3
