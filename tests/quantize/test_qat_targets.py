"""`train_qat(targets=...)`: with ``targets="float_model"`` the quantized model learns the float
model's own outputs (self-distillation), so the int8 file keeps the validated model's decisions even
where the labels say otherwise; ``targets="labels"`` (the default) fits the labels."""

import json

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_nested_model
from tests.quantize.helpers import train
from tfxfer.errors import ArgumentError
from tfxfer.quantize import train_qat


@pytest.fixture(scope="module")
def task():
    keras.utils.set_random_seed(7)
    data, held_out = tiny_images(320, size=16, signal="bars", seed=0), tiny_images(160, size=16, signal="bars", seed=1)
    model = train(tiny_nested_model(), data, epochs=8)
    assert (model.predict(held_out[0], verbose=0).argmax(1) == held_out[1]).mean() > 0.9
    return model, data, held_out


def test_float_model_targets_keep_the_float_decisions_where_labels_pull_away(task, tmp_path):
    model, (x, y), held_out = task
    flipped = (x, 1 - y)  # labels that contradict the float model everywhere
    common = dict(eval_data=held_out, epochs=2, learning_rate=3e-3, raise_on_failure=False, seed=0)
    distilled = train_qat(model, flipped, path=tmp_path / "distilled.tflite", targets="float_model", **common)
    fitted = train_qat(model, flipped, path=tmp_path / "labels.tflite", **common)  # the default
    agree_distilled = distilled.gate["int8"].top1_agreement
    agree_labels = fitted.gate["int8"].top1_agreement
    # the metric during QAT is agreement with the float model when it fits the float model's outputs
    assert distilled.history["accuracy"][-1] > 0.9, distilled.history
    assert agree_distilled >= 0.95, agree_distilled
    assert agree_labels < agree_distilled - 0.3, (agree_labels, agree_distilled)
    with open(distilled.export.sidecar_path) as f:
        assert json.load(f)["qat_targets"] == "float_model"


def test_unknown_targets_are_refused(task, tmp_path):
    model, data, held_out = task
    with pytest.raises(ArgumentError, match="targets.*teacher"):
        train_qat(model, data, eval_data=held_out, path=tmp_path / "q.tflite", targets="teacher")
    assert not np.isnan(model.predict(held_out[0][:2], verbose=0)).any()
