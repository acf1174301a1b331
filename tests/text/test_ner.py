"""Token classification: word-piece alignment round trips, training, decoding to entities with offsets."""

import numpy as np
import pytest

from tests.factories import tiny_text_encoder
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.text import (build_text_classifier, build_token_classifier, encode_words, entity_scores, predict_entities,
                         predict_word_tags, split_words)
from tfxfer.text.alignment import align_labels, word_predictions
from tfxfer.text.tagging import is_valid
from tfxfer.train.ner import fit_token_classifier

TAGS_BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TAGS_BIOES = ["O"] + [f"{p}-{t}" for t in ("PER", "LOC") for p in "BIES"]
WORDS = [["Zoe", "visits", "unbelievable", "Paris", "."], ["Anna", "Unbelievable", "meets", "Zoe", "in", "Berlin"],
         ["new", "york", "loved", "unbelieved", "Anna"]]
BIO_TAGS = [["B-PER", "O", "B-LOC", "I-LOC", "O"], ["B-PER", "I-PER", "O", "B-PER", "O", "B-LOC"],
            ["B-LOC", "I-LOC", "O", "B-PER", "I-PER"]]
BIOES_TAGS = [["S-PER", "O", "B-LOC", "E-LOC", "O"], ["B-PER", "E-PER", "O", "S-PER", "O", "S-LOC"],
              ["B-LOC", "E-LOC", "O", "B-PER", "E-PER"]]


def test_split_words_offsets():
    text = "Zoë's café, Paris!  日本"
    words = split_words(text)
    assert [w for w, _, _ in words] == ["Zoë", "'", "s", "café", ",", "Paris", "!", "日", "本"]
    assert all(text[s:e] == w for w, s, e in words)
    assert split_words("") == [] and split_words("   ") == []


@pytest.mark.parametrize("strategy", ["first", "all"])
@pytest.mark.parametrize("scheme,tags,names", [("BIO", BIO_TAGS, TAGS_BIO), ("BIOES", BIOES_TAGS, TAGS_BIOES)])
def test_alignment_round_trip(strategy, scheme, tags, names):
    """labels -> sub-tokens -> words gives back the labels, for words split into several pieces."""
    encoder = tiny_text_encoder(sequence_length=16)
    encoded = encode_words(encoder.tokenizer, WORDS, tags, tag_names=names, sequence_length=16,
                           strategy=strategy, scheme=scheme)
    assert encoded.truncated_words == 0
    pieces_of_unbelievable = int((encoded.word_ids[0] == 2).sum())
    assert pieces_of_unbelievable == 3  # un ##believ ##able
    labelled = encoded.weights.sum(axis=1).astype(int).tolist()
    if strategy == "first":
        assert labelled == [len(w) for w in WORDS]
    else:
        pieces = (encoded.inputs["padding_mask"].sum(axis=1) - 2).tolist()  # all but [CLS] / [SEP]
        assert labelled == pieces and labelled[0] == len(WORDS[0]) + 2
    for row, (words, word_tags) in enumerate(zip(WORDS, tags)):
        piece_tags = [names[t] for t, w in zip(encoded.labels[row], encoded.weights[row]) if w]
        if strategy == "all":
            assert is_valid(piece_tags, scheme=scheme), piece_tags
        one_hot = np.eye(len(names), dtype="float32")[encoded.labels[row]]
        per_word = word_predictions(one_hot, encoded.word_ids[row], len(words), tag_names=names,
                                    strategy=strategy, scheme=scheme)
        assert [names[i] for i in per_word.argmax(1)] == word_tags


def test_align_labels_all_pieces():
    assert align_labels(["B-PER", "O"], [3, 2], strategy="all") == ["B-PER", "I-PER", "I-PER", "O", "O"]
    assert align_labels(["S-PER", "E-LOC"], [3, 2], strategy="all", scheme="BIOES") == [
        "B-PER", "I-PER", "E-PER", "I-LOC", "E-LOC"]
    assert align_labels(["B-PER", "O"], [3, 1]) == ["B-PER", None, None, "O"]
    with pytest.raises(DataError, match="2 tags for 1 words"):
        align_labels(["O", "O"], [1])


def test_truncation_is_counted_and_truncated_words_predict_outside():
    encoder = tiny_text_encoder(sequence_length=6)
    encoded = encode_words(encoder.tokenizer, [["unbelievable", "zoe", "paris", "berlin"]], sequence_length=6)
    assert encoded.truncated_words == 2 and encoded.word_ids[0].tolist() == [-1, 0, 0, 0, 1, -1]
    probs = np.full((6, 5), 0.2, dtype="float32")
    out = word_predictions(probs, encoded.word_ids[0], 4, tag_names=TAGS_BIO)
    assert out[2].tolist() == [1, 0, 0, 0, 0] and out[3].tolist() == [1, 0, 0, 0, 0]


@pytest.mark.parametrize("strategy", ["first", "all"])
def test_a_word_of_no_piece_keeps_its_position_and_tag(strategy):
    """A tagged word the tokenizer turns into nothing (zero-width space, BOM, variation selector) lost its tag in
    training (not even counted) and was forced to "O" at prediction; it now stands as [UNK]."""
    from tfxfer.text import encode_tagged_words

    model = build_token_classifier(tiny_text_encoder(sequence_length=12, num_layers=1), TAGS_BIO)
    words = [["zoe", "\u200b", "anna", "\ufe0f", "visits", "\ufeff"]]
    tags = [["B-PER", "I-PER", "B-PER", "I-PER", "O", "O"]]
    encoded = encode_tagged_words(model, words, tags, tag_names=TAGS_BIO, alignment=strategy)
    assert encoded.empty_words == 3 and encoded.truncated_words == 0
    assert encoded.word_ids[0][:8].tolist() == [-1, 0, 1, 2, 3, 4, 5, -1]
    assert encoded.inputs["token_ids"][0][[2, 4, 6]].tolist() == [1, 1, 1]  # [UNK]
    assert encoded.weights[0].sum() == 6 and encoded.labels[0][1:7].tolist() == [1, 2, 1, 2, 0, 0]
    probs = np.zeros((12, 5), dtype="float32")
    probs[:, 2] = 1.0  # the model says I-PER everywhere: words 1 and 3 get it too, not a forced "O"
    assert word_predictions(probs, encoded.word_ids[0], 6, tag_names=TAGS_BIO, strategy=strategy)[[1, 3], 2].tolist() \
        == [1.0, 1.0]


def test_token_classifier_learns_and_predicts_entities():
    encoder = tiny_text_encoder(sequence_length=12, num_layers=1)
    model = build_token_classifier(encoder, TAGS_BIO)
    words = [["Zoe", "visits", "Paris"], ["Anna", "meets", "Zoe"], ["Paris", "loved", "Anna"],
             ["Anna", "visits", "Berlin"], ["Zoe", "meets", "Anna", "in", "London"]] * 4
    tags = [["B-PER", "O", "B-LOC"], ["B-PER", "O", "B-PER"], ["B-LOC", "O", "B-PER"],
            ["B-PER", "O", "B-LOC"], ["B-PER", "O", "B-PER", "O", "B-LOC"]] * 4
    result = fit_token_classifier(model, (words, tags), tag_names=TAGS_BIO, epochs=12, batch_size=10, base_lr=1e-2,
                                  unfreeze_lr_factor=1.0, verbose=0)
    assert result.history["loss"][-1] < 0.3 * result.history["loss"][0]
    pred_tags, spans = predict_word_tags(model, words[:5], tag_names=TAGS_BIO)
    assert entity_scores(tags[:5], pred_tags).f1 == 1.0
    assert all(is_valid(t) for t in pred_tags)
    text = "Anna visits London."
    (entities,) = predict_entities(model, [text], tag_names=TAGS_BIO)
    assert [(e.text, e.type, e.start, e.end) for e in entities] == [("Anna", "PER", 0, 4), ("London", "LOC", 12, 18)]
    assert all(0.5 < e.score <= 1.0 and text[e.start:e.end] == e.text for e in entities)
    # frozen encoder: the head trains alone on cached encoder outputs, the encoder stays put
    before = [w.copy() for w in encoder.backbone.get_weights()]
    frozen = fit_token_classifier(model, (words, tags), tag_names=TAGS_BIO, head_epochs=2, epochs=0, batch_size=10,
                                  val=(words[:5], tags[:5]), test=(words[5:], tags[5:]), verbose=0)
    assert len(frozen.history["val_loss"]) == 2 and frozen.stages[0]["cached_features"] is True
    assert set(frozen.test) >= {"loss", "accuracy"}  # test= as in fine_tune (it was a TypeError)
    for a, b in zip(encoder.backbone.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_errors():
    encoder = tiny_text_encoder(sequence_length=8, num_layers=1)
    with pytest.raises(ArgumentError, match="is not a BIO tag"):
        build_token_classifier(encoder, ["O", "S-PER"])
    with pytest.raises(ArgumentError, match="must not repeat"):
        build_token_classifier(encoder, ["O", "O"])
    for dropout in ("0.1", None):  # a typed error, not a raw TypeError from the range check
        with pytest.raises(ArgumentError, match=r"`dropout` must be a finite number in \[0, 1\)"):
            build_token_classifier(encoder, TAGS_BIO, dropout=dropout)
    model = build_token_classifier(encoder, TAGS_BIO)
    with pytest.raises(DataError, match="tag 'B-ORG' is not in tag_names"):
        fit_token_classifier(model, ([["zoe"]], [["B-ORG"]]), tag_names=TAGS_BIO, verbose=0)
    with pytest.raises(DataError, match="`train`: example 0: 1 words but 2 tags"):
        fit_token_classifier(model, ([["zoe"]], [["O", "O"]]), tag_names=TAGS_BIO, verbose=0)
    with pytest.raises(DataError, match="`val`: example 0: 1 words but 2 tags"):  # which argument holds it
        fit_token_classifier(model, ([["zoe"]], [["B-PER"]]), val=([["zoe"]], [["O", "O"]]), tag_names=TAGS_BIO,
                             verbose=0)
    with pytest.raises(ArgumentTypeError, match="`train` must be a \\(word lists, tag lists\\) tuple"):
        fit_token_classifier(model, [["zoe"]], tag_names=TAGS_BIO, verbose=0)
    with pytest.raises(ArgumentError, match="token classifier"):
        predict_word_tags(build_text_classifier(encoder, 2), [["zoe"]], tag_names=TAGS_BIO)
    with pytest.raises(ArgumentError, match="strategy"):
        encode_words(encoder.tokenizer, [["zoe"]], sequence_length=8, strategy="last")
