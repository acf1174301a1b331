"""Word <-> sub-token alignment for token classification.

Encoders see word pieces; labels and predictions live on words. `encode_words` tokenizes each
word with the model's own tokenizer, packs ``[CLS] pieces [SEP]`` and records which word each
position came from. Labels go to the first piece of each word (``strategy="first"``; the other
pieces are masked out of the loss) or to every piece (``"all"``; a ``B-``/``S-`` word's later
pieces become ``I-``/``E-`` so the piece sequence stays valid). `word_predictions` maps
piece-level tags back to words so that labels -> pieces -> words returns the original labels.
A word the tokenizer turns into no piece at all (a zero-width space, a BOM, a lone variation
selector) is given the unknown token, so it keeps its position and its tag in training and prediction.

Example:
    >>> from tfxfer.text.alignment import split_words
    >>> split_words("Zoë's café, Paris!")
    [('Zoë', 0, 3), ("'", 3, 4), ('s', 4, 5), ('café', 6, 10), (',', 10, 11), ('Paris', 12, 17), ('!', 17, 18)]
"""

from __future__ import annotations

import dataclasses
import unicodedata

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.text.layers import replace_nul
from tfxfer.text.tagging import parse_tag

STRATEGIES = ("first", "all")
_CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_PUNCT = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _separate(char: str) -> bool:
    cp = ord(char)
    return char in _PUNCT or unicodedata.category(char).startswith("P") or any(lo <= cp <= hi for lo, hi in _CJK)


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Words of raw ``text`` with character offsets: split on whitespace, control and format
    characters; punctuation and CJK ideographs are words of their own (as BERT tokenizers split)."""
    if not isinstance(text, str):
        raise ArgumentTypeError("text", text, "a str")
    words, start = [], None
    for i, char in enumerate(text):
        space = char.isspace() or unicodedata.category(char) in ("Cc", "Cf")
        if space or _separate(char):
            if start is not None:
                words.append((text[start:i], start, i))
                start = None
            if not space:
                words.append((char, i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        words.append((text[start:], start, len(text)))
    return words


@dataclasses.dataclass
class EncodedWords:
    """Packed token tensors for a batch of word lists.

    Attributes:
        inputs: ``{"token_ids", "padding_mask", "segment_ids"}`` int32 ``[n, sequence_length]``.
        word_ids: int32 ``[n, sequence_length]``: the word index of each position, -1 for special
            tokens and padding.
        labels: int32 ``[n, sequence_length]`` tag ids per position (0 where unlabelled), or None.
        weights: float32 ``[n, sequence_length]``: 1 where a position carries a label, or None.
        truncated_words: how many words did not fit in ``sequence_length`` (they get no prediction).
        empty_words: how many words the tokenizer turns into no piece; each stands as the unknown
            token (a tokenizer without one: no position, tagged "O" at prediction, as a truncated word).
    """

    inputs: dict
    word_ids: np.ndarray
    labels: np.ndarray | None
    weights: np.ndarray | None
    truncated_words: int
    empty_words: int = 0


def _piece_tag(tag: str, position: int, count: int, scheme: str) -> str:
    """The tag of piece ``position`` (of ``count``) of a word tagged ``tag`` under "all"."""
    prefix, kind = parse_tag(tag)
    if prefix == "O" or count == 1:
        return tag
    first, last = position == 0, position == count - 1
    if scheme == "BIOES":
        table = {"B": "B" if first else "I", "I": "I", "E": "E" if last else "I",
                 "S": "B" if first else ("E" if last else "I")}
        return f"{table[prefix]}-{kind}"
    return tag if first or prefix != "B" else f"I-{kind}"


def align_labels(tags, piece_counts, *, strategy: str = "first", scheme: str = "BIO") -> list:
    """Piece-level tags for one word sequence: ``None`` marks pieces without a label ("first")."""
    if strategy not in STRATEGIES:
        raise ArgumentError("strategy", strategy, "must be one of " + ", ".join(STRATEGIES))
    if len(tags) != len(piece_counts):
        raise DataError(f"{len(tags)} tags for {len(piece_counts)} words")
    out = []
    for tag, count in zip(tags, piece_counts):
        for p in range(count):
            if strategy == "first":
                out.append(tag if p == 0 else None)
            else:
                out.append(_piece_tag(tag, p, count, scheme))
    return out


def _word_pieces(tokenizer, words: list[str]) -> list[list[int]]:
    """Token ids of each word, tokenized in graph exactly as the in-model tokenizer does."""
    import tensorflow as tf

    if not words:
        return []
    function = tokenizer.__dict__.get("_tfxfer_traced_words")
    if function is None:  # traced once per tokenizer; set untracked (not a Keras attribute)
        function = tf.function(lambda x: tokenizer(replace_nul(x)),  # as the in-model tokenizer: NUL is a space
                               input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        object.__setattr__(tokenizer, "_tfxfer_traced_words", function)
    ragged = function(tf.constant(words, dtype=tf.string))
    return [list(map(int, ids)) for ids in ragged.to_list()]


def _unknown_id(tokenizer):
    """The id of the tokenizer's unknown token (WordPiece ``oov_token``), or None when it has none."""
    token = getattr(tokenizer, "oov_token", None)
    return None if token is None else int(tokenizer.token_to_id(token))


def words_with_pieces(tokenizer, words, tags=None):
    """``(words, tags)`` without the words ``tokenizer`` turns into no piece: what the in-model tokenizer
    keeps of the joined text (`tfxfer.export.word_tag_labels` places tags on those positions).

    Example:
        >>> from tfxfer.text import build_bert_encoder
        >>> encoder = build_bert_encoder(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "zoe", "anna"], num_layers=1,
        ...                              hidden_dim=8, intermediate_dim=8, num_heads=2, sequence_length=8)
        >>> words_with_pieces(encoder.tokenizer, [["zoe", "\u200b", "anna"]], [["B-PER", "I-PER", "B-PER"]])
        ([['zoe', 'anna']], [['B-PER', 'B-PER']])
    """
    words = check_word_lists(words)
    pieces = iter(_word_pieces(tokenizer, [w for sentence in words for w in sentence]))
    keep = [[bool(next(pieces)) for _ in sentence] for sentence in words]
    kept = [[w for w, k in zip(sentence, row) if k] for sentence, row in zip(words, keep)]
    if tags is None:
        return kept, None
    if len(tags) != len(words):
        raise DataError(f"{len(words)} word lists but {len(tags)} tag lists")
    kept_tags = []
    for row, (sentence_tags, flags) in enumerate(zip(tags, keep)):
        sentence_tags = list(sentence_tags)
        if len(sentence_tags) != len(flags):
            raise DataError(f"example {row}: {len(flags)} words but {len(sentence_tags)} tags")
        kept_tags.append([t for t, k in zip(sentence_tags, flags) if k])
    return kept, kept_tags


def check_word_lists(words, *, name: str = "words") -> list[list[str]]:
    """``words`` as a list of word lists (lists of str), else a typed error naming ``words[i]`` or
    ``words[i][j]``: a sentence given as one string would otherwise be split into characters.

    Example:
        >>> check_word_lists([("zoe", "visits")])
        [['zoe', 'visits']]
        >>> check_word_lists(["zoe visits"])
        Traceback (most recent call last):
        ...
        tfxfer.errors.ArgumentTypeError: `words[0]` must be a list of words (split a sentence first, ...
    """
    if isinstance(words, (str, bytes)) or not hasattr(words, "__iter__"):
        raise ArgumentTypeError(name, words, "a list of word lists")
    out = []
    for i, sentence in enumerate(words):
        if isinstance(sentence, (str, bytes)) or not isinstance(sentence, (list, tuple, np.ndarray)):
            raise ArgumentTypeError(f"{name}[{i}]", sentence, "a list of words (split a sentence first, e.g. "
                                    "str.split(), or use predict_entities on raw text)")
        sentence = list(sentence)
        for j, word in enumerate(sentence):
            if not isinstance(word, str):
                raise ArgumentTypeError(f"{name}[{i}][{j}]", word, "a str (one word)")
            if not word.isascii():
                try:
                    word.encode("utf-8")
                except UnicodeEncodeError:
                    raise ArgumentError(f"{name}[{i}][{j}]", word, "must be encodable as UTF-8 (it holds a lone "
                                        "surrogate)") from None
        out.append([str(w) for w in sentence])
    return out


def _tag_names_of(sentence_tags, row: int, tag_names) -> list[str]:
    """Tag names of one sentence's tags (names, or integer ids into ``tag_names``)."""
    if isinstance(sentence_tags, (str, bytes)) or not isinstance(sentence_tags, (list, tuple, np.ndarray)):
        raise ArgumentTypeError(f"tags[{row}]", sentence_tags, "a list of tags (one per word)")
    out, k = [], len(tag_names)
    for j, tag in enumerate(sentence_tags):
        if isinstance(tag, str):
            out.append(str(tag))
            continue
        if isinstance(tag, (bool, np.bool_)) or not isinstance(tag, (int, float, np.integer, np.floating)):
            raise ArgumentTypeError(f"tags[{row}][{j}]", tag, f"a tag name or an int tag id in [0, {k - 1}]")
        if not (np.isfinite(tag) and float(tag).is_integer() and 0 <= tag < k):
            raise ArgumentError(f"tags[{row}][{j}]", tag, f"must be a tag name or an int tag id in [0, {k - 1}] "
                                f"(sentence {row}, word {j})")
        out.append(tag_names[int(tag)])
    return out


def encode_words(tokenizer, words, tags=None, *, tag_names=None, sequence_length: int,
                 strategy: str = "first", scheme: str = "BIO") -> EncodedWords:
    """Tokenize and pack word lists for a token classifier, aligning tags when given.

    Args:
        tokenizer: the keras-hub tokenizer of the model (``encoder.tokenizer``).
        words: a list of word lists.
        tags: optional per-word tags (strings, or ids into ``tag_names``) of the same shape.
        tag_names: tag id -> name; required with ``tags``.
        sequence_length: positions per example, [CLS] and [SEP] included.
        strategy: "first" (label the first piece of each word) or "all" (every piece).
        scheme: "BIO" or "BIOES" (how "all" continues a word's tag).
    """
    if strategy not in STRATEGIES:
        raise ArgumentError("strategy", strategy, "must be one of " + ", ".join(STRATEGIES))
    if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) or sequence_length < 3:
        raise ArgumentError("sequence_length", sequence_length, "must be an int >= 3")
    words = check_word_lists(words)
    if tags is not None:
        if tag_names is None:
            raise ArgumentError("tag_names", None, "is required when `tags` are given")
        if len(tags) != len(words):
            raise DataError(f"{len(words)} word lists but {len(tags)} tag lists")
        index = {name: i for i, name in enumerate(tag_names)}
    flat = [w for sentence in words for w in sentence]
    pieces = _word_pieces(tokenizer, flat)
    empty = sum(1 for p in pieces if not p)
    unknown = _unknown_id(tokenizer) if empty else None
    if unknown is not None:  # a word of no piece keeps its position and tag as the unknown token
        pieces = [p or [unknown] for p in pieces]
    start_id, end_id, pad_id = (int(getattr(tokenizer, a)) for a in ("start_token_id", "end_token_id", "pad_token_id"))
    n, length = len(words), sequence_length
    token_ids = np.full((n, length), pad_id, dtype=np.int32)
    mask = np.zeros((n, length), dtype=np.int32)
    word_ids = np.full((n, length), -1, dtype=np.int32)
    labels = np.zeros((n, length), dtype=np.int32) if tags is not None else None
    weights = np.zeros((n, length), dtype=np.float32) if tags is not None else None
    truncated, cursor = 0, 0
    for row, sentence in enumerate(words):
        word_pieces = pieces[cursor: cursor + len(sentence)]
        cursor += len(sentence)
        ids, owners = [start_id], [-1]
        kept = 0
        for w, piece_ids in enumerate(word_pieces):
            if len(ids) + len(piece_ids) > length - 1:
                break
            ids += piece_ids
            owners += [w] * len(piece_ids)
            kept = w + 1
        truncated += len(sentence) - kept
        ids.append(end_id)
        owners.append(-1)
        token_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
        word_ids[row, : len(owners)] = owners
        if tags is not None:
            sentence_tags = _tag_names_of(tags[row], row, tag_names)
            if len(sentence_tags) != len(sentence):
                raise DataError(f"example {row}: {len(sentence)} words but {len(sentence_tags)} tags")
            counts = [len(p) for p in word_pieces[:kept]]
            aligned = align_labels(sentence_tags[:kept], counts, strategy=strategy, scheme=scheme)
            for position, tag in enumerate(aligned, start=1):
                if tag is None:
                    continue
                if tag not in index:
                    raise DataError(f"example {row}: tag {tag!r} is not in tag_names")
                labels[row, position] = index[tag]
                weights[row, position] = 1.0
    inputs = {"token_ids": token_ids, "padding_mask": mask, "segment_ids": np.zeros_like(token_ids)}
    return EncodedWords(inputs=inputs, word_ids=word_ids, labels=labels, weights=weights, truncated_words=truncated,
                        empty_words=empty)


def word_predictions(piece_probs, word_ids, num_words: int, *, tag_names, strategy: str = "first",
                     scheme: str = "BIO"):
    """Per-word tag probabilities ``[num_words, tags]`` from piece probabilities of one example.

    "first" takes each word's first piece. "all" averages the word's pieces after mapping each
    piece distribution onto the tag the word would have (a ``B``/``I``/``E`` piece sequence of one
    type folds back into the word's ``B``/``I``/``E``/``S`` tag). Words without pieces (truncated)
    get all mass on "O" (or the first tag when there is no "O").
    """
    if strategy not in STRATEGIES:
        raise ArgumentError("strategy", strategy, "must be one of " + ", ".join(STRATEGIES))
    piece_probs = np.asarray(piece_probs, dtype=np.float32)
    word_ids = np.asarray(word_ids)
    num_tags = piece_probs.shape[-1]
    out = np.zeros((num_words, num_tags), dtype=np.float32)
    outside = list(tag_names).index("O") if "O" in tag_names else 0
    out[:, outside] = 1.0
    index = {name: i for i, name in enumerate(tag_names)}
    for w in range(num_words):
        positions = np.flatnonzero(word_ids == w)
        if positions.size == 0:
            continue
        if strategy == "first" or positions.size == 1:
            out[w] = piece_probs[positions[0]]
            continue
        first_tags = piece_probs[positions[0]]
        last_tags = piece_probs[positions[-1]]
        folded = np.zeros(num_tags, dtype=np.float32)
        for t, name in enumerate(tag_names):
            prefix, kind = parse_tag(name)
            if prefix == "O":
                folded[t] += piece_probs[positions, t].mean()
                continue
            # word tag t: its first piece carries first(prefix), its last piece last(prefix)
            first_prefix = "B" if prefix in ("B", "S") else "I"
            last_prefix = "E" if (scheme == "BIOES" and prefix in ("E", "S")) else "I"
            start_tag, end_tag = f"{first_prefix}-{kind}", f"{last_prefix}-{kind}"
            if start_tag in index and end_tag in index:
                folded[t] = 0.5 * (first_tags[index[start_tag]] + last_tags[index[end_tag]])
        total = folded.sum()
        out[w] = folded / total if total > 0 else piece_probs[positions[0]]
    return out
