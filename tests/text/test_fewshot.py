"""Few-shot prototypes and zero-shot label descriptions: no gradient steps, cosine classifiers."""

import numpy as np
import pytest

from tests.factories import tiny_text_encoder
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.text import build_prototype_classifier, build_zero_shot_classifier, predict_texts
from tfxfer.text.fewshot import sample_per_class

SUPPORT = ["good film", "great plot", "bad film", "awful plot", "new york", "london"]
LABELS = np.array([0, 0, 1, 1, 2, 2])


@pytest.fixture(scope="module")
def encoder():
    """One tiny encoder (8 tokens) for the whole module: nothing here takes a gradient step (the first test checks
    that its weights stay bit-identical), and each new encoder costs seconds of tracing before its first embedding."""
    import keras

    keras.utils.set_random_seed(1234)
    return tiny_text_encoder(sequence_length=8)


def test_prototypes_are_normalised_class_means_and_predict_by_cosine(encoder):
    weights_before = [w.copy() for w in encoder.backbone.get_weights()]
    model = build_prototype_classifier(encoder, SUPPORT, LABELS, temperature=0.1)
    emb = encoder.embed(SUPPORT)
    prototypes = np.stack([emb[LABELS == c].mean(0) for c in range(3)])
    prototypes /= np.linalg.norm(prototypes, axis=1, keepdims=True)
    np.testing.assert_allclose(model.get_layer("head").kernel.numpy(), prototypes.T / 0.1, atol=1e-5)
    queries = ["the good film", "awful film", "new london", "plot"]
    probs = predict_texts(model, queries)
    expected = encoder.embed(queries) @ prototypes.T
    assert probs.argmax(1).tolist() == expected.argmax(1).tolist()
    np.testing.assert_allclose(probs, np.exp(expected / 0.1) / np.exp(expected / 0.1).sum(1, keepdims=True), atol=1e-4)
    for a, b in zip(encoder.backbone.get_weights(), weights_before):  # no gradient step anywhere
        np.testing.assert_array_equal(a, b)
    one_shot = build_prototype_classifier(encoder, SUPPORT[::2], [0, 1, 2])  # each text is its own prototype
    assert predict_texts(one_shot, SUPPORT[::2]).argmax(1).tolist() == [0, 1, 2]


def test_zero_shot_by_label_descriptions(encoder):
    model = build_zero_shot_classifier(encoder, ["great", ["awful", "bad"]], template="a {} film")
    probs = predict_texts(model, ["a great film", "a awful film"])
    assert probs[0].argmax() == 0
    emb = encoder.embed(["a great film", "a awful film", "a bad film"])
    second = emb[1:].mean(0) / np.linalg.norm(emb[1:].mean(0))
    np.testing.assert_allclose(model.get_layer("head").kernel.numpy()[:, 1], second / 0.05, atol=1e-4)


def test_sample_per_class_and_errors(encoder):
    picked = sample_per_class(np.array([0, 1, 0, 1, 0, 1, 2, 2]), 2, seed=0)
    assert len(picked) == 6 and sorted(np.bincount(np.array([0, 1, 0, 1, 0, 1, 2, 2])[picked]).tolist()) == [2, 2, 2]
    with pytest.raises(DataError, match="fewer than k=3"):
        sample_per_class(np.array([0, 1, 1, 1]), 3)
    assert len(sample_per_class(np.array([0, 1, 1, 1]), np.int64(1))) == 2  # a numpy int is an int
    with pytest.raises(ArgumentError, match="`k` must be an int >= 1"):
        sample_per_class(np.array([0, 1]), 1.0)
    with pytest.raises(DataError, match="needs an example"):
        build_prototype_classifier(encoder, ["good", "bad"], [0, 2])
    with pytest.raises(ArgumentError, match="temperature"):
        build_prototype_classifier(encoder, ["good", "bad"], [0, 1], temperature=0)
    with pytest.raises(ArgumentTypeError, match="descriptions"):
        build_zero_shot_classifier(encoder, ["only one"])
    with pytest.raises(ArgumentError, match="template"):
        build_zero_shot_classifier(encoder, ["a", "b"], template="no slot")


def test_zero_shot_and_prototype_inputs_that_made_useless_models_are_refused(encoder):
    """'{{}}' formatted every class to '{}', duplicates made classes no input tells apart, an infinite
    temperature gave uniform probabilities: all were accepted; None or '{0} {}' gave raw Python errors."""
    from tfxfer.text import text_class_weights

    for template in ("{{}}", "{0} {}", "{} {x}", "{", None):
        with pytest.raises(ArgumentError, match="`template` must be a str with exactly one"):
            build_zero_shot_classifier(encoder, ["good", "bad"], template=template)
    with pytest.raises(ArgumentError, match=r"`descriptions\[1\]` must differ from descriptions\[0\]"):
        build_zero_shot_classifier(encoder, ["good", "good", "bad"])
    # an uncased tokenizer makes these the same text: the check compares token ids, not raw strings
    for same in (["good", "Good"], ["good", " good "], ["bad", ["awful", "good"], ["GOOD", "awful"]]):
        with pytest.raises(ArgumentError, match=r"must differ from descriptions\[\d\] once tokenized"):
            build_zero_shot_classifier(encoder, same)
    with pytest.raises(DataError, match="classes 0 and 1 have the same prototype"):
        build_prototype_classifier(encoder, ["good film", "good film", "bad"], [0, 1, 2])
    from tfxfer.text.fewshot import prototype_model

    with pytest.raises(ArgumentError, match="classes 0 and 2 point the same way"):
        prototype_model(encoder, np.stack([np.ones(16), -np.ones(16), 2 * np.ones(16)]))
    with pytest.raises(ArgumentTypeError, match=r"`descriptions\[0\]`"):
        build_zero_shot_classifier(encoder, [None, "bad"])
    build_zero_shot_classifier(encoder, ["good", "bad"], template="{{ {} }}")  # escaped braces and one field
    with pytest.raises(ArgumentError, match="`temperature` must be a finite number"):
        build_prototype_classifier(encoder, SUPPORT, LABELS, temperature=float("inf"))
    with pytest.raises(DataError, match="single class"):
        build_prototype_classifier(encoder, ["good", "fine"], [0, 0])
    with pytest.raises(DataError, match="holds class 2 but `num_classes` is 2"):
        text_class_weights(np.array([0, 1, 2]), num_classes=2)
    with pytest.raises(DataError, match="class ids >= 0"):
        text_class_weights(np.array([0, -1]))
