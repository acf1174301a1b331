"""The adaptation pieces on text: a tiny BERT classifier and encoder (strings in)."""

import numpy as np
import pytest

from tfxfer.adapt import DANN, adaptation_dataset, detect_shift
from tfxfer.errors import ArgumentError

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "great", "awful", "tweet", "lol", "plot"]


@pytest.fixture
def text_model():
    from tfxfer.text import build_bert_encoder, build_text_classifier

    encoder = build_bert_encoder(VOCAB, num_layers=1, hidden_dim=8, intermediate_dim=16, num_heads=2,
                                 sequence_length=8)
    return encoder, build_text_classifier(encoder, 2)


def _texts():
    source = np.array(["good film", "bad film", "great plot", "awful plot"] * 8, dtype=object)
    target = np.array(["lol tweet good", "tweet bad lol", "lol lol great", "awful tweet"] * 8, dtype=object)
    return source, np.array([1, 0, 1, 0] * 8), target


def test_shift_between_text_domains_is_detected_on_classifier_and_encoder(text_model):
    encoder, model = text_model
    xs, ys, xt = _texts()
    for subject in (model, encoder):
        result = detect_shift(subject, (xs, ys), xt, permutations=300)
        assert result.shifted, result.summary()
        assert result.feature_dim == 8
    assert result.per_class == [] and result.expected_target_accuracy is None  # an encoder has no head


@pytest.mark.filterwarnings("ignore:Gradients do not exist for variables:UserWarning")  # keras-hub's unused pooler
def test_dann_trains_a_text_classifier_on_string_batches(text_model):
    _, model = text_model
    xs, ys, xt = _texts()
    dann = DANN(model, domain_units=4)
    dann.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    logs = dann.fit(adaptation_dataset((xs, ys), xt, batch_size=8, model=model), epochs=1, verbose=0).history
    assert np.isfinite(logs["domain_loss"][0]) and np.isfinite(logs["loss"][0])


def test_text_target_of_the_wrong_kind_is_refused(text_model):
    _, model = text_model
    xs, ys, _ = _texts()
    with pytest.raises(ArgumentError, match="`target` must be a 1-D array of strings"):
        detect_shift(model, (xs, ys), np.zeros((4, 8), "float32"), permutations=300)
