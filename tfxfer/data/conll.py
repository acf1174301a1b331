"""Token classification (NER) data from CoNLL-style files: one ``token<TAB>tag`` per line, a blank
line between sentences, ``-DOCSTART-`` lines ignored.

Example:
    >>> import os, tempfile
    >>> from tfxfer.data import load_conll
    >>> path = os.path.join(tempfile.mkdtemp(), "ner.txt")
    >>> lines = []
    >>> for i in range(5):
    ...     lines += [f"Zoë\\tB-person", f"visits\\tO", f"Paris{i}\\tB-geo-loc", ""]
    >>> _ = open(path, "w", encoding="utf-8").write("\\n".join(lines))
    >>> data = load_conll(path, test_split=0.2, seed=0)
    >>> data.tag_names
    ['O', 'B-geo-loc', 'B-person']
    >>> len(data.train.x), len(data.test.x), list(data.train.x[0][:2])
    (4, 1, ['Zoë', 'visits'])
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import unicodedata

import numpy as np

from tfxfer.data.hygiene import DataSummary, find_duplicates, handle_leakage
from tfxfer.data.splits import Split, check_fractions, stratified_split
from tfxfer.data.text import read_text_file
from tfxfer.errors import ArgumentError, DataError, bounded_repr
from tfxfer.utils.validate import check_int, check_unique_names


@dataclasses.dataclass
class TokenData:
    """Token lists and tag ids per split.

    Attributes:
        train, val, test: `Split` ``(x, y)``: ``x`` an object array of token lists, ``y`` an
            object array of int32 tag-id arrays of the same lengths.
        tag_names: tag ``i`` is ``tag_names[i]``; "O" first when present.
        summary: `DataSummary`; ``class_counts`` counts tags per split; notes report BIO errors.
    """

    train: Split
    val: Split | None
    test: Split | None
    tag_names: list
    summary: DataSummary

    @property
    def num_tags(self) -> int:
        return len(self.tag_names)


def _parse(text, separator, token_column, tag_column, summary, base):
    """``[(first line, [(token, tag), ...]), ...]``: sentences end at a blank line or a ``-DOCSTART-``
    line. A sentence holding a line without a token or tag is skipped whole (one ``bad_row`` naming
    that line): dropping only the line would join the tokens around it into a sentence that was never
    written. Trailing separators (``EU\tB-ORG\t``) are ignored."""
    sentences, current, start, broken = [], [], None, None

    def close(last_line):
        if broken is not None:
            summary.skipped.append({"path": f"{base}:{start if start is not None else broken[0]}",
                                    "reason": "bad_row",
                                    "detail": f"sentence ending at line {last_line} skipped: line {broken[0]}: "
                                              f"{broken[1]}"})
        elif current:
            sentences.append((start, current))

    # lines end at "\n" only: U+2028, U+0085 (NEL) and other separators str.splitlines() knows can sit
    # inside a token, and splitting on them would shift every tag after them
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line[:-1] if line.endswith("\r") else line
        fields = line.split(separator) if separator else (line.split("\t") if "\t" in line.strip() else line.split())
        while len(fields) > 1 and not fields[-1].strip():  # a trailing tab or separator
            fields.pop()
        boundary = not _visible(line) or not fields or not fields[0].strip() and all(not f.strip() for f in fields)
        if boundary or fields[0].startswith("-DOCSTART-"):
            close(line_no - 1)
            current, start, broken = [], None, None
            continue
        try:
            token, tag = fields[token_column], fields[tag_column].strip()
            problem = None if token and tag and len(fields) >= 2 else f"missing token or tag: {bounded_repr(line)}"
        except IndexError:
            problem = f"{len(fields)} field(s): {bounded_repr(line)}"
        if start is None:
            start = line_no
        if problem is not None:
            broken = broken or (line_no, problem)
            continue
        current.append((token, tag))
    close(line_no)
    return sentences


def _visible(line: str) -> bool:
    """Whether ``line`` holds a character that is neither white space nor an invisible format character
    (a zero-width space or a stray BOM on an otherwise blank line ends a sentence as a blank line does)."""
    return any(not c.isspace() and unicodedata.category(c) != "Cf" for c in line)


def _bio_errors(tags) -> int:
    """Number of ``I-X`` tags that do not continue a ``B-X``/``I-X`` (BIO scheme violations)."""
    errors, previous = 0, "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            errors += 1
        previous = tag
    return errors


def load_conll(
    path,
    *,
    token_column: int = 0,
    tag_column: int = -1,
    separator: str | None = None,
    tag_names=None,
    max_tokens: int | None = None,
    on_long: str = "split",
    validation_split: float = 0.0,
    test_split: float = 0.0,
    seed: int = 0,
    on_leakage: str = "warn",
    encoding: str = "utf-8",
) -> TokenData:
    """Load a CoNLL-style token/tag file.

    Args:
        path: the file.
        token_column, tag_column: field indexes (default first and last).
        separator: field separator (default: tab if the line has one, else whitespace).
        tag_names: explicit tag order (default: "O" first, then sorted).
        max_tokens: maximum sentence length in tokens (None: unlimited).
        on_long: "split" (cut into chunks of ``max_tokens``), "truncate", "skip" or "raise".
        validation_split, test_split, seed: seeded random split of sentences (identical
            sentences stay together).
        on_leakage: as in the other loaders.
        encoding: file encoding (strict).

    Returns:
        `TokenData`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ArgumentError("path", path, "must be an existing file")
    if on_long not in ("split", "truncate", "skip", "raise"):
        raise ArgumentError("on_long", on_long, 'must be "split", "truncate", "skip" or "raise"')
    max_tokens = check_int("max_tokens", max_tokens, low=1, allow_none=True)
    check_fractions(validation_split, test_split)
    base = os.path.basename(path)
    summary = DataSummary(source=path)
    sentences = _parse(read_text_file(path, encoding), separator, token_column, tag_column, summary, base)
    summary.scanned = len(sentences)
    kept, names = [], []
    for start, pairs in sentences:
        where = f"{base}:{start}"
        if max_tokens is not None and len(pairs) > max_tokens:
            if on_long == "raise":
                raise DataError(f"Sentence at {where} has {len(pairs)} tokens > max_tokens={max_tokens}")
            if on_long == "skip":
                summary.skipped.append({"path": where, "reason": "too_long", "detail": f"{len(pairs)} tokens"})
                continue
            if on_long == "truncate":
                summary.notes.append(f"truncated sentence at {where} from {len(pairs)} tokens")
                pairs = pairs[:max_tokens]
            else:
                for k in range(0, len(pairs), max_tokens):
                    kept.append(pairs[k:k + max_tokens])
                    names.append(f"{where}#{k // max_tokens}")
                continue
        kept.append(pairs)
        names.append(where)
    if not kept:
        reasons = f"; {len(summary.skipped)} skipped, the first: {summary.skipped[0]['detail']}" if summary.skipped else ""
        raise DataError(f"No sentences found in {path}{reasons}")
    found = {tag for pairs in kept for _, tag in pairs}
    if tag_names is None:
        tag_names = (["O"] if "O" in found else []) + sorted(found - {"O"})
    tag_names = check_unique_names("tag_names", tag_names)
    unknown = sorted(found - set(tag_names))
    if unknown:
        raise DataError(f"Tags {unknown} in {path} are not in tag_names {list(tag_names)}")
    ids = {t: i for i, t in enumerate(tag_names)}
    bio = sum(_bio_errors([t for _, t in pairs]) for pairs in kept)
    if bio:
        summary.notes.append(f"{bio} I- tag(s) do not continue an entity of the same type (BIO violations)")
    x = np.empty(len(kept), dtype=object)
    y = np.empty(len(kept), dtype=object)
    for i, pairs in enumerate(kept):
        x[i] = [tok for tok, _ in pairs]
        y[i] = np.array([ids[t] for _, t in pairs], np.int32)
    keys = [hashlib.sha256("\u241f".join(tokens).encode("utf-8")).hexdigest() for tokens in x]
    # seeded random split of sentences; identical sentences form one group and stay together
    parts = stratified_split(np.zeros(len(kept), np.int64), validation_split=validation_split,
                             test_split=test_split, seed=seed, groups=keys, stratify=False)
    split_of = np.empty(len(kept), dtype=object)
    for s, idx in parts.items():
        split_of[idx] = s
    summary.duplicates, summary.leakage = find_duplicates(keys, list(split_of), names)
    handle_leakage(summary.leakage, on_leakage, summary)
    summary.class_counts = {}
    splits = {}
    for s, idx in parts.items():
        counts = np.bincount(np.concatenate([y[i] for i in idx]) if len(idx) else np.zeros(0, np.int64),
                             minlength=len(tag_names))
        summary.class_counts[s] = {t: int(counts[i]) for i, t in enumerate(tag_names)}
        splits[s] = Split(x[idx], y[idx])
    return TokenData(train=splits["train"], val=splits.get("val"), test=splits.get("test"),
                     tag_names=list(tag_names), summary=summary)
