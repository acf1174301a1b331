"""`adapt_causal_lm`: continued next-token training on raw text, or instruction tuning on
(prompt, completion) pairs; LoRA by default, full fine-tuning on request; resumable.

Data (`causal_lm_batches`):

* ``texts`` (domain adaptation): every text is tokenized, followed by the end token, and the
  stream is cut into windows of ``sequence_length + 1`` tokens (packing, as in pre-training; a
  last partial window is padded and its padding masked). Every next token is a target.
* ``pairs`` (instruction tuning): ``prompt + completion + end token`` per example, one per row;
  only the completion (and the end token) are targets, the prompt tokens weigh 0. A pair longer
  than the window keeps the end of its prompt, with a warning.

Training: keras-hub's ``backbone.enable_lora(rank)`` (query and value projections; every other
weight frozen) unless ``lora_rank=None``, AdamW, masked next-token cross-entropy. With
``checkpoint_dir`` a `tfxfer.reliability.ResumableCheckpoint` saves every epoch atomically and a
rerun of the same call continues from the last complete epoch. Batches are in a fixed order
(shuffled once with ``seed``), so a resumed run sees the same batches.

Example:
    >>> from tfxfer.causal_lm import load_causal_lm, adapt_causal_lm, perplexity
    >>> lm = load_causal_lm("smollm2-135m")                                      # doctest: +SKIP
    >>> history = adapt_causal_lm(lm, texts=train_texts, epochs=1, sequence_length=128,
    ...                           checkpoint_dir="runs/adapt")                 # doctest: +SKIP
    >>> perplexity(lm, held_out_texts, window=128)                              # doctest: +SKIP
"""

from __future__ import annotations

import warnings

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.utils.validate import check_float, check_int


def _check_texts(name, values):
    if isinstance(values, str):
        raise ArgumentTypeError(name, values, "a list of strings (wrap a single text in a list)")
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise ArgumentError(f"{name}[{i}]", value, "must be a non-empty string")
    return values


def _pack_texts(lm, texts, window):
    end = [] if lm.tokenizer.eos_token_id is None else [lm.tokenizer.eos_token_id]
    stream = [i for ids in lm.tokenizer.encode_batch(texts) for i in ids + end]
    rows, lengths = [], []
    for start in range(0, len(stream) - 1, window - 1):  # windows overlap by one token
        piece = stream[start: start + window]
        rows.append(piece)
        lengths.append(len(piece))
    weights = [[1.0] * (n - 1) for n in lengths]
    return rows, weights


def _pairs(lm, pairs, window):
    end = [] if lm.tokenizer.eos_token_id is None else [lm.tokenizer.eos_token_id]
    rows, weights = [], []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2
                and all(isinstance(p, str) and p for p in pair)):
            raise ArgumentError(f"pairs[{i}]", pair,
                                "must be a (prompt, completion) pair of non-empty strings")
        prompt, completion = lm.tokenizer.encode(pair[0]), lm.tokenizer.encode(pair[1]) + end
        if len(completion) >= window:
            raise ArgumentError(f"pairs[{i}]", pair, f"has a completion of {len(completion)} tokens; "
                                f"sequence_length={window - 1} leaves no room for the prompt")
        if len(prompt) + len(completion) > window:
            warnings.warn(f"pairs[{i}] has {len(prompt) + len(completion)} tokens; the window holds "
                          f"{window}, so its prompt is cut to its last {window - len(completion)} tokens",
                          UserWarning, stacklevel=3)
            prompt = prompt[-(window - len(completion)):]
        # the weight at position t is that of predicting token t + 1: completion tokens only
        rows.append(prompt + completion)
        weights.append([0.0] * (len(prompt) - 1) + [1.0] * len(completion))
    return rows, weights


def causal_lm_batches(lm, *, texts=None, pairs=None, sequence_length: int, batch_size: int,
                      seed: int | None = 0):
    """A ``tf.data.Dataset`` of ``({"token_ids", "padding_mask"}, next ids, weights)`` batches.

    Exactly one of ``texts`` (packed raw text) and ``pairs`` (prompt, completion) is given.
    ``seed`` shuffles the rows once (None keeps their order). See the module docstring.
    """
    import tensorflow as tf

    if (texts is None) == (pairs is None):
        raise ArgumentError("texts", texts, "or `pairs` must be given (exactly one of them)")
    sequence_length = check_int("sequence_length", sequence_length, low=1, high=lm.context_length)
    batch_size = check_int("batch_size", batch_size, low=1)
    window = sequence_length + 1
    if texts is not None:
        rows, weights = _pack_texts(lm, _check_texts("texts", texts), window)
    else:
        if isinstance(pairs, (str, tuple)) or not hasattr(pairs, "__iter__"):
            raise ArgumentTypeError("pairs", pairs, "a list of (prompt, completion) pairs")
        rows, weights = _pairs(lm, list(pairs), window)
    if not rows:
        raise DataError("No training example: the texts hold fewer than two tokens in all")
    lengths = np.asarray([len(r) for r in rows])
    ids = np.zeros((len(rows), window), dtype="int32")
    target_weights = np.zeros((len(rows), sequence_length), dtype="float32")
    for i, (row, weight) in enumerate(zip(rows, weights)):
        ids[i, : len(row)] = row
        target_weights[i, : len(weight)] = weight
    mask = np.arange(sequence_length)[None, :] < lengths[:, None]
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(rows))
        ids, target_weights, mask = ids[order], target_weights[order], mask[order]
    inputs = {"token_ids": ids[:, :-1], "padding_mask": mask}
    return tf.data.Dataset.from_tensor_slices((inputs, ids[:, 1:], target_weights)).batch(batch_size)


def adapt_causal_lm(lm, *, texts=None, pairs=None, epochs: int = 1, sequence_length: int = 256,
                    batch_size: int = 4, learning_rate: float = 2e-4, lora_rank: int | None = 8,
                    weight_decay: float = 0.0, val_texts=None, checkpoint_dir=None, seed: int | None = 0,
                    verbose: int = 0):
    """Fine-tune ``lm`` in place on raw ``texts`` or instruction ``pairs``; return the Keras History.

    Args:
        lm: a `LanguageModel`.
        texts / pairs: raw training texts, or (prompt, completion) pairs (exactly one).
        epochs: passes over the data. sequence_length: tokens per training window.
        batch_size: windows per step. learning_rate: AdamW step size (2e-4 suits LoRA; use ~2e-5
            for full fine-tuning). weight_decay: AdamW decoupled weight decay.
        lora_rank: LoRA rank on the attention query/value projections (base weights frozen), or
            None for full fine-tuning of every weight.
        val_texts: held-out raw texts, reported as ``val_loss`` each epoch.
        checkpoint_dir: save each epoch there and resume from it when the call is repeated.
        seed: fixes the (one-off) shuffle of the windows; None keeps them in order.

    Raises:
        ArgumentError / ArgumentTypeError: bad data or settings. DataError: nothing to train on.
    """
    import keras

    epochs = check_int("epochs", epochs, low=1)
    learning_rate = check_float("learning_rate", learning_rate, low=0, low_open=True)
    weight_decay = check_float("weight_decay", weight_decay, low=0)
    lora_rank = check_int("lora_rank", lora_rank, low=1, allow_none=True)
    data = causal_lm_batches(lm, texts=texts, pairs=pairs, sequence_length=sequence_length,
                             batch_size=batch_size, seed=seed)
    val = None if val_texts is None else causal_lm_batches(
        lm, texts=val_texts, sequence_length=sequence_length, batch_size=batch_size, seed=None)
    backbone = lm.backbone
    if lora_rank is not None:
        current = getattr(backbone, "_lora_rank", None)
        if current is None:
            backbone.enable_lora(lora_rank)
        elif current != lora_rank:
            raise ArgumentError("lora_rank", lora_rank, f"must match the rank already enabled ({current})")
    lm.model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[])
    callbacks, initial_epoch = [], 0
    if checkpoint_dir is not None:
        from tfxfer.reliability import ResumableCheckpoint

        checkpoint = ResumableCheckpoint(checkpoint_dir)
        callbacks.append(checkpoint)
        initial_epoch = checkpoint.initial_epoch
    return lm.model.fit(data, validation_data=val, epochs=epochs, initial_epoch=initial_epoch,
                        callbacks=callbacks, verbose=verbose, shuffle=False)
