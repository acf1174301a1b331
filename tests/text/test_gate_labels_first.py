"""Text exports check the gate's labels against the model before converting or writing anything: a
label out of range used to surface only when the gate ran, after the conversion."""

import numpy as np
import pytest

from tests.factories import tiny_text_encoder
from tfxfer.errors import ArgumentError, DataError
from tfxfer.export import export_all, export_text_saved_model
from tfxfer.text import build_text_classifier, build_token_classifier

TEXTS = ["good film", "bad plot", "great movie", "awful"]


@pytest.fixture(scope="module")
def classifier():
    return build_text_classifier(tiny_text_encoder(sequence_length=12, num_layers=1), 2)


@pytest.fixture
def no_conversion(monkeypatch):
    """Any conversion or SavedModel write fails the test."""
    import keras

    import tfxfer.export.workflow as workflow

    def refuse(*args, **kwargs):
        raise AssertionError("converted before the labels were checked")

    monkeypatch.setattr(workflow, "convert_variants", refuse)
    monkeypatch.setattr(keras.export, "ExportArchive", refuse)


def test_export_all_checks_class_labels_first(classifier, tmp_path, no_conversion):
    with pytest.raises(DataError, match=r"`eval_data` labels must be in \[0, 2\); got \[0, 5\]"):
        export_all(classifier, tmp_path / "out", variants=("float32",), eval_data=(TEXTS, [0, 5, 0, 1]),
                   benchmark=False)
    with pytest.raises(DataError, match="`eval_data` labels must be integer class ids"):
        export_all(classifier, tmp_path / "out", variants=("float32",), eval_data=(TEXTS, [0, 0.5, 0, 1]),
                   benchmark=False)


def test_text_saved_model_checks_class_labels_first(classifier, tmp_path, no_conversion):
    with pytest.raises(DataError, match=r"`eval_data` labels must be in \[0, 2\); got \[-1, 1\]"):
        export_text_saved_model(classifier, tmp_path / "serving", name="clf", eval_data=(TEXTS, [0, -1, 0, 1]))
    assert not (tmp_path / "serving" / "clf" / "1").exists()


def test_export_all_checks_token_labels_first(tmp_path, no_conversion):
    ner = build_token_classifier(tiny_text_encoder(sequence_length=10, num_layers=1), ["O", "B-PER", "I-PER"])
    labels = np.zeros((len(TEXTS), 10), np.int64)
    labels[0, 1] = 7
    with pytest.raises(DataError, match=r"labels must be tag ids in \[0, 3\)"):
        export_all(ner, tmp_path / "ner", eval_data=(TEXTS, labels), benchmark=False)
    with pytest.raises(ArgumentError, match="`eval_data`"):  # per-position labels of the wrong length
        export_all(ner, tmp_path / "ner", eval_data=(TEXTS, labels[:, :4]), benchmark=False)
