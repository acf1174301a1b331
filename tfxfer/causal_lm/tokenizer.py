"""`BPETokenizer`: byte-level BPE rebuilt from a GGUF vocabulary, id for id as the model was trained.

The vocabulary and merges in ``tokenizer.ggml.*`` are the Hugging Face ones; what the file names
only by a label is the pre-tokenizer (``tokenizer.ggml.pre``). `PRE_TOKENIZERS` holds the ones
tfxfer rebuilds, each exactly as llama.cpp and the model's ``tokenizer.json`` define it:

* ``"smollm"`` (SmolLM / SmolLM2, StarCoder): every digit is its own piece, then GPT-2's pattern
  ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``;
* ``"gpt-2"``: GPT-2's pattern alone.

The encoding runs in Hugging Face's ``tokenizers`` library (installed with keras-hub), which is
what produced the training data's ids. keras-hub's in-graph ``BytePairTokenizer`` was measured
against it on the SmolLM2 vocabulary and differs on runs of whitespace before a word (``"  a"``
-> ``["ĠĠ", "a"]`` instead of ``["Ġ", "Ġa"]``) and on runs of newlines, because TensorFlow's
regex engine has no look-ahead; it is therefore not used for causal LMs. Control tokens (such as
``<|im_start|>``) written in the text are encoded as their single id, as llama.cpp and
``transformers`` do.

Example:
    >>> from tfxfer.causal_lm.tokenizer import BPETokenizer, byte_vocabulary
    >>> tok = BPETokenizer(tokens=byte_vocabulary() + ["ab", "<|end|>"], merges=["a b"],
    ...                    special_tokens=["<|end|>"], eos_token_id=257)
    >>> ids = tok.encode("ab 12<|end|>")
    >>> ids, tok.decode(ids)
    ([256, 32, 49, 50, 257], 'ab 12<|end|>')
"""

from __future__ import annotations

import functools
import json

from tfxfer.errors import ArgumentError, ArgumentTypeError, MissingDependencyError
from tfxfer.utils.validate import is_int

#: GGUF ``tokenizer.ggml.pre`` labels tfxfer rebuilds -> what they do.
PRE_TOKENIZERS = {
    "smollm": "each digit isolated, then GPT-2's pattern",
    "gpt-2": "GPT-2's pattern",
}


@functools.lru_cache(maxsize=1)
def _byte_to_unicode() -> dict:
    """GPT-2's printable stand-in for every byte (a space is "Ġ", a newline "Ċ")."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    codes, extra = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes)}


def byte_vocabulary() -> list:
    """The 256 byte tokens of a byte-level BPE vocabulary, in byte order (for tiny test vocabularies)."""
    table = _byte_to_unicode()
    return [table[b] for b in range(256)]


def check_text(name: str, text) -> str:
    """``text`` if it is a str that UTF-8 can encode, else `ArgumentTypeError` / `ArgumentError`
    naming ``name`` and the index of the first lone surrogate (``"\\ud800"``)."""
    if not isinstance(text, str):
        raise ArgumentTypeError(name, text, "a str")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ArgumentError(name, text, f"must be valid Unicode text; it holds a lone surrogate "
                                        f"{text[exc.start]!r} at index {exc.start}") from None
    return text


def check_sequence(name: str, values, what: str = "a list of strings") -> list:
    """``values`` as a list (a generator read once); a str, bytes, a dict or a value that cannot be
    iterated (None, a number) is an `ArgumentTypeError` naming ``name`` and saying ``what`` it must be.

    Example:
        >>> check_sequence("texts", (t for t in ["a", "b"]))
        ['a', 'b']
    """
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise ArgumentTypeError(name, values, what)
    return list(values)


def check_token_ids(name: str, ids, vocabulary_size: int) -> list:
    """``ids`` as a list of Python ints, each a token id in ``[0, vocabulary_size)``.

    A string, a float or a bool is an `ArgumentTypeError` (never truncated or read digit by digit);
    an id out of range is an `ArgumentError` naming its position (``token_ids[3]``).

    Example:
        >>> check_token_ids("ids", [3, 1], 10)
        [3, 1]
    """
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise ArgumentTypeError(name, ids, "a list of int token ids")
    out = []
    for i, value in enumerate(ids):
        if not is_int(value):
            raise ArgumentTypeError(f"{name}[{i}]", value, "an int token id")
        if not 0 <= value < vocabulary_size:
            raise ArgumentError(name, ids, f"must be ids in [0, {vocabulary_size}); {name}[{i}]={value!r} is not")
        out.append(int(value))
    return out


def _tokenizers():
    try:
        import tokenizers
    except ImportError as e:  # pragma: no cover - keras-hub requires it
        raise MissingDependencyError("tokenizers", "pip install tokenizers", "byte-level BPE") from e
    return tokenizers


class BPETokenizer:
    """Byte-level BPE: text <-> token ids, exactly as the model's Hugging Face tokenizer.

    Args:
        tokens: the vocabulary, id order (a GGUF file's ``tokenizer.ggml.tokens``).
        merges: merge rules ``"left right"``, best first.
        pre: a key of `PRE_TOKENIZERS`.
        special_tokens: tokens matched whole in the text (control tokens); each must be in ``tokens``.
        bos_token_id, eos_token_id, pad_token_id: ids of the start / end / padding tokens (or None).
        add_bos_token: whether `encode` puts the start token first (GGUF ``add_bos_token``).
    """

    def __init__(self, *, tokens, merges, pre: str = "gpt-2", special_tokens=(),
                 bos_token_id: int | None = None, eos_token_id: int | None = None,
                 pad_token_id: int | None = None, add_bos_token: bool = False):
        if pre not in PRE_TOKENIZERS:
            raise ArgumentError("pre", pre, f"must be one of {sorted(PRE_TOKENIZERS)}")
        self.tokens = tuple(tokens)
        self.merges = tuple(merges)
        self.pre = pre
        self.special_tokens = tuple(special_tokens)
        self._ids = {t: i for i, t in enumerate(self.tokens)}
        for name, value in (("bos_token_id", bos_token_id), ("eos_token_id", eos_token_id),
                            ("pad_token_id", pad_token_id)):
            if value is not None and not 0 <= value < len(self.tokens):
                raise ArgumentError(name, value, f"must be an id in [0, {len(self.tokens)}) or None")
        missing = [t for t in self.special_tokens if t not in self._ids]
        if missing:
            raise ArgumentError("special_tokens", missing, "must all be in `tokens`")
        # Real vocabularies may leave out byte tokens no text of theirs uses (SmolLM2 lacks 21, e.g. the
        # bytes UTF-8 never produces); a text that needs one is refused in `encode`, never silently cut.
        self._absent_bytes = frozenset(b for b, t in _byte_to_unicode().items() if t not in self._ids)
        for i, merge in enumerate(self.merges):
            parts = merge.split(" ", 1) if isinstance(merge, str) else None
            if parts is None or len(parts) != 2 or not all(parts):
                raise ArgumentError(f"merges[{i}]", merge, 'must be "left right": two tokens and one space')
            unknown = [t for t in (*parts, parts[0] + parts[1]) if t not in self._ids]
            if unknown:
                raise ArgumentError(f"merges[{i}]", merge, f"must name tokens of the vocabulary and make "
                                    f"one; not in `tokens`: {unknown}")
        self.bos_token_id, self.eos_token_id, self.pad_token_id = bos_token_id, eos_token_id, pad_token_id
        self.add_bos_token = bool(add_bos_token)
        self._tokenizer = self._build()

    @classmethod
    def from_gguf(cls, vocab) -> "BPETokenizer":
        """The tokenizer described by a `GGUFVocabulary` (``checkpoint.vocab``)."""
        return cls(tokens=vocab.tokens, merges=vocab.merges, pre=vocab.pre,
                   special_tokens=vocab.special_tokens, bos_token_id=vocab.bos_token_id,
                   eos_token_id=vocab.eos_token_id, pad_token_id=vocab.pad_token_id,
                   add_bos_token=vocab.add_bos_token)

    def _build(self):
        tk = _tokenizers()
        merges = [tuple(m.split(" ", 1)) for m in self.merges]
        try:
            model = tk.models.BPE(vocab=dict(self._ids), merges=merges, fuse_unk=False)
        except Exception as exc:  # the Rust side raises a bare Exception ("Error while initializing BPE")
            raise ArgumentError("merges", self.merges, f"cannot build a BPE model ({exc})") from None
        tokenizer = tk.Tokenizer(model)
        byte_level = tk.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        if self.pre == "smollm":
            tokenizer.pre_tokenizer = tk.pre_tokenizers.Sequence(
                [tk.pre_tokenizers.Digits(individual_digits=True), byte_level])
        else:
            tokenizer.pre_tokenizer = byte_level
        tokenizer.decoder = tk.decoders.ByteLevel()
        tokenizer.add_special_tokens(
            [tk.AddedToken(t, special=True, normalized=False) for t in self.special_tokens])
        return tokenizer

    @property
    def vocabulary_size(self) -> int:
        return len(self.tokens)

    def token_to_id(self, token: str) -> int:
        """The id of ``token`` (a vocabulary entry such as ``"<|im_end|>"``)."""
        if token not in self._ids:
            raise ArgumentError("token", token, "must be a token of the vocabulary",
                                hint=f"special tokens: {', '.join(self.special_tokens[:8]) or 'none'}")
        return self._ids[token]

    @property
    def start_ids(self) -> list:
        """What `encode` puts before a text's tokens: ``[bos_token_id]`` when ``add_bos_token`` (and
        the start token is known), else ``[]``."""
        return [self.bos_token_id] if self.add_bos_token and self.bos_token_id is not None else []

    def encode(self, text: str, *, name: str = "text", add_bos: bool = True) -> list:
        """Token ids of ``text`` (with the start token first when ``add_bos_token``).

        ``name`` is the argument named in errors (a str with no lone surrogate is required).
        ``add_bos=False`` leaves the start token out whatever ``add_bos_token`` says: for a text
        that continues other tokens (a label word after its prompt, a completion after its prompt).
        """
        self._check_bytes(name, check_text(name, text))
        ids = self._tokenizer.encode(text, add_special_tokens=False).ids
        return (self.start_ids if add_bos else []) + ids

    def encode_batch(self, texts, *, name: str = "texts", add_bos: bool = True) -> list:
        """`encode` for each of ``texts`` (errors name ``name[i]``)."""
        texts = list(texts)
        for i, text in enumerate(texts):
            self._check_bytes(f"{name}[{i}]", check_text(f"{name}[{i}]", text))
        prefix = self.start_ids if add_bos else []
        return [prefix + e.ids for e in self._tokenizer.encode_batch(texts, add_special_tokens=False)]

    def keep_last(self, ids, n: int) -> list:
        """The last ``n`` of ``ids`` (from `encode`), with the start token `encode` put first kept
        first when there is room for more than it: a text cut to fit a window still begins as the
        model saw texts begin.

        Example:
            >>> tok = BPETokenizer(tokens=byte_vocabulary() + ["<s>"], merges=[], special_tokens=["<s>"],
            ...                    bos_token_id=256, add_bos_token=True)
            >>> tok.keep_last(tok.encode("abcd"), 3)
            [256, 99, 100]
        """
        ids, start = list(ids), self.start_ids
        if len(ids) <= n:
            return ids
        if start and n > len(start) and ids[: len(start)] == start:
            return start + ids[len(ids) - (n - len(start)):]
        return ids[len(ids) - n:] if n > 0 else []

    def _check_bytes(self, name: str, text: str) -> None:
        """`ArgumentError` naming ``name`` when ``text`` needs a byte token the vocabulary lacks (the
        tokenizer would drop those characters without a word)."""
        if self._absent_bytes and not text.isascii():
            for i, char in enumerate(text):
                if any(b in self._absent_bytes for b in char.encode("utf-8")):
                    raise ArgumentError(name, text, f"holds {char!r} at index {i}, whose UTF-8 bytes this "
                                                    "vocabulary has no token for")
        elif self._absent_bytes and any(ord(c) in self._absent_bytes for c in text):
            char = next(c for c in text if ord(c) in self._absent_bytes)
            raise ArgumentError(name, text, f"holds {char!r} at index {text.index(char)}, a byte this "
                                            "vocabulary has no token for")

    def decode(self, ids, *, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` (bytes joined, then decoded as UTF-8; partial characters become U+FFFD)."""
        ids = check_token_ids("ids", ids, len(self.tokens))
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def to_json(self) -> str:
        """The Hugging Face ``tokenizer.json`` text of this tokenizer (to ship beside a model)."""
        return self._tokenizer.to_str()

    def get_config(self) -> dict:
        """Everything needed to rebuild this tokenizer (``BPETokenizer(**config)``)."""
        return {"tokens": list(self.tokens), "merges": list(self.merges), "pre": self.pre,
                "special_tokens": list(self.special_tokens), "bos_token_id": self.bos_token_id,
                "eos_token_id": self.eos_token_id, "pad_token_id": self.pad_token_id,
                "add_bos_token": self.add_bos_token}

    def save(self, path: str) -> None:
        """Write `get_config` as JSON to ``path`` (atomically)."""
        from tfxfer.utils.atomic import atomic_write_text

        atomic_write_text(path, json.dumps(self.get_config(), ensure_ascii=False))

    @classmethod
    def load(cls, path: str) -> "BPETokenizer":
        """A tokenizer written by `save`."""
        with open(path, encoding="utf-8") as f:
            return cls(**json.load(f))

    def __repr__(self) -> str:
        return f"BPETokenizer(vocabulary_size={self.vocabulary_size}, pre={self.pre!r})"
