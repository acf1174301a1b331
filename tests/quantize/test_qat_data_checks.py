"""`train_qat` takes what its gate takes: a multi-label sigmoid model with multi-hot labels; and array
training data is checked before any work, its errors naming ``train`` (not ``representative_data``)."""

import json

import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import DataError
from tfxfer.quantize import qat_train, train_qat


def test_a_multilabel_sigmoid_model_trains_and_is_gated_per_label(tmp_path):
    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, task="multilabel", seed=1)
    x, _ = tiny_images(32, size=16, classes=3, seed=1)
    labels = (np.random.default_rng(0).random((32, 3)) > 0.5).astype("float32")
    result = train_qat(model, (x, labels), eval_data=(x, labels), path=tmp_path / "ml.tflite", epochs=1,
                       num_calibration=16, raise_on_failure=False)
    assert result.gate["int8"].task == "multilabel"
    assert json.loads((tmp_path / "ml.json").read_text())["output"]["task"] == "multilabel"


@pytest.mark.parametrize("bad,match", [
    (lambda x, y: (x[:, :8, :8], y), r"`train` images have shape \(8, 8, 3\)"),
    (lambda x, y: (x, y + 5), r"`train` labels must be in \[0, 3\)"),
    (lambda x, y: (x, y[:5]), r"`train` has 32 images but 5 labels"),
])
def test_bad_training_arrays_are_refused_before_any_work(bad, match, tmp_path, monkeypatch):
    monkeypatch.setattr(qat_train, "quantize_model", lambda *a, **k: pytest.fail("worked before checking train"))
    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=1)
    x, y = tiny_images(32, size=16, classes=3, seed=1)
    with pytest.raises(DataError, match=match):
        train_qat(model, bad(x, y), eval_data=(x, y), path=tmp_path / "q.tflite", epochs=1)
