"""An independent, slow byte-level BPE written from llama.cpp's definition (llama-vocab.cpp).

``smollm``: regex list ``["\\p{N}", GPT2]`` (each digit its own piece, then GPT-2's pattern on the
rest); ``gpt-2``: ``[GPT2]``. Control tokens are cut out whole first. Each piece's UTF-8 bytes are
mapped to GPT-2's printable characters and merged, lowest merge rank first, all occurrences of
that pair per step (GPT-2's ``bpe``). Used only to cross-check `tfxfer.causal_lm.BPETokenizer`.
"""

from __future__ import annotations

import regex

from tests.causal_lm.helpers import byte_tokens

GPT2 = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def _bpe(word, ranks):
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), float("inf")), i) for i, (a, b) in enumerate(zip(parts, parts[1:]))]
        best = min(pairs)[0]
        if best == float("inf"):
            break
        merged, i = [], 0
        while i < len(parts):
            if i + 1 < len(parts) and ranks.get((parts[i], parts[i + 1])) == best:
                merged.append(parts[i] + parts[i + 1])
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def reference_encode(text, *, tokens, merges, pre, special_tokens):
    ids = {t: i for i, t in enumerate(tokens)}
    ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(merges)}
    table = byte_tokens()
    if special_tokens:
        chunks = regex.split("(" + "|".join(regex.escape(t) for t in special_tokens) + ")", text)
    else:
        chunks = [text]
    out = []
    for chunk in chunks:
        if not chunk:
            continue
        if chunk in special_tokens:
            out.append(ids[chunk])
            continue
        pieces = [p for p in regex.split(r"(\p{N})", chunk) if p] if pre == "smollm" else [chunk]
        for piece in pieces:
            for word in GPT2.findall(piece):
                mapped = "".join(table[b] for b in word.encode("utf-8"))
                out.extend(ids[t] for t in _bpe(mapped, ranks))
    return out


TRICKY = [
    "Hello world!", "The year 2024 was   great.", "a  1", "a   12 b", "  leading spaces", "trailing  ",
    "tabs\tand\nnewlines\n\n", "don't I'll we've", "naïve café 日本語 😀", "x=1+2; y = f(x) ** 3",
    "<|im_start|>user\nHi<|im_end|>\n", "multiple\n\n\nnewlines   \n  x", "$100.00 and 3.14159",
    "ABC's DEF'S", " 1 2 3", "it's\u00a0nbsp", "e.g. U.S.A.", "   ", "the and then", "\u2009thin\u3000ideo",
    "x\r\ny", "1st 2nd 3rd 10th", "emoji 👍🏽 flags 🇫🇷", "def f():\n    return 1\n", "Ω≈ç√∫", "'''quoted'''",
]
