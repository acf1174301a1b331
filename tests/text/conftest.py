"""Shared fixtures for the text tests: a small WordPiece vocabulary and tiny random BERT encoders."""

import pytest

from tests.text.helpers import VOCAB


@pytest.fixture
def vocab():
    return list(VOCAB)


@pytest.fixture
def make_encoder():
    """``make_encoder(sequence_length=16, **kwargs)`` -> a tiny random BERT `TextEncoder`."""
    from tfxfer.text import build_bert_encoder

    def make(sequence_length=16, **kwargs):
        options = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0)
        options.update(kwargs)
        return build_bert_encoder(VOCAB, sequence_length=sequence_length, **options)

    return make
