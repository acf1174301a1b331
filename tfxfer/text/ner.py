"""Token classification (NER) on a pretrained text encoder; keras-hub has no such task.

`build_token_classifier` makes ``text -> tokenize -> encoder -> pool(mode="tokens") ->
head_dropout -> head`` (softmax over tags at every position). Prediction works on words:
`encode_tagged_words` aligns word tags to word pieces (`tfxfer.text.alignment`);
`predict_word_tags` folds piece probabilities back to words and decodes valid BIO/BIOES sequences;
`predict_entities` returns `Entity` tuples (text, type, start, end, score) with character offsets
into the raw text. Training goes through the one core: `tfxfer.train.ner.fit_token_classifier`.

Example:
    >>> from tfxfer.text import build_bert_encoder, build_token_classifier, predict_entities
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "zoe", "visits", "paris"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=12)
    >>> tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    >>> model = build_token_classifier(encoder, tags)
    >>> entities = predict_entities(model, ["Zoe visits Paris"], tag_names=tags)
    >>> all(e.text == "Zoe visits Paris"[e.start:e.end] for e in entities[0])
    True
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.text.alignment import check_word_lists, encode_words, split_words, word_predictions
from tfxfer.text.encoders import TextEncoder, as_texts, pool_outputs
from tfxfer.text.graph import text_parts, token_model
from tfxfer.text.tagging import check_scheme, decode_spans, parse_tag
from tfxfer.utils.validate import check_float, check_int


class Entity(NamedTuple):
    """A predicted entity: the ``text`` span, its ``type``, character ``start``/``end`` in the input
    (``text == input[start:end]``) and ``score`` (mean probability of its word tags)."""

    text: str
    type: str
    start: int
    end: int
    score: float


def _check_tags(tag_names, scheme):
    check_scheme(scheme)
    if isinstance(tag_names, str) or not isinstance(tag_names, (list, tuple)) or not tag_names:
        raise ArgumentTypeError("tag_names", tag_names, "a non-empty list of tag strings")
    allowed = ("O", "B", "I") if scheme == "BIO" else ("O", "B", "I", "E", "S")
    for tag in tag_names:
        if parse_tag(tag)[0] not in allowed:
            raise ArgumentError("tag_names", tag, f"is not a {scheme} tag")
    if len(set(tag_names)) != len(tag_names):
        raise ArgumentError("tag_names", list(tag_names), "must not repeat a tag")
    return list(tag_names)


def build_token_classifier(encoder: TextEncoder, tag_names, *, scheme: str = "BIO", dropout: float = 0.1,
                           name: str = "token_classifier") -> keras.Model:
    """A token classifier over ``encoder``: per-position tag probabilities ``[batch, length, tags]``.

    Args:
        encoder: a `TextEncoder`.
        tag_names: the tags, e.g. ``["O", "B-PER", "I-PER", ...]`` (their order is the output order).
        scheme: "BIO" or "BIOES" (checked against ``tag_names``).
        dropout: dropout before the head.
    """
    if not isinstance(encoder, TextEncoder):
        raise ArgumentTypeError("encoder", encoder, "a tfxfer.text.TextEncoder")
    tags = _check_tags(tag_names, scheme)
    dropout = check_float("dropout", dropout, low=0, high=1, high_open=True)
    text = keras.Input(shape=(), dtype="string", name="text")
    x = pool_outputs(encoder.backbone, encoder.tokenizer_layer()(text), pooling="tokens")
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(len(tags), activation="softmax", dtype="float32", name="head")(x)
    return keras.Model(text, outputs, name=name)


def encode_tagged_words(model: keras.Model, words, tags=None, *, tag_names, scheme: str = "BIO",
                        alignment: str = "first"):
    """Word lists (and their tags) as the token tensors, tag ids and weights of ``model``'s tokenizer.

    Args:
        model: from `build_token_classifier`.
        words, tags: lists of word lists and of per-word tags (strings or ids into ``tag_names``).
        alignment: which word pieces carry a word's tag: "first" or "all" (see `encode_words`).

    Returns:
        `tfxfer.text.alignment.EncodedWords` (``inputs``, ``labels``, ``weights``, ``word_ids``, ``truncated_words``,
        ``empty_words``).
    """
    tag_names = _check_tags(tag_names, scheme)
    if tags is not None and (len(words) != len(tags) or not len(words)):
        raise DataError(f"{len(words)} word lists and {len(tags)} tag lists (need the same, > 0)")
    parts = text_parts(model)
    if parts.pool.mode != "tokens":
        raise ArgumentError("model", model.name, "must be a token classifier (build_token_classifier)")
    return encode_words(parts.tokenizer.tokenizer, words, tags, tag_names=tag_names,
                        sequence_length=parts.sequence_length, strategy=alignment, scheme=scheme)


def predict_word_tags(model: keras.Model, words, *, tag_names, scheme: str = "BIO", alignment: str = "first",
                      method: str = "viterbi", batch_size: int = 32):
    """Decoded tags and spans for word lists (a list of lists of words; an empty list gives ``([], [])``).

    Returns:
        ``(tags, spans)``: per sentence a valid tag list (one per word) and its `Span` list.

    Raises:
        ArgumentTypeError: a sentence that is not a list of words (a str: use `predict_entities`), a
            word that is not a str.
    """
    tag_names = _check_tags(tag_names, scheme)
    batch_size = check_int("batch_size", batch_size, low=1)
    words = check_word_lists(words)
    if not words:
        return [], []
    encoded = encode_tagged_words(model, words, tag_names=tag_names, scheme=scheme, alignment=alignment)
    probs = token_model(model).predict(encoded.inputs, batch_size=batch_size, verbose=0)
    if probs.shape[-1] != len(tag_names):
        raise ArgumentError("tag_names", len(tag_names), f"must match the model's {probs.shape[-1]} outputs")
    all_tags, all_spans = [], []
    for row, sentence in enumerate(words):
        per_word = word_predictions(probs[row], encoded.word_ids[row], len(sentence), tag_names=tag_names,
                                    strategy=alignment, scheme=scheme)
        tags, spans = decode_spans(per_word, tag_names, scheme=scheme, method=method)
        all_tags.append(tags)
        all_spans.append(spans)
    return all_tags, all_spans


def predict_entities(model: keras.Model, texts, *, tag_names, scheme: str = "BIO", alignment: str = "first",
                     method: str = "viterbi", batch_size: int = 32) -> list[list[Entity]]:
    """Entities in raw ``texts``: per text a list of `Entity` (text, type, start, end, score).

    ``texts`` are checked as `predict_texts` checks them (`tfxfer.text.encoders.as_texts`: str or
    UTF-8 bytes); an empty list gives ``[]``.
    """
    texts = as_texts(texts)
    if not len(texts):
        return []
    split = [split_words(t) for t in texts]
    _, spans = predict_word_tags(model, [[w for w, _, _ in s] for s in split], tag_names=tag_names,
                                 scheme=scheme, alignment=alignment, method=method, batch_size=batch_size)
    out = []
    for text, words, sentence_spans in zip(texts, split, spans):
        entities = []
        for span in sentence_spans:
            start, end = words[span.start][1], words[span.end - 1][2]
            entities.append(Entity(text[start:end], span.type, start, end, round(float(span.score), 6)))
        out.append(entities)
    return out


def word_tag_accuracy(true_tags, pred_tags) -> float:
    """Share of words whose predicted tag equals the true tag."""
    pairs = [(t, p) for ts, ps in zip(true_tags, pred_tags) for t, p in zip(ts, ps)]
    if not pairs:
        raise DataError("no words to score")
    return float(np.mean([t == p for t, p in pairs]))
