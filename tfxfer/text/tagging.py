"""BIO / BIOES tags: parse, chunk into spans, repair, and decode predictions into valid spans.

`chunks` reads a tag sequence exactly as seqeval (default mode) and conlleval do: an ``I-X`` after
``O`` or after another type starts a new entity, a type change ends one. Every span it returns has
one type and ``start < end``, whatever the input, so decoding never yields an invalid span.
`repair_tags` rewrites any tag sequence into a valid one of the chosen scheme with the same spans.
`viterbi_tags` decodes per-word tag probabilities into the most probable *valid* sequence
(transitions such as ``O -> I-X`` or ``B-X -> I-Y`` are forbidden).

Example:
    >>> from tfxfer.text.tagging import chunks, repair_tags
    >>> chunks(["I-PER", "I-PER", "O", "B-LOC", "I-ORG"])
    [('PER', 0, 2), ('LOC', 3, 4), ('ORG', 4, 5)]
    >>> repair_tags(["I-PER", "I-PER", "O", "B-LOC", "I-ORG"], scheme="BIOES")
    ['B-PER', 'E-PER', 'O', 'S-LOC', 'S-ORG']
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tfxfer.errors import ArgumentError, DataError

SCHEMES = ("BIO", "BIOES")
_ALIASES = {"L": "E", "U": "S"}  # BILOU spelling


class Span(NamedTuple):
    """An entity over words ``[start, end)`` with its ``type`` and mean tag ``score``."""

    type: str
    start: int
    end: int
    score: float = 1.0


def check_scheme(scheme: str) -> str:
    if scheme not in SCHEMES:
        raise ArgumentError("scheme", scheme, "must be one of " + ", ".join(SCHEMES))
    return scheme


def parse_tag(tag: str) -> tuple[str, str]:
    """``"B-geo-loc"`` -> ``("B", "geo-loc")``; ``"O"`` -> ``("O", "")``."""
    if not isinstance(tag, str) or not tag:
        raise DataError(f"Invalid tag {tag!r}: expected 'O' or '<B|I|E|S>-<type>'")
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    prefix = _ALIASES.get(prefix, prefix)
    if not sep or not kind or prefix not in ("B", "I", "E", "S"):
        raise DataError(f"Invalid tag {tag!r}: expected 'O' or '<B|I|E|S>-<type>'")
    return prefix, kind


def _ends(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != kind


def _starts(prev: str, tag: str, prev_type: str, kind: str) -> bool:
    if tag in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag != "O" and prev_type != kind


def chunks(tags) -> list[tuple[str, int, int]]:
    """Entity chunks ``(type, start, end)`` (end exclusive) as seqeval's default mode finds them."""
    out, prev, prev_type, begin = [], "O", "", 0
    parsed = [parse_tag(t) for t in tags] + [("O", "")]
    for i, (tag, kind) in enumerate(parsed):
        if _ends(prev, tag, prev_type, kind):
            out.append((prev_type, begin, i))
        if _starts(prev, tag, prev_type, kind):
            begin = i
        prev, prev_type = tag, kind
    return out


def strict_chunks(tags, *, scheme: str = "BIO") -> list[tuple[str, int, int]]:
    """Only well-formed chunks (seqeval strict mode): BIO ``B I*``; BIOES ``B I* E`` or ``S``."""
    check_scheme(scheme)
    parsed = [parse_tag(t) for t in tags]
    out, i = [], 0
    while i < len(parsed):
        prefix, kind = parsed[i]
        if scheme == "BIOES" and prefix == "S":
            out.append((kind, i, i + 1))
        if prefix == "B":
            j = i + 1
            while j < len(parsed) and parsed[j] == ("I", kind):
                j += 1
            if scheme == "BIO":
                out.append((kind, i, j))
                i = j
                continue
            if j < len(parsed) and parsed[j] == ("E", kind):
                out.append((kind, i, j + 1))
                i = j + 1
                continue
        i += 1
    return out


def spans_to_tags(spans, length: int, *, scheme: str = "BIO") -> list[str]:
    """Tags of ``length`` words holding ``spans`` (``(type, start, end)``; must not overlap)."""
    check_scheme(scheme)
    tags = ["O"] * length
    for span in spans:
        kind, start, end = span[0], int(span[1]), int(span[2])
        if not 0 <= start < end <= length:
            raise ArgumentError("spans", tuple(span), f"must satisfy 0 <= start < end <= {length}")
        if any(t != "O" for t in tags[start:end]):
            raise ArgumentError("spans", tuple(span), "must not overlap")
        for i in range(start, end):
            if scheme == "BIOES":
                prefix = "S" if end - start == 1 else ("B" if i == start else ("E" if i == end - 1 else "I"))
            else:
                prefix = "B" if i == start else "I"
            tags[i] = f"{prefix}-{kind}"
    return tags


def repair_tags(tags, *, scheme: str = "BIO") -> list[str]:
    """A valid ``scheme`` sequence with the spans seqeval reads from ``tags`` (any scheme in)."""
    return spans_to_tags(chunks(tags), len(tags), scheme=scheme)


def is_valid(tags, *, scheme: str = "BIO") -> bool:
    """Whether ``tags`` is a well-formed ``scheme`` sequence."""
    return list(tags) == repair_tags(tags, scheme=scheme) and all(
        parse_tag(t)[0] in (("O", "B", "I") if scheme == "BIO" else ("O", "B", "I", "E", "S")) for t in tags)


def _allowed(tag_names, scheme: str):
    """Boolean ``start[T]``, ``transition[T, T]``, ``end[T]`` masks of valid sequences."""
    parsed = [parse_tag(t) for t in tag_names]
    n = len(parsed)
    start, end = np.zeros(n, bool), np.zeros(n, bool)
    trans = np.zeros((n, n), bool)
    for j, (p, k) in enumerate(parsed):
        if scheme == "BIO":
            start[j] = p in ("O", "B")
            end[j] = p in ("O", "B", "I")
        else:
            start[j] = p in ("O", "B", "S")
            end[j] = p in ("O", "E", "S")
        for i, (q, m) in enumerate(parsed):
            inside = q in ("B", "I")  # the previous tag opens an entity of type m
            if scheme == "BIO":
                trans[i, j] = p in ("O", "B") or (p == "I" and inside and m == k)
            elif inside:
                trans[i, j] = p in ("I", "E") and m == k
            else:
                trans[i, j] = p in ("O", "B", "S")
    return start, trans, end


def viterbi_tags(probs, tag_names, *, scheme: str = "BIO") -> list[int]:
    """The most probable valid tag-id sequence for per-word probabilities ``[words, tags]``."""
    check_scheme(scheme)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(tag_names):
        raise ArgumentError("probs", probs.shape, f"must be [words, {len(tag_names)}]")
    if probs.shape[0] == 0:
        return []
    start, trans, end = _allowed(tag_names, scheme)
    if not start.any() or not end.any():
        raise DataError(f"tag_names {list(tag_names)} cannot form a valid {scheme} sequence (add 'O')")
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    penalty = np.where(trans, 0.0, -np.inf)
    score = np.where(start, logp[0], -np.inf)
    back = np.zeros(probs.shape, dtype=np.int64)
    for t in range(1, len(probs)):
        candidates = score[:, None] + penalty
        back[t] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + logp[t]
    score = np.where(end, score, -np.inf)
    best = [int(score.argmax())]
    for t in range(len(probs) - 1, 0, -1):
        best.append(int(back[t, best[-1]]))
    return best[::-1]


def decode_spans(probs, tag_names, *, scheme: str = "BIO", method: str = "viterbi") -> tuple[list[str], list[Span]]:
    """Word tags and entity spans from per-word tag probabilities ``[words, tags]``.

    Args:
        method: "viterbi" (most probable valid sequence) or "repair" (argmax per word, then
            `repair_tags`). Both only ever produce valid spans.

    Returns:
        ``(tags, spans)``; each span's score is the mean probability of its words' tags.
    """
    check_scheme(scheme)
    probs = np.asarray(probs, dtype=np.float64)
    if method == "viterbi":
        ids = viterbi_tags(probs, tag_names, scheme=scheme)
        tags = [tag_names[i] for i in ids]
    elif method == "repair":
        tags = repair_tags([tag_names[i] for i in probs.argmax(axis=1)], scheme=scheme) if len(probs) else []
    else:
        raise ArgumentError("method", method, "must be 'viterbi' or 'repair'")
    index = {name: i for i, name in enumerate(tag_names)}
    word_scores = [float(probs[w, index[t]]) if t in index else 0.0 for w, t in enumerate(tags)]
    spans = [Span(kind, s, e, float(np.mean(word_scores[s:e]))) for kind, s, e in chunks(tags)]
    return tags, spans
