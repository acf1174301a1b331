#!/usr/bin/env python3
"""A dependency-free WordPiece tokenizer that matches keras-hub's ``BertTokenizer`` token for token.

A tfxfer text model exported to TFLite takes token ids (TFLite cannot hold the tf-text tokenizer
ops), so the tokenizer ships beside it: ``vocab.txt`` plus the sidecar ``<model>.json`` (written
by ``tfxfer.text.export_text_tflite``) and this file. It needs only the Python standard library: no
TensorFlow, no numpy. Copy it next to the model and:

    from wordpiece_tokenizer import WordPieceTokenizer
    tok = WordPieceTokenizer.from_config("model.json")      # the sidecar written beside model.tflite
    batch = tok.pack(["A fine film.", "Dull."])    # token_ids / padding_mask / segment_ids
    # feed batch["token_ids"], ... (as int32 arrays) to the LiteRT interpreter

It reproduces keras-hub's in-graph pipeline (``keras_hub.tokenizers.WordPieceTokenizer`` with
tf-text): spaces around CJK ideographs, optional accent stripping (NFD, drop combining marks),
splitting on ASCII whitespace, control and format characters and punctuation (punctuation and CJK
kept as words; NUL splits like a space, as in the tfxfer model, which replaces it with one before
keras-hub's tokenizer would cut the text there), optional lowercasing by NFKC case folding with
default-ignorable code points dropped, then greedy longest-match-first WordPiece per word, where a word longer than
``max_bytes_per_word`` UTF-8 bytes or with no full segmentation becomes the unknown token.
``pack`` adds ``[CLS]``/``[SEP]``, truncates and pads like keras-hub's ``MultiSegmentPacker``.

Command line (prints JSON):

    python3 wordpiece_tokenizer.py model.json "Some text" "More text"
    python3 wordpiece_tokenizer.py vocab.txt --lowercase "Some text"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata

__all__ = ["WordPieceTokenizer", "casefold", "pretokenize"]

_ASCII_WHITESPACE = frozenset(" \t\n\r\f")
_ASCII_PUNCTUATION = frozenset(
    [chr(c) for c in range(ord("!"), ord("/") + 1)]
    + [chr(c) for c in range(ord(":"), ord("@") + 1)]
    + [chr(c) for c in range(ord("["), ord("`") + 1)]
    + [chr(c) for c in range(ord("{"), ord("~") + 1)]
)
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)
_DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
)


def _in_ranges(char: str, ranges) -> bool:
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_cjk(char: str) -> bool:
    return _in_ranges(char, _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def _is_delimiter(char: str, split_on_cjk: bool) -> bool:
    if char in _ASCII_WHITESPACE or unicodedata.category(char) in ("Cc", "Cf"):
        return True
    return _is_punctuation(char) or (split_on_cjk and _is_cjk(char))


def casefold(text: str) -> str:
    """NFKC case folding (ICU ``NFKC_Casefold``, what tf-text's ``case_fold_utf8`` applies)."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return "".join(c for c in text if not _in_ranges(c, _DEFAULT_IGNORABLE_RANGES))


def pretokenize(text: str, *, lowercase: bool = True, strip_accents: bool = False,
                split_on_cjk: bool = True) -> list[tuple[str, int, int]]:
    """Split ``text`` into words as keras-hub does, with ``(word, start, end)`` offsets into ``text``.

    Offsets index the original string. With accent stripping, a word's offsets span the original
    characters it came from (combining marks removed from the word included).
    """
    chars: list[tuple[str, int]] = []  # (char after accent stripping, index in text)
    for index, char in enumerate(text):
        if strip_accents:
            for part in unicodedata.normalize("NFD", char):
                if unicodedata.category(part) != "Mn":
                    chars.append((part, index))
        else:
            chars.append((char, index))
    words: list[tuple[str, int, int]] = []
    current: list[tuple[str, int]] = []

    def flush():
        if current:
            words.append(("".join(c for c, _ in current), current[0][1], current[-1][1] + 1))
            current.clear()

    for char, index in chars:
        if _is_delimiter(char, split_on_cjk):
            flush()
            if _is_punctuation(char) or (split_on_cjk and _is_cjk(char)):
                words.append((char, index, index + 1))
        else:
            current.append((char, index))
    flush()
    if lowercase:
        words = [(casefold(word), start, end) for word, start, end in words]
    return words


class WordPieceTokenizer:
    """WordPiece tokenization identical to keras-hub's ``BertTokenizer`` / ``WordPieceTokenizer``.

    Args:
        vocabulary: the path of a ``vocab.txt`` (one token per line) or a list of tokens.
        lowercase: NFKC case folding (keras-hub ``lowercase``).
        strip_accents: drop combining marks after NFD (keras-hub ``strip_accents``).
        split_on_cjk: put CJK ideographs in words of their own.
        suffix_indicator: prefix of word-continuation pieces.
        oov_token: the unknown token; must be in the vocabulary.
        max_bytes_per_word: longer words (UTF-8 bytes) become ``oov_token``.
        cls_token, sep_token, pad_token: special tokens used by `pack`.
        sequence_length: default length for `pack`.
    """

    def __init__(self, vocabulary, *, lowercase: bool = True, strip_accents: bool = False,
                 split_on_cjk: bool = True, suffix_indicator: str = "##", oov_token: str = "[UNK]",
                 max_bytes_per_word: int = 100, cls_token: str = "[CLS]", sep_token: str = "[SEP]",
                 pad_token: str = "[PAD]", sequence_length: int | None = None):
        if isinstance(vocabulary, (str, os.PathLike)):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = [line.rstrip() for line in f]
        self.vocabulary = list(vocabulary)
        self.token_to_id = {token: i for i, token in enumerate(self.vocabulary)}
        for name, token in (("oov_token", oov_token), ("cls_token", cls_token), ("sep_token", sep_token),
                            ("pad_token", pad_token)):
            if token not in self.token_to_id:
                raise ValueError(f"`{name}` {token!r} is not in the vocabulary")
        if sequence_length is not None and sequence_length < 2:
            raise ValueError(f"`sequence_length` must be >= 2. Received: sequence_length={sequence_length!r}")
        self.lowercase = bool(lowercase)
        self.strip_accents = bool(strip_accents)
        self.split_on_cjk = bool(split_on_cjk)
        self.suffix_indicator = suffix_indicator
        self.oov_token = oov_token
        self.max_bytes_per_word = int(max_bytes_per_word)
        self.cls_token, self.sep_token, self.pad_token = cls_token, sep_token, pad_token
        self.sequence_length = sequence_length

    @classmethod
    def from_config(cls, path: str) -> "WordPieceTokenizer":
        """Load the sidecar ``<model>.json`` written by tfxfer (its ``tokenizer`` section), or a bare
        tokenizer JSON; ``vocabulary`` is a path relative to the JSON file."""
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        if isinstance(config.get("tokenizer"), dict):
            config = config["tokenizer"]
        elif "tokenizer" in config:
            raise ValueError(f"{path}: the model's tokenizer is not WordPiece; this tokenizer cannot feed it")
        if config.get("type", "wordpiece") != "wordpiece":
            raise ValueError(f"{path}: tokenizer type {config.get('type')!r} is not 'wordpiece'")
        vocab = os.path.join(os.path.dirname(os.path.abspath(path)), config["vocabulary"])
        keys = ("lowercase", "strip_accents", "split_on_cjk", "suffix_indicator", "oov_token",
                "max_bytes_per_word", "cls_token", "sep_token", "pad_token", "sequence_length")
        return cls(vocab, **{k: config[k] for k in keys if k in config})

    def split_word(self, word: str) -> list[str]:
        """Greedy longest-match-first WordPiece of one pre-tokenized word."""
        if not word:
            return []
        if len(word.encode("utf-8")) > self.max_bytes_per_word:
            return [self.oov_token]
        pieces, start = [], 0
        while start < len(word):
            end, piece = len(word), None
            while start < end:
                candidate = word[start:end] if start == 0 else self.suffix_indicator + word[start:end]
                if candidate in self.token_to_id:
                    piece = candidate
                    break
                end -= 1
            if piece is None:
                return [self.oov_token]
            pieces.append(piece)
            start = end
        return pieces

    def words(self, text: str) -> list[tuple[str, int, int]]:
        """Pre-tokenized words of ``text`` with their character offsets."""
        return pretokenize(text, lowercase=self.lowercase, strip_accents=self.strip_accents,
                           split_on_cjk=self.split_on_cjk)

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of ``text`` (no special tokens)."""
        return [piece for word, _, _ in self.words(text) for piece in self.split_word(word)]

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens), as keras-hub's tokenizer returns them."""
        return [self.token_to_id[piece] for piece in self.tokenize(text)]

    def pack(self, texts, sequence_length: int | None = None) -> dict:
        """``[CLS] ids [SEP]`` truncated and padded to ``sequence_length``, for a list of texts.

        Returns:
            ``{"token_ids", "padding_mask", "segment_ids"}``, each a list of int lists.
        """
        length = sequence_length or self.sequence_length
        if length is None or length < 2:
            raise ValueError(f"`sequence_length` must be >= 2. Received: sequence_length={length!r}")
        if isinstance(texts, str):
            texts = [texts]
        cls_id, sep_id, pad_id = (self.token_to_id[t] for t in (self.cls_token, self.sep_token, self.pad_token))
        out = {"token_ids": [], "padding_mask": [], "segment_ids": []}
        for text in texts:
            ids = [cls_id] + self.encode(text)[: length - 2] + [sep_id]
            pad = length - len(ids)
            out["token_ids"].append(ids + [pad_id] * pad)
            out["padding_mask"].append([1] * len(ids) + [0] * pad)
            out["segment_ids"].append([0] * length)
        return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the <model>.json sidecar written by tfxfer, or a vocab.txt")
    parser.add_argument("texts", nargs="+")
    parser.add_argument("--lowercase", action="store_true", help="with a vocab.txt: lowercase")
    parser.add_argument("--strip-accents", action="store_true", help="with a vocab.txt: strip accents")
    parser.add_argument("--sequence-length", type=int, default=None, help="pack to this length")
    args = parser.parse_args(argv)
    try:
        for i, text in enumerate(args.texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a non-UTF-8 argument byte: Python makes it a lone surrogate
                raise ValueError(f"texts[{i}] is not UTF-8 text") from None
        if args.config.endswith(".json"):
            tok = WordPieceTokenizer.from_config(args.config)
        else:
            tok = WordPieceTokenizer(args.config, lowercase=args.lowercase, strip_accents=args.strip_accents)
        length = args.sequence_length or tok.sequence_length
        if length:
            result = tok.pack(args.texts, length)
        else:
            result = {"tokens": [tok.tokenize(t) for t in args.texts],
                      "token_ids": [tok.encode(t) for t in args.texts]}
    except Exception as exc:  # a missing or damaged file, a bad text or length: one line, never a traceback
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"wordpiece_tokenizer.py: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
