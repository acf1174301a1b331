"""The text export gate of a token classifier (NER) on real tags: `gate_data` places a CoNLL file's
tags on the first word piece of each word (as training and ``tfxfer evaluate`` align them), and the
gate measures Keras and the file there only, never at [CLS] / [SEP] / padding."""

import numpy as np
import pytest

from tests.factories import tiny_text_encoder
from tfxfer.errors import ArgumentError, DataError

TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
CONLL = "zoe\tB-PER\nvisits\tO\nparis\tB-LOC\n\nparis\tB-LOC\nis\tO\nunbelievable\tO\n"


def always_b_loc():
    """A tiny NER model whose every position says B-LOC (zero head kernel, B-LOC bias)."""
    from tfxfer.text import build_token_classifier

    model = build_token_classifier(tiny_text_encoder(sequence_length=12, num_layers=1), TAGS)
    head = model.get_layer("head")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.array([0, 0, 0, 5, 0], dtype=bias.dtype)])
    return model


@pytest.fixture
def ner(tmp_path):
    from tfxfer.recipes.inference import LoadedModel

    path = tmp_path / "tags.conll"
    path.write_text(CONLL)
    model = always_b_loc()
    return LoadedModel("ner.keras", "keras", model, None, None, list(TAGS), task="token_classification"), str(path)


def test_gate_data_puts_the_file_tags_on_first_word_pieces(ner):
    from tfxfer.export.text_gate import NO_TAG, tokenize_for
    from tfxfer.recipes.text_eval import gate_data

    loaded, path = ner
    texts, labels = gate_data(loaded, path)
    assert list(texts) == ["zoe visits paris", "paris is unbelievable"]
    ids = tokenize_for(loaded.model, texts)["token_ids"]
    assert labels.shape == ids.shape
    # [CLS] zoe visits paris [SEP] / [CLS] paris is un ##believ ##able [SEP]: one tag per word, first piece
    assert labels[0, :6].tolist() == [NO_TAG, 1, 0, 3, NO_TAG, NO_TAG]
    assert labels[1, :8].tolist() == [NO_TAG, 3, 0, 0, NO_TAG, NO_TAG, NO_TAG, NO_TAG]
    assert int((labels != NO_TAG).sum()) == 6 and (labels[:, 8:] == NO_TAG).all()
    texts, labels = gate_data(loaded, path, limit=1)
    assert len(texts) == 1 and labels.shape[0] == 1


def test_gate_accuracy_is_tag_accuracy_on_words(ner):
    from tfxfer.export.text_gate import gate_text_runs, token_model
    from tfxfer.recipes.text_eval import gate_data

    loaded, path = ner
    texts, labels = gate_data(loaded, path)
    same = {"float32": (None, lambda inputs: token_model(loaded.model).predict(inputs, verbose=0))}
    result = gate_text_runs(loaded.model, same, texts, labels, class_names=TAGS)["float32"]
    assert result.examples == 6  # words, not [CLS] / [SEP] / padding positions
    # the model says B-LOC everywhere: right for the 2 of 6 words the file tags B-LOC
    assert result.keras_accuracy == pytest.approx(2 / 6) and result.tflite_accuracy == pytest.approx(2 / 6)
    assert result.top1_agreement == 1.0 and result.passed


def test_gate_without_tags_skips_special_positions(ner):
    from tfxfer.export.text_gate import gate_text_runs, token_model

    loaded, _ = ner
    same = {"float32": (None, lambda inputs: token_model(loaded.model).predict(inputs, verbose=0))}
    result = gate_text_runs(loaded.model, same, ["zoe visits paris", "paris is unbelievable"], None,
                            class_names=TAGS)["float32"]
    assert result.examples == 3 + 5  # word pieces only: no [CLS], [SEP] or padding


def test_token_labels_of_the_wrong_shape_name_eval_data(ner):
    from tfxfer.export.text_gate import gate_text_runs, token_model

    loaded, _ = ner
    same = {"float32": (None, lambda inputs: token_model(loaded.model).predict(inputs, verbose=0))}
    with pytest.raises(ArgumentError, match=r"`eval_data` must be int tag ids per token position \[1, 12\]"):
        gate_text_runs(loaded.model, same, ["zoe visits paris"], np.array([1]), class_names=TAGS)


def test_per_word_tags_and_out_of_range_tag_ids_are_data_errors(ner):
    """Per-word tag lists (the natural form) and a tag id the model does not have gave raw numpy errors."""
    from tfxfer.export.text_gate import NO_TAG, gate_text_runs, token_model

    loaded, _ = ner
    same = {"float32": (None, lambda inputs: token_model(loaded.model).predict(inputs, verbose=0))}
    texts = ["zoe visits paris", "anna loved new york"]
    with pytest.raises(DataError, match="lists of different lengths.*word_tag_labels"):
        gate_text_runs(loaded.model, same, texts, [["B-PER", "O", "B-LOC"], ["B-PER", "O", "B-LOC", "I-LOC"]])
    with pytest.raises(DataError, match="must be numbers .*word_tag_labels"):
        gate_text_runs(loaded.model, same, texts, [["B-PER", "O", "B-LOC"], ["B-PER", "O", "B-LOC"]])
    labels = np.full((2, 12), NO_TAG)
    labels[:, 1] = 7
    with pytest.raises(DataError, match=r"`eval_data` labels must be tag ids in \[0, 5\) or -1 \(no tag\); got \[7, 7\]"):
        gate_text_runs(loaded.model, same, texts, labels)


def test_word_tag_labels_leave_out_words_of_no_piece(ner):
    """Such a word stands as [UNK] word by word but has no position in the text the exported files read: it is
    left out of the gate's texts (no DataError about a sentence that tokenizes differently)."""
    from tfxfer.export.text_gate import NO_TAG, word_tag_labels

    loaded, _ = ner
    texts, labels = word_tag_labels(loaded.model, [["zoe", "\u200b", "visits", "\ufeff", "paris"]],
                                    [["B-PER", "I-PER", "O", "O", "B-LOC"]], tag_names=TAGS)
    assert list(texts) == ["zoe visits paris"]
    assert labels[0, :6].tolist() == [NO_TAG, 1, 0, 3, NO_TAG, NO_TAG]
