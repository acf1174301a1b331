"""Text training and prediction on hostile inputs: labels and texts are checked as for image models
(typed errors before any training step), empty inputs give empty results, NER tags and words are checked."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_text_classifier, tiny_text_encoder
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.reliability import check_training_arrays
from tfxfer.text import build_token_classifier, encode_tagged_words, predict_entities, predict_texts, predict_word_tags
from tfxfer.train.data import as_dataset
from tfxfer.train.fine_tune import fine_tune

TEXTS = np.array(["good film", "bad film", "great plot", "awful plot", "loved it", "hated it"], dtype=object)
LABELS = np.array([1, 0, 1, 0, 1, 0])
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTENCE = [["zoe", "visits", "paris"]]


@pytest.fixture(scope="module")
def classifier():
    return tiny_text_classifier(2, encoder=tiny_text_encoder(sequence_length=8, num_layers=1))


@pytest.fixture(scope="module")
def tagger():
    return build_token_classifier(tiny_text_encoder(sequence_length=16, num_layers=1), TAGS)


def _fine_tune(model, x, y, val=None, **kw):
    return fine_tune(model, (x, y), val=val, head_epochs=1, epochs=0, batch_size=8, verbose=0, **kw)


@pytest.mark.parametrize("labels, val, match", [
    (np.array(["pos", "neg"] * 3), None, r"`train` labels must be integer class ids in \[0, 1\].*<U3.*np.unique"),
    (np.array([0, 5] * 3), None, r"`train` labels must be class ids in \[0, 1\].*found 0..5"),
    (np.array([0, -1] * 3), None, r"found -1..0"),
    (np.array([0.0, 1.0, np.nan, 1.0, 0.0, 1.0]), None, r"`train` labels contain NaN or Inf \(first at example 2"),
    (np.array([0.0, 0.5] * 3), None, r"`train` labels must be integer class ids.*found 0.5 at example 1"),
    (np.zeros(6, int), None, r"`train` holds a single class \(0\).*at least 2 classes"),
    (LABELS, (TEXTS[:4], np.array([0, 1, 2, 1])), r"`val` labels must be class ids in \[0, 1\].*found 0..2"),
], ids=["names", "out-of-range", "negative", "nan", "fraction", "single-class", "val-unseen"])
def test_text_fine_tune_checks_labels_as_for_images(classifier, labels, val, match):
    with pytest.raises(DataError, match=match):
        _fine_tune(classifier, TEXTS, labels, val=val)


def test_string_labels_get_the_same_error_for_image_and_text_models(classifier):
    image = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax", name="head")])
    labels = np.array(["pos", "neg"])
    messages = []
    for model, x in ((image, np.zeros((2, 4, 4, 3), "float32")), (classifier, TEXTS[:2])):
        with pytest.raises(DataError) as info:
            check_training_arrays(model, (x, labels))
        messages.append(str(info.value))
    assert messages[0] == messages[1]


@pytest.mark.parametrize("texts, error, match", [
    (np.array([None, *TEXTS[1:]], dtype=object), ArgumentTypeError, r"`train\[0\]\[0\]` must be a str.*None"),
    (np.array([1.5, *TEXTS[1:]], dtype=object), ArgumentTypeError, r"`train\[0\]\[0\]` must be a str.*1.5"),
    (np.arange(6), ArgumentTypeError, r"`train\[0\]\[0\]` must be a str.*int64"),
    (np.array([b"\xff\xfe", *TEXTS[1:]], dtype=object), ArgumentError, r"`train\[0\]\[0\]` must be UTF-8 bytes"),
], ids=["none", "float", "int-array", "bad-utf8"])
def test_text_fine_tune_checks_texts_as_predict_texts_does(classifier, texts, error, match):
    with pytest.raises(error, match=match):
        _fine_tune(classifier, texts, LABELS)
    with pytest.raises(error, match=match.replace("train", "texts").replace(r"\[0\]\[0\]", r"\[0\]")):
        predict_texts(classifier, texts)


def test_a_list_mixing_str_and_bytes_trains_as_predict_texts_reads_it(classifier):
    """A plain list holding bytes failed in numpy (a raw UnicodeDecodeError) before the texts were checked."""
    texts = [t if i % 2 else t.encode("utf-8") for i, t in enumerate(["café ok", *TEXTS[1:]])]
    _fine_tune(classifier, texts, LABELS)  # valid UTF-8 bytes are texts
    with pytest.raises(ArgumentError, match=r"`train\[0\]\[0\]` must be UTF-8 bytes"):
        _fine_tune(classifier, [b"\xff bad", *TEXTS[1:]], LABELS)


def test_as_dataset_refuses_non_texts_instead_of_stringifying():
    with pytest.raises(ArgumentTypeError, match=r"`data\[0\]\[1\]` must be a str"):
        as_dataset((np.array(["a", None], dtype=object), np.array([0, 1])))


def test_balanced_class_weight_refuses_class_names(classifier):
    with pytest.raises(DataError, match=r"`train\[1\]` must be integer class ids.*<U3"):
        _fine_tune(classifier, TEXTS, np.array(["pos", "neg"] * 3), class_weight="balanced")


def test_predict_texts_empty_and_hostile_items(classifier):
    empty = predict_texts(classifier, [])
    assert empty.shape == (0, 2) and empty.dtype == np.float32
    with pytest.raises(ArgumentError, match=r"`texts\[1\]` must be UTF-8 bytes.*b'\\xff\\xfe'"):
        predict_texts(classifier, ["good", b"\xff\xfe"])
    with pytest.raises(ArgumentError, match=r"`texts\[0\]` must be encodable as UTF-8.*lone surrogate"):
        predict_texts(classifier, ["good \ud800 film"])
    with pytest.raises(ArgumentError, match=r"`batch_size` must be an int >= 1.*batch_size=0"):
        predict_texts(classifier, ["good"], batch_size=0)


def test_ner_prediction_empty_inputs_and_sentences_as_strings(tagger):
    assert predict_entities(tagger, [], tag_names=TAGS) == []
    assert predict_word_tags(tagger, [], tag_names=TAGS) == ([], [])
    with pytest.raises(ArgumentTypeError, match=r"`words\[0\]` must be a list of words.*'zoe visits paris'"):
        predict_word_tags(tagger, ["zoe visits paris"], tag_names=TAGS)
    with pytest.raises(ArgumentTypeError, match=r"`texts\[0\]` must be a str.*None"):
        predict_entities(tagger, [None], tag_names=TAGS)
    with pytest.raises(ArgumentError, match=r"`batch_size`"):
        predict_word_tags(tagger, SENTENCE, tag_names=TAGS, batch_size=0)


@pytest.mark.parametrize("tag, error, match", [
    (-1, ArgumentError, r"`tags\[0\]\[2\]` must be a tag name or an int tag id in \[0, 4\].*tags\[0\]\[2\]=-1"),
    (9, ArgumentError, r"tags\[0\]\[2\]=9"),
    (1.7, ArgumentError, r"tags\[0\]\[2\]=1.7"),
    (np.nan, ArgumentError, r"tags\[0\]\[2\]=nan"),
    (None, ArgumentTypeError, r"`tags\[0\]\[2\]` must be a tag name.*None"),
], ids=["negative", "too-large", "fraction", "nan", "none"])
def test_ner_tag_ids_are_checked(tagger, tag, error, match):
    with pytest.raises(error, match=match):
        encode_tagged_words(tagger, SENTENCE, [[1, 0, tag]], tag_names=TAGS)


def test_ner_words_and_tag_lists_are_checked(tagger):
    assert encode_tagged_words(tagger, SENTENCE, [[1, 0, 3.0]], tag_names=TAGS).labels[0, 3] == 3
    for word in (None, 5):
        with pytest.raises(ArgumentTypeError, match=r"`words\[0\]\[1\]` must be a str \(one word\)"):
            encode_tagged_words(tagger, [["zoe", word, "paris"]], [["B-PER", "O", "B-LOC"]], tag_names=TAGS)
    with pytest.raises(ArgumentTypeError, match=r"`tags\[0\]` must be a list of tags"):
        encode_tagged_words(tagger, SENTENCE, ["B-PER O B-LOC"], tag_names=TAGS)
