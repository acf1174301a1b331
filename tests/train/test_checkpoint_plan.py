"""A checkpoint folder resumes only the run it holds: other epochs, rates or seed are refused by name."""

from __future__ import annotations

import json

import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import ArgumentError, DataError
from tfxfer.train.fine_tune import fine_tune

KW = dict(head_epochs=1, epochs=1, batch_size=8, verbose=0)


def _run(folder, **kw):
    x, y = tiny_images(16, size=16)
    model = tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)
    return fine_tune(model, (x, y), checkpoint_dir=folder, **{**KW, **kw})


def test_a_finished_run_is_not_handed_back_for_other_arguments(tmp_path):
    first = _run(tmp_path)
    assert json.loads((tmp_path / "plan.json").read_text())["epochs"] == 1
    with pytest.raises(ArgumentError, match=r"`checkpoint_dir` must be a fresh folder or hold a run of the same "
                                            r"plan; got one whose epochs=1 there, 3 now"):
        _run(tmp_path, epochs=3)
    with pytest.raises(ArgumentError, match=r"base_lr=.* there, 0.5 now.*seed=0 there, 1 now"):
        _run(tmp_path, base_lr=0.5, seed=1)
    again = _run(tmp_path)  # the same plan: resumed (already finished), nothing retrained
    assert again.resumed_from and len(again.history["loss"]) == len(first.history["loss"]) == 2


def test_a_run_that_saved_nothing_does_not_pin_the_folder(tmp_path):
    x, y = tiny_images(16, size=16)
    model = tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)
    with pytest.raises(DataError):  # fails on its data before any epoch is saved
        fine_tune(model, (x, y), test=(x[:, :8], y), checkpoint_dir=tmp_path, **KW)
    result = _run(tmp_path, epochs=2)  # other arguments: accepted, nothing was saved
    assert len(result.history["loss"]) == 3
