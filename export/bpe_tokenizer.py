#!/usr/bin/env python3
"""A dependency-free byte-level BPE tokenizer that matches keras-hub's ``BytePairTokenizer`` id for id.

RoBERTa (and GPT-2 style) models exported to TFLite by ``tfxfer.text.export_text_tflite`` take
token ids, so the tokenizer ships beside them: ``vocab.json`` (token -> id), ``merges.txt`` (one
merge rule per line, best first) and the sidecar ``<model>.json``. This file needs only the Python
standard library: no TensorFlow, no numpy, no ``regex``. Copy it next to the model and:

    from bpe_tokenizer import BytePairTokenizer
    tok = BytePairTokenizer.from_config("model.json")    # the sidecar written beside model.tflite
    batch = tok.pack(["A fine film.", "Dull."])          # token_ids / padding_mask
    # feed batch["token_ids"], batch["padding_mask"] (as int32 arrays) to the LiteRT interpreter

It reproduces keras-hub's in-graph (tf-text) path, the one a tfxfer model and its SavedModel run:

1. optional prefix space (``add_prefix_space``);
2. a marker ``६`` is put before every space that precedes a non-whitespace character, which
   emulates GPT-2's ``\\s+(?!\\S)`` look-ahead (RE2 has none);
3. special tokens (``unsplittable_tokens``, e.g. ``<s>``) are cut out whole;
4. pre-tokenization with keras-hub's pattern ``'s|'t|'re|'ve|'m|'ll|'d|[\\s·]+[\\n\\r\\t\\f६·]|
   ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}·]+`` (· = the special spaces U+00A0, U+2009, U+202F,
   U+3000), then a final whitespace character or marker split off each piece, and marker pieces
   dropped;
5. each piece's UTF-8 bytes are mapped to printable characters (GPT-2's byte-to-unicode table,
   so a space is ``Ġ``) and merged by BPE: repeatedly the left-most adjacent pair with the best
   (lowest) rank in ``merges.txt`` is merged, one occurrence per step, as keras-hub does;
6. pieces are looked up in ``vocab.json``; a piece missing from it gets id -1, as in keras-hub
   (a real RoBERTa vocabulary holds all 256 byte characters, so this never happens there).

Python's ``re`` has no ``\\p{L}`` / ``\\p{N}``, so the pattern is matched by a small hand-written
scanner in which letters are the Unicode categories L* (Lu, Ll, Lt, Lm, Lo) and numbers N* (Nd,
Nl, No) of ``unicodedata``; ``\\s`` is RE2's ASCII ``[\\t\\n\\f\\r ]`` (no ``\\v``). Characters newer
than Python's Unicode database (or RE2's) may be classified differently; everything else is
matched exactly, alternatives tried in order as RE2 does.

``pack`` adds ``<s>`` / ``</s>``, truncates and pads like keras-hub's ``MultiSegmentPacker`` for a
single segment (RoBERTa's text-classifier preprocessor).

``pre_tokenizer="gpt-2"`` / ``"smollm"`` instead reproduce Hugging Face ``tokenizers``' byte-level
pre-tokenizer exactly (the causal language models of ``tfxfer.causal_lm`` were trained with it; it
differs from keras-hub's on runs of whitespace): special tokens are cut out whole (left-most,
longest first), then GPT-2's pattern ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+|
?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`` (``\\s``: Unicode White_Space) with its look-ahead written
out; ``"smollm"`` first isolates every number character (``\\p{N}``), as SmolLM2's ``Digits``
pre-tokenizer does. `BytePairTokenizer.from_causal_lm` reads the tokenizer JSON that
``tfxfer.causal_lm.BPETokenizer.save`` writes; ``decode`` turns ids back into text. With these two,
``encode`` refuses (``ValueError`` naming the text, the character and its index) what
``BPETokenizer.encode`` refuses: a character whose UTF-8 bytes the vocabulary has no token for
(SmolLM2 lacks a few, such as ``"\\x14"``; there is no id -1), and in every mode a lone surrogate
(``"\\udcff"``, what Python makes of a command-line argument that is not UTF-8).

Command line (prints JSON):

    python3 bpe_tokenizer.py model.json "Some text" "More text"
    python3 bpe_tokenizer.py vocab.json merges.txt "Some text"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import unicodedata

__all__ = ["BytePairTokenizer", "bytes_to_unicode", "split_words", "split_words_gpt2"]

_MARK = "\u096c"  # "६", DEVANAGARI DIGIT SIX, keras-hub's look-ahead marker (a \p{N} character)
_SPECIAL_SPACES = frozenset("\u00a0\u2009\u202f\u3000")
_RE2_SPACE = frozenset("\t\n\f\r ")  # RE2's \s: ASCII only, no \v
_WS = _RE2_SPACE | _SPECIAL_SPACES  # [\s{special_spaces}]
_WS_END = frozenset("\n\r\t\f") | {_MARK} | _SPECIAL_SPACES  # [\n\r\t\f६{special_spaces}]
_TRAILING = frozenset(" \t\r\f\v") | {_MARK} | _SPECIAL_SPACES  # SPLIT_PATTERN_2's class
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")  # in keras-hub's order
#: Unicode White_Space (the \s of Hugging Face tokenizers' regex engine)
_WHITE_SPACE = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
                         + "".join(chr(c) for c in range(0x2000, 0x200B)))
PRE_TOKENIZERS = ("keras-hub", "gpt-2", "smollm")


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (keras-hub's ``bytes_to_unicode``)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def _is_letter(char: str) -> bool:
    return unicodedata.category(char)[0] == "L"


def _is_number(char: str) -> bool:
    return unicodedata.category(char)[0] == "N"


def _is_other(char: str) -> bool:  # [^\s\p{L}\p{N}{special_spaces}]
    return char not in _WS and unicodedata.category(char)[0] not in "LN"


def _match_at(text: str, i: int) -> int:
    """End of keras-hub's SPLIT_PATTERN_1 match starting at ``i`` (leftmost-first), or -1."""
    n = len(text)
    char = text[i]
    if char == "'":
        for c in _CONTRACTIONS:
            if text.startswith(c, i):
                return i + len(c)
    if char in _WS:  # [ws]+[ws_end], greedy with backtracking
        j = i
        while j < n and text[j] in _WS:
            j += 1
        if j < n and text[j] in _WS_END:
            return j + 1
        for k in range(j - 1, i, -1):
            if text[k] in _WS_END:
                return k + 1
    start = i + 1 if char == " " else i  # the optional leading space (a space is none of the classes)
    for test in (_is_letter, _is_number, _is_other):  # " ?\p{L}+", " ?\p{N}+", " ?[^...]+"
        j = start
        while j < n and test(text[j]):
            j += 1
        if j > start:
            return j
    return -1


def _split_pattern_1(text: str) -> list[str]:
    """``tf_text.regex_split(text, P1, P1)``: matches and the unmatched text between them, no empties."""
    pieces, i, gap = [], 0, 0
    while i < len(text):
        end = _match_at(text, i)
        if end < 0:
            i += 1
            continue
        if gap < i:
            pieces.append(text[gap:i])
        pieces.append(text[i:end])
        i = gap = end
    if gap < len(text):
        pieces.append(text[gap:])
    return pieces


def split_words(text: str, *, unsplittable_tokens=(), add_prefix_space: bool = False) -> list[str]:
    """keras-hub's pre-tokenization of ``text`` into the words BPE then merges (see the module doc)."""
    if add_prefix_space:
        text = " " + text
    out = []
    for i, char in enumerate(text):  # ( )([^\s{special}]) -> ६\1\2
        if char == " " and i + 1 < len(text) and text[i + 1] not in _WS:
            out.append(_MARK)
        out.append(char)
    text = "".join(out)
    # (\s{special})$ -> \1६ : keras-hub's pattern is a sequence, not a class; kept as it behaves
    tail = "\u00a0\u2009\u202f\u3000"
    if text.endswith(tail) and len(text) > len(tail) and text[-len(tail) - 1] in _RE2_SPACE:
        text += _MARK
    pieces = [text] if text else []
    alts = []
    for index, token in enumerate(unsplittable_tokens):
        alt = "Ĵ" + "".join(chr(ord("A") + int(d)) for d in str(index))
        alts.append(alt)
        cut = []
        for piece in pieces:
            parts = piece.split(token)
            for k, part in enumerate(parts):
                if part:
                    cut.append(part)
                if k < len(parts) - 1:
                    cut.append(token)
        pieces = [p.replace(token, alt) for p in cut]
    words = []
    for piece in pieces:
        for word in _split_pattern_1(piece):
            if word[-1] in _TRAILING and len(word) > 1:
                words += [word[:-1], word[-1]]
            else:
                words.append(word)
    for token, alt in zip(unsplittable_tokens, alts):
        words = [w.replace(alt, token) for w in words]
    return [w for w in words if w != _MARK]


def _gpt2_match_at(text: str, i: int) -> int:
    """End of GPT-2's pattern's match at ``i`` (alternatives in order, as Hugging Face tokenizers)."""
    n = len(text)
    char = text[i]
    if char == "'":
        for c in _CONTRACTIONS:
            if text.startswith(c, i):
                return i + len(c)
    start = i + 1 if char == " " and i + 1 < n else i
    for test in (_is_letter, _is_number, lambda c: c not in _WHITE_SPACE and unicodedata.category(c)[0] not in "LN"):
        j = start
        while j < n and test(text[j]):
            j += 1
        if j > start:
            return j
    if char in _WHITE_SPACE:
        j = i
        while j < n and text[j] in _WHITE_SPACE:
            j += 1
        if j == n or j - 1 == i:  # \s+(?!\S) takes the whole run at the end; else \s+ takes one
            return j
        return j - 1  # \s+(?!\S): leave the last space to the word after it
    return i + 1  # unreachable: every character is in one class; kept total


def split_words_gpt2(text: str, *, special_tokens=(), isolate_numbers: bool = False) -> list[str]:
    """Hugging Face's byte-level pre-tokenization of ``text`` (see the module doc): special tokens
    whole, then (``isolate_numbers``: each number character alone, then) GPT-2's pattern."""
    segments, i, gap = [], 0, 0
    specials = sorted(set(special_tokens), key=len, reverse=True)
    while specials and i < len(text):
        hit = next((t for t in specials if text.startswith(t, i)), None)
        if hit is None:
            i += 1
            continue
        if gap < i:
            segments.append((text[gap:i], False))
        segments.append((hit, True))
        i = gap = i + len(hit)
    if gap < len(text):
        segments.append((text[gap:], False))
    words = []
    for segment, special in segments:
        if special:
            words.append(segment)
            continue
        parts = [segment]
        if isolate_numbers:
            parts, current = [], ""
            for char in segment:
                if _is_number(char):
                    parts += [current, char] if current else [char]
                    current = ""
                else:
                    current += char
            if current:
                parts.append(current)
        for part in parts:
            k = 0
            while k < len(part):
                end = _gpt2_match_at(part, k)
                words.append(part[k:end])
                k = end
    return words


class BytePairTokenizer:
    """Byte-level BPE identical to keras-hub's ``BytePairTokenizer`` / ``RobertaTokenizer`` (in-graph path).

    Args:
        vocabulary: the path of a ``vocab.json`` (token -> id) or that dict.
        merges: the path of a ``merges.txt`` (one ``"a b"`` rule per line) or a list of rules.
        unsplittable_tokens: tokens never split (keras-hub default: the special tokens).
        add_prefix_space: put a space before each text (keras-hub ``add_prefix_space``).
        start_token, end_token, pad_token: special tokens `pack` adds (None: `pack` is not used).
        sequence_length: default length for `pack`.
        pre_tokenizer: "keras-hub" (keras-hub's in-graph splitting, the default), "gpt-2" or
            "smollm" (Hugging Face's byte-level pre-tokenizer exactly; see the module doc).
    """

    def __init__(self, vocabulary, merges, *, unsplittable_tokens=None, add_prefix_space: bool = False,
                 start_token: str | None = "<s>", end_token: str | None = "</s>", pad_token: str | None = "<pad>",
                 sequence_length: int | None = None, pre_tokenizer: str = "keras-hub"):
        if pre_tokenizer not in PRE_TOKENIZERS:
            raise ValueError(f"`pre_tokenizer` must be one of {PRE_TOKENIZERS}. Received: {pre_tokenizer!r}")
        if isinstance(vocabulary, (str, os.PathLike)):
            with open(vocabulary, encoding="utf-8") as f:
                vocabulary = json.load(f)
        if isinstance(merges, (str, os.PathLike)):
            with open(merges, encoding="utf-8") as f:
                merges = [line.rstrip() for line in f]
        if not isinstance(vocabulary, dict):
            raise ValueError(f"`vocabulary` must map tokens to ids. Received: {type(vocabulary).__name__}")
        self.vocabulary = {str(k): int(v) for k, v in vocabulary.items()}
        self.merges = list(merges)
        self.ranks = {}
        for rank, merge in enumerate(self.merges):
            if "#version:" not in merge.lstrip():
                parts = merge.split(" ")
                if len(parts) != 2 or parts[0] not in self.vocabulary or parts[1] not in self.vocabulary:
                    raise ValueError(f"Merge rule {merge!r} must be two vocabulary tokens separated by a space")
            self.ranks.setdefault(merge, rank)
        for name, token in (("start_token", start_token), ("end_token", end_token), ("pad_token", pad_token)):
            if token is not None and token not in self.vocabulary:
                raise ValueError(f"`{name}` {token!r} is not in the vocabulary")
        if sequence_length is not None and sequence_length < 2:
            raise ValueError(f"`sequence_length` must be >= 2. Received: sequence_length={sequence_length!r}")
        if unsplittable_tokens is None:
            unsplittable_tokens = [t for t in (start_token, end_token, pad_token) if t is not None]
        self.unsplittable_tokens = list(unsplittable_tokens)
        self.pre_tokenizer = pre_tokenizer
        self.add_prefix_space = bool(add_prefix_space)
        self.start_token, self.end_token, self.pad_token = start_token, end_token, pad_token
        self.sequence_length = sequence_length
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {c: b for b, c in self.byte_encoder.items()}
        self._cache = {t: [t] for t in self.unsplittable_tokens}
        self._tokens = {i: t for t, i in self.vocabulary.items()}

    @classmethod
    def from_config(cls, path: str) -> "BytePairTokenizer":
        """Load the sidecar ``<model>.json`` written by tfxfer (its ``tokenizer`` section), or a bare
        tokenizer JSON; ``vocabulary`` and ``merges`` are paths relative to the JSON file."""
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        if isinstance(config.get("tokenizer"), dict):
            config = config["tokenizer"]
        elif "tokenizer" in config:
            raise ValueError(f"{path}: the model ships no tokenizer (its sidecar says why); "
                             "this BPE tokenizer cannot feed it")
        if config.get("type") != "bpe":
            raise ValueError(f"{path}: tokenizer type {config.get('type')!r} is not 'bpe'")
        folder = os.path.dirname(os.path.abspath(path))
        keys = ("unsplittable_tokens", "add_prefix_space", "start_token", "end_token", "pad_token",
                "sequence_length")
        return cls(os.path.join(folder, config["vocabulary"]), os.path.join(folder, config["merges"]),
                   **{k: config[k] for k in keys if k in config})

    @classmethod
    def from_causal_lm(cls, path: str) -> "BytePairTokenizer":
        """The tokenizer JSON ``tfxfer.causal_lm.BPETokenizer.save`` writes (``tokens`` in id order,
        ``merges``, ``pre``, ``special_tokens``), with Hugging Face's pre-tokenizer."""
        config = _read_json(path, "causal LM tokenizer")
        if (not isinstance(config, dict) or not isinstance(config.get("tokens"), list)
                or config.get("pre") not in PRE_TOKENIZERS[1:]):
            raise ValueError(f"{path}: not a causal LM tokenizer (needs a JSON object with `tokens` and `pre` in "
                             f"{PRE_TOKENIZERS[1:]})")
        for key in ("tokens", "merges", "special_tokens"):
            value = config.get(key, [] if key == "special_tokens" else None)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{path}: `{key}` must be a list of strings. Received: {str(value)[:60]}")
        return cls({t: i for i, t in enumerate(config["tokens"])}, config["merges"],
                   unsplittable_tokens=config.get("special_tokens", []), start_token=None, end_token=None,
                   pad_token=None, pre_tokenizer=config["pre"])

    def bpe(self, word: str) -> list[str]:
        """BPE pieces of one pre-tokenized word (keras-hub: best-ranked left-most pair, one per step)."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        parts = [self.byte_encoder[b] for b in word.encode("utf-8")]
        while len(parts) > 1:
            best, where = None, -1
            for k in range(len(parts) - 1):
                rank = self.ranks.get(parts[k] + " " + parts[k + 1])
                if rank is not None and (best is None or rank < best):
                    best, where = rank, k
            if best is None:
                break
            parts[where: where + 2] = [parts[where] + parts[where + 1]]
        if len(self._cache) < 100_000:
            self._cache[word] = parts
        return parts

    def tokenize(self, text: str) -> list[str]:
        """BPE tokens of ``text`` (byte-level strings, no start/end tokens)."""
        if self.pre_tokenizer == "keras-hub":
            # the model reads NUL as a space (keras-hub cut the string there in graph mode), so this does too
            words = split_words(text.replace("\x00", " "), unsplittable_tokens=self.unsplittable_tokens,
                                add_prefix_space=self.add_prefix_space)
        else:
            words = split_words_gpt2((" " if self.add_prefix_space else "") + text,
                                     special_tokens=self.unsplittable_tokens,
                                     isolate_numbers=self.pre_tokenizer == "smollm")
        return [piece for word in words for piece in self.bpe(word)]

    def check_text(self, text: str, name: str = "text") -> str:
        """``text`` if `encode` can tokenize it, else a ``ValueError`` naming ``name``: a lone surrogate
        (not UTF-8) in every mode and, with a causal LM's pre-tokenizer, a character whose UTF-8 bytes
        the vocabulary has no token for (as ``tfxfer.causal_lm.BPETokenizer`` refuses it).

        Example:
            >>> tok = BytePairTokenizer({"a": 0, "b": 1}, [], start_token=None, end_token=None,
            ...                         pad_token=None, pre_tokenizer="gpt-2")
            >>> tok.check_text("ab")
            'ab'
            >>> tok.check_text("a\\x14b", "prompts[0]")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ValueError: `prompts[0]` holds '\\x14' at index 1, whose UTF-8 bytes this vocabulary has no token ...
        """
        if not isinstance(text, str):
            raise TypeError(f"`{name}` must be a str. Received: {name}={text!r} (of type {type(text).__name__})")
        shown = text if len(text) <= 200 else text[:200] + "..."
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"`{name}` must be valid Unicode text (UTF-8); it holds a lone surrogate "
                             f"{text[exc.start]!r} at index {exc.start} (a command-line argument that is not "
                             f"UTF-8 reads so). Received: {name}={shown!r}") from None
        if self.pre_tokenizer != "keras-hub":
            absent = self._absent_bytes()
            for i, char in enumerate(text):
                if absent and any(b in absent for b in char.encode("utf-8")):
                    raise ValueError(f"`{name}` holds {char!r} at index {i}, whose UTF-8 bytes this vocabulary "
                                     f"has no token for. Received: {name}={shown!r}")
        return text

    def _absent_bytes(self) -> frozenset:
        if not hasattr(self, "_absent"):
            self._absent = frozenset(b for b, c in self.byte_encoder.items() if c not in self.vocabulary)
        return self._absent

    def encode(self, text: str, *, name: str = "text") -> list[int]:
        """Token ids of ``text`` (no start/end tokens) as keras-hub returns them (-1: not in vocabulary,
        keras-hub mode only); a text `check_text` refuses is a ``ValueError`` naming ``name``."""
        self.check_text(text, name)
        return [self.vocabulary.get(piece, -1) for piece in self.tokenize(text)]

    def decode(self, ids) -> str:
        """Text of ``ids``: byte characters back to bytes (special tokens as written), decoded as
        UTF-8 (an incomplete character becomes U+FFFD)."""
        special = set(self.unsplittable_tokens)
        data = bytearray()
        for i in ids:
            token = self._tokens.get(int(i))
            if token is None:
                raise ValueError(f"`ids` must be ids of the vocabulary. Received: {i!r}")
            if token in special:
                data += token.encode("utf-8")
            else:
                data += bytes(self.byte_decoder[c] for c in token)
        return data.decode("utf-8", errors="replace")

    def pack(self, texts, sequence_length: int | None = None) -> dict:
        """``<s> ids </s>`` truncated and padded to ``sequence_length``, for a list of texts.

        Returns:
            ``{"token_ids", "padding_mask"}``, each a list of int lists.
        """
        length = sequence_length or self.sequence_length
        if length is None or length < 2:
            raise ValueError(f"`sequence_length` must be >= 2. Received: sequence_length={length!r}")
        if isinstance(texts, str):
            texts = [texts]
        if None in (self.start_token, self.end_token, self.pad_token):
            raise ValueError("`pack` needs start, end and pad tokens; this tokenizer has none")
        start, end, pad = (self.vocabulary[t] for t in (self.start_token, self.end_token, self.pad_token))
        out = {"token_ids": [], "padding_mask": []}
        for text in texts:
            ids = [start] + self.encode(text)[: length - 2] + [end]
            rest = length - len(ids)
            out["token_ids"].append(ids + [pad] * rest)
            out["padding_mask"].append([1] * len(ids) + [0] * rest)
        return out


def _read_json(path: str, what: str):
    """The JSON value in ``path``; a file that is not JSON (or not UTF-8) is a ``ValueError`` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{path} is not a {what} (not JSON: {type(exc).__name__})") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="the <model>.json sidecar written by tfxfer, or a vocab.json")
    parser.add_argument("texts", nargs="+", help="texts (after merges.txt when config is a vocab.json)")
    parser.add_argument("--sequence-length", type=int, default=None, help="pack to this length")
    args = parser.parse_args(argv)
    texts = list(args.texts)
    try:
        for i, text in enumerate(texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a non-UTF-8 argument byte: Python makes it a lone surrogate
                raise ValueError(f"texts[{i}] is not UTF-8 text") from None
        config = _read_json(args.config, "tokenizer JSON")
        if not isinstance(config, dict):
            raise ValueError(f"{args.config}: expected a JSON object, got a JSON {type(config).__name__}")
        if "tokens" in config and "pre" in config:  # a causal LM's tokenizer JSON (BPETokenizer.save)
            tok = BytePairTokenizer.from_causal_lm(args.config)
        elif "tokenizer" in config or config.get("type") == "bpe":
            tok = BytePairTokenizer.from_config(args.config)
        else:
            if len(texts) < 2:
                parser.error("with a vocab.json, give merges.txt and then the texts")
            tok = BytePairTokenizer(args.config, texts.pop(0))
        length = args.sequence_length or tok.sequence_length
        if length:
            result = tok.pack(texts, length)
        else:
            result = {"tokens": [tok.tokenize(t) for t in texts], "token_ids": [tok.encode(t) for t in texts]}
    except Exception as exc:  # a missing or damaged file, a bad text or length: one line, never a traceback
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"bpe_tokenizer.py: error: {type(exc).__name__}: {message}", file=sys.stderr)
        return 2
    json.dump(result, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0

if __name__ == "__main__":
    sys.exit(main())
