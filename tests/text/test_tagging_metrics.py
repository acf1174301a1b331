"""BIO/BIOES chunking, repair, constrained decoding; seqeval-compatible entity scores (hand-checked)."""

import numpy as np
import pytest

from tfxfer.errors import ArgumentError, DataError
from tfxfer.text.ner_metrics import entity_scores
from tfxfer.text.tagging import (chunks, decode_spans, is_valid, parse_tag, repair_tags, spans_to_tags,
                                 strict_chunks, viterbi_tags)

BIO = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-geo-loc", "I-geo-loc"]
BIOES = ["O"] + [f"{p}-{t}" for t in ("PER", "LOC") for p in "BIES"]


def test_parse_and_chunks_follow_seqeval_default():
    assert parse_tag("B-geo-loc") == ("B", "geo-loc") and parse_tag("O") == ("O", "")
    assert parse_tag("U-PER") == ("S", "PER") and parse_tag("L-PER") == ("E", "PER")
    # seqeval docs example: get_entities(['B-PER', 'I-PER', 'O', 'B-LOC']) == [('PER', 0, 1), ('LOC', 3, 3)]
    assert chunks(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]
    assert chunks(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == [
        ("PER", 0, 2), ("LOC", 3, 4), ("LOC", 4, 5), ("ORG", 5, 6)]
    assert chunks(["B-PER", "E-PER", "S-LOC", "I-LOC", "E-LOC"]) == [("PER", 0, 2), ("LOC", 2, 3), ("LOC", 3, 5)]
    assert strict_chunks(["I-PER", "B-LOC", "I-LOC", "I-ORG"]) == [("LOC", 1, 3)]
    assert strict_chunks(["B-PER", "I-PER", "O", "S-LOC", "B-LOC", "I-LOC"], scheme="BIOES") == [("LOC", 3, 4)]
    with pytest.raises(DataError, match="Invalid tag"):
        parse_tag("X-PER")
    with pytest.raises(DataError, match="Invalid tag"):
        parse_tag("B")


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
def test_repair_makes_any_sequence_valid_and_keeps_its_spans(scheme):
    rng = np.random.default_rng(0)
    pool = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    for _ in range(300):
        tags = list(rng.choice(pool, size=rng.integers(0, 10)))
        repaired = repair_tags(tags, scheme=scheme)
        assert is_valid(repaired, scheme=scheme), (tags, repaired)
        assert chunks(repaired) == chunks(tags)
    assert repair_tags(["I-PER", "I-LOC", "O", "I-PER"]) == ["B-PER", "B-LOC", "O", "B-PER"]
    assert repair_tags(["B-PER", "I-PER", "I-PER"], scheme="BIOES") == ["B-PER", "I-PER", "E-PER"]
    assert not is_valid(["O", "I-PER"]) and is_valid(["B-PER", "I-PER", "O"])


def test_spans_to_tags_and_errors():
    assert spans_to_tags([("PER", 0, 2), ("LOC", 3, 4)], 5, scheme="BIOES") == ["B-PER", "E-PER", "O", "S-LOC", "O"]
    with pytest.raises(ArgumentError, match="overlap"):
        spans_to_tags([("PER", 0, 2), ("LOC", 1, 3)], 4)
    with pytest.raises(ArgumentError, match="start < end"):
        spans_to_tags([("PER", 2, 2)], 4)
    with pytest.raises(ArgumentError, match="scheme"):
        repair_tags(["O"], scheme="IOB1")


@pytest.mark.parametrize("tag_names,scheme", [(BIO, "BIO"), (BIOES, "BIOES")])
def test_viterbi_never_decodes_an_invalid_sequence(tag_names, scheme):
    rng = np.random.default_rng(1)
    for _ in range(100):
        probs = rng.dirichlet(np.ones(len(tag_names)) * 0.3, size=rng.integers(1, 9))
        for method in ("viterbi", "repair"):
            tags, spans = decode_spans(probs, tag_names, scheme=scheme, method=method)
            assert is_valid(tags, scheme=scheme), (method, tags)
            assert all(s.start < s.end and 0 <= s.score <= 1 for s in spans)
    # argmax would give "O I-PER" (invalid); the best valid sequence starts the entity with B-PER
    probs = np.array([[0.9, 0.05, 0.05, 0, 0, 0, 0], [0.2, 0.3, 0.5, 0, 0, 0, 0]])
    assert [BIO[i] for i in viterbi_tags(probs, BIO)] == ["O", "B-PER"]
    assert [BIO[i] for i in viterbi_tags(np.array([[0.9, 0.05, 0.05, 0, 0, 0, 0], [0.3, 0.25, 0.45, 0, 0, 0, 0]]),
                                         BIO)] == ["O", "O"]  # O beats B-PER once I-PER is ruled out
    tags, spans = decode_spans(probs, BIO, method="repair")
    assert tags == ["O", "B-PER"] and spans[0].type == "PER" and spans[0].score == pytest.approx(0.3)
    with pytest.raises(ArgumentError, match="method"):
        decode_spans(probs, BIO, method="greedy")


def test_entity_scores_hand_computed():
    y_true = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "O", "O"]]
    s = entity_scores(y_true, y_pred)  # seqeval docs: f1_score(y_true, y_pred) == 0.5
    assert (s.precision, s.recall, s.f1) == (0.5, 0.5, 0.5)
    assert s.per_type == {"MISC": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
                          "PER": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}}
    assert s.macro["f1"] == 0.5 and s.weighted["f1"] == 0.5 and "micro avg" in s.format()
    lenient = entity_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])
    strict = entity_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]], mode="strict")
    assert lenient.f1 == 1.0 and strict.f1 == 0.0
    empty = entity_scores([["O"]], [["B-PER"]])
    assert (empty.precision, empty.recall, empty.f1) == (0.0, 0.0, 0.0)
    with pytest.raises(DataError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])
    with pytest.raises(ArgumentError, match="mode"):
        entity_scores([["O"]], [["O"]], mode="lenient")
