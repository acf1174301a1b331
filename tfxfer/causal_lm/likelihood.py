"""`perplexity`: how well a `LanguageModel` predicts held-out text, exp(mean next-token loss).

Each text is tokenized exactly (`BPETokenizer`) and scored on its own: every token after the
first is predicted from the ones before it. A text longer than ``window`` tokens is cut into
consecutive, non-overlapping windows (each window's first token is not predicted), so the figure
is comparable between models only at the same ``window``. The corpus figure weights every
predicted token equally: ``exp(sum of losses / number of predicted tokens)``.

Example:
    >>> from tfxfer.causal_lm import load_causal_lm, perplexity
    >>> lm = load_causal_lm("smollm2-135m")                                  # doctest: +SKIP
    >>> perplexity(lm, ["The cat sat on the mat.", "Paris is in France."])    # doctest: +SKIP
    108.18...
"""

from __future__ import annotations

import math

import numpy as np

from tfxfer.causal_lm.tokenizer import check_sequence
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.utils.validate import check_int


def _windows(ids, window):
    return [ids[start: start + window] for start in range(0, len(ids), window)]


def token_losses(lm, texts, *, window: int | None = None, batch_size: int = 4) -> list:
    """Per text, the next-token losses (natural log) of every predicted token, as float arrays."""
    import tensorflow as tf

    texts = check_sequence("texts", texts, "a list of strings (wrap a single text in a list)")
    if not texts:
        raise ArgumentError("texts", texts, "must hold at least one text")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ArgumentTypeError(f"texts[{i}]", text, "a str")
        if not text:
            raise ArgumentError(f"texts[{i}]", text, "must be a non-empty string")
    window = check_int("window", lm.context_length if window is None else window, low=2,
                       high=lm.context_length)
    batch_size = check_int("batch_size", batch_size, low=1)
    pieces = []  # (text index, ids)
    for index, ids in enumerate(lm.tokenizer.encode_batch(texts)):
        pieces.extend((index, piece) for piece in _windows(ids, window) if len(piece) >= 2)
    losses = [[] for _ in texts]
    for start in range(0, len(pieces), batch_size):
        batch = pieces[start: start + batch_size]
        length = max(len(ids) for _, ids in batch)
        token_ids = np.zeros((len(batch), length), dtype="int32")
        mask = np.zeros((len(batch), length), dtype=bool)
        for row, (_, ids) in enumerate(batch):
            token_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = True
        logits = lm.model({"token_ids": token_ids, "padding_mask": mask}, training=False)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=token_ids[:, 1:], logits=tf.cast(logits[:, :-1], "float32")).numpy()
        for row, (index, ids) in enumerate(batch):
            losses[index].append(loss[row, : len(ids) - 1])
    return [np.concatenate(parts) if parts else np.zeros(0, dtype="float32") for parts in losses]


def perplexity(lm, texts, *, window: int | None = None, batch_size: int = 4) -> float:
    """Corpus perplexity of ``texts`` under ``lm`` (lower is better; 1.0 is perfect).

    Args:
        lm: a `LanguageModel`.
        texts: a list of non-empty strings.
        window: tokens per scored window (default: the model's context length).
        batch_size: windows scored together.

    Raises:
        ArgumentError: empty list or empty text. ArgumentTypeError: ``texts`` is not a list of
        strings (a single str, None). DataError: no text has two tokens to score.
    """
    losses = token_losses(lm, texts, window=window, batch_size=batch_size)
    count = sum(part.size for part in losses)
    if count == 0:
        raise DataError("No text has two or more tokens, so no next token can be scored")
    return float(math.exp(float(sum(part.sum(dtype=np.float64) for part in losses)) / count))
