"""`adapt_causal_lm`: continued next-token training on raw text, or instruction tuning on
(prompt, completion) pairs; LoRA by default, full fine-tuning on request; resumable.

It speaks `tfxfer.fine_tune`'s dialect: ``adapt_causal_lm(lm, train, val=..., base_lr=...,
epochs=..., seed=...)`` returns an `AdaptResult` (merged ``history``, per-step wall times,
``settings``).

Data (`causal_lm_batches`), a list of either kind:

* raw texts (domain adaptation): every text is tokenized, followed by the end token, and the
  stream is cut into windows of ``sequence_length + 1`` tokens (packing, as in pre-training; a
  last partial window is padded and its padding masked). Every next token is a target.
* (prompt, completion) pairs (instruction tuning): ``prompt + completion + end token`` per
  example, one per row; only the completion (and the end token) are targets, the prompt tokens
  weigh 0. A tokenizer's start token (``add_bos_token``) begins the row once, before the prompt;
  the completion is tokenized without it. A pair longer than the window keeps the end of its
  prompt (after the start token), with a warning.

Training: keras-hub's ``backbone.enable_lora(rank)`` (query and value projections; every other
weight frozen) unless ``lora_rank=None``, AdamW, masked next-token cross-entropy averaged over the
target tokens (``loss`` / ``val_loss`` are nats per target token: a pair's prompt and a window's
padding do not dilute them, so ``exp(val_loss)`` is the targets' perplexity); the learning
rate warms up linearly over the first ``warmup_share`` of the steps, then decays (``lr_decay``).
With ``checkpoint_dir`` a `tfxfer.reliability.ResumableCheckpoint` saves every epoch atomically
and a rerun of the same call continues from the last complete epoch. Batches are in a fixed order
(shuffled once with ``seed``), so a resumed run sees the same batches.

Example (a tiny random Llama; ``load_causal_lm("smollm2-135m")`` for the real one):
    >>> from tfxfer.causal_lm import LlamaConfig, adapt_causal_lm, build_language_model
    >>> from tfxfer.causal_lm.tokenizer import BPETokenizer, byte_vocabulary
    >>> tok = BPETokenizer(tokens=byte_vocabulary() + ["<|end|>"], merges=[],
    ...                    special_tokens=["<|end|>"], eos_token_id=256)
    >>> lm = build_language_model(LlamaConfig(vocabulary_size=257, num_layers=1, num_query_heads=2,
    ...                                       num_key_value_heads=1, hidden_dim=16, intermediate_dim=32,
    ...                                       context_length=64), tok)
    >>> result = adapt_causal_lm(lm, ["the cat sat", "on the mat"] * 4, val=["the mat sat"], epochs=2,
    ...                          sequence_length=8, batch_size=2, base_lr=1e-3, lora_rank=2)
    >>> [step["name"] for step in result.steps], len(result.history["val_loss"])
    (['data', 'train'], 2)
    >>> result.settings["data"], result.settings["lora_rank"]
    ('texts', 2)
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.utils.validate import check_float, check_int

LR_DECAYS = ("constant", "cosine")


@dataclasses.dataclass
class AdaptResult:
    """What `adapt_causal_lm` did.

    ``history``: per-epoch ``loss`` (and ``val_loss`` with ``val=``), epochs of a resumed run
    included. ``steps``: ``{"name": "data" | "train", "wall_s", ...}`` in order; the train step adds
    ``epochs``, ``history`` (this call's epochs) and ``batches``. ``settings``: every value the run
    used. ``resumed_from``: the checkpoint a resumed run continued from (None otherwise).
    """

    history: dict
    steps: list
    settings: dict
    resumed_from: str | None = None

    def final(self, metric: str):
        """The last value of ``metric`` (e.g. "val_loss"), or None if it was not logged."""
        values = self.history.get(metric)
        return values[-1] if values else None

    @property
    def wall_s(self) -> float:
        """Seconds spent in all steps."""
        return float(sum(step["wall_s"] for step in self.steps))


def _check_texts(name, values):
    values = list(values)
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value:
            raise ArgumentError(f"{name}[{i}]", value, "must be a non-empty string")
    return values


def _split_data(name, data):
    """``("texts" | "pairs", list)``: a list of strings is raw text, a list of 2-sequences is pairs."""
    if isinstance(data, (str, bytes)) or isinstance(data, dict) or not hasattr(data, "__iter__"):
        raise ArgumentTypeError(name, data, "a list of texts or a list of (prompt, completion) pairs "
                                            "(wrap a single text in a list)")
    values = list(data)
    if not (values and isinstance(values[0], (tuple, list))):
        return "texts", _check_texts(name, values)
    for i, pair in enumerate(values):
        if not isinstance(pair, (tuple, list)):
            raise ArgumentError(f"{name}[{i}]", pair, "must be a (prompt, completion) pair like the first "
                                                      "item (do not mix texts and pairs)")
        if not (len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
            raise ArgumentError(f"{name}[{i}]", pair, "must be a (prompt, completion) pair of non-empty strings")
    return "pairs", values


def _pack_texts(lm, name, texts, window):
    end = [] if lm.tokenizer.eos_token_id is None else [lm.tokenizer.eos_token_id]
    stream = [i for ids in lm.tokenizer.encode_batch(texts, name=name) for i in ids + end]
    rows, lengths = [], []
    for start in range(0, len(stream) - 1, window - 1):  # windows overlap by one token
        piece = stream[start: start + window]
        rows.append(piece)
        lengths.append(len(piece))
    weights = [[1.0] * (n - 1) for n in lengths]
    return rows, weights


def _pairs(lm, name, pairs, window):
    end = [] if lm.tokenizer.eos_token_id is None else [lm.tokenizer.eos_token_id]
    rows, weights = [], []
    for i, pair in enumerate(pairs):  # checked by _split_data
        prompt = lm.tokenizer.encode(pair[0], name=f"{name}[{i}][0]")
        # the completion continues the prompt: no start token of its own (one per row, never a target)
        completion = lm.tokenizer.encode(pair[1], name=f"{name}[{i}][1]", add_bos=False) + end
        room = window - len(lm.tokenizer.start_ids)  # a cut prompt keeps its start token
        if len(completion) >= room:
            raise ArgumentError(f"{name}[{i}]", pair, f"has a completion of {len(completion)} tokens; "
                                f"sequence_length={window - 1} leaves no room for the prompt")
        if len(prompt) + len(completion) > window:
            warnings.warn(f"{name}[{i}] has {len(prompt) + len(completion)} tokens; the window holds "
                          f"{window}, so its prompt is cut to its last {window - len(completion)} tokens",
                          UserWarning, stacklevel=4)
            prompt = lm.tokenizer.keep_last(prompt, window - len(completion))
        # the weight at position t is that of predicting token t + 1: completion tokens only
        rows.append(prompt + completion)
        weights.append([0.0] * (len(prompt) - 1) + [1.0] * len(completion))
    return rows, weights


def causal_lm_batches(lm, data, *, sequence_length: int, batch_size: int, seed: int | None = 0,
                      name: str = "data"):
    """A ``tf.data.Dataset`` of ``({"token_ids", "padding_mask"}, next ids, weights)`` batches.

    ``data`` is a list of raw texts (packed) or of (prompt, completion) pairs (completion tokens
    weighted only); ``name`` is the argument named in errors. ``seed`` shuffles the rows once
    (None keeps their order). See the module docstring.
    """
    import tensorflow as tf

    kind, values = _split_data(name, data)
    sequence_length = check_int("sequence_length", sequence_length, low=1, high=lm.context_length)
    batch_size = check_int("batch_size", batch_size, low=1)
    window = sequence_length + 1
    if kind == "texts":
        rows, weights = _pack_texts(lm, name, values, window)
    else:
        rows, weights = _pairs(lm, name, values, window)
    if not rows:
        raise DataError(f"No training example in `{name}`: the texts hold fewer than two tokens in all")
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


def _schedule(base_lr, total_steps, warmup_share, lr_decay):
    """Linear warmup from 0 over ``warmup_share`` of the steps, then constant or a cosine decay to 0."""
    import keras

    warmup = int(round(warmup_share * total_steps))
    if lr_decay == "constant" and warmup == 0:
        return base_lr
    alpha = 1.0 if lr_decay == "constant" else 0.0
    decay_steps = max(total_steps - warmup, 1)
    if warmup == 0:
        return keras.optimizers.schedules.CosineDecay(base_lr, decay_steps, alpha=alpha)
    return keras.optimizers.schedules.CosineDecay(0.0, decay_steps, alpha=alpha, warmup_target=base_lr,
                                                  warmup_steps=warmup)


def max_lora_rank(backbone) -> int:
    """The highest useful LoRA rank on ``backbone``: the smaller side (input features or output
    features) of the smallest projection `adapt_causal_lm` adapts (keras-hub's default LoRA layers)."""
    import math

    names = set(backbone.default_lora_layer_names())
    sides = [min(int(layer.kernel.shape[0]), math.prod(int(d) for d in layer.kernel.shape[1:]))
             for layer in backbone._flatten_layers(include_self=False)
             if layer.name in names and hasattr(layer, "enable_lora") and getattr(layer, "kernel", None) is not None]
    return min(sides) if sides else backbone.hidden_dim


def adapt_causal_lm(lm, train, *, val=None, epochs: int = 1, base_lr: float = 2e-4, batch_size: int = 4,
                    sequence_length: int = 256, lora_rank: int | None = 8, weight_decay: float = 0.0,
                    warmup_share: float = 0.0, lr_decay: str = "constant", callbacks=(), checkpoint_dir=None,
                    seed: int | None = 0, verbose: int = 0) -> AdaptResult:
    """Fine-tune ``lm`` in place on raw texts or (prompt, completion) pairs; return an `AdaptResult`.

    Args:
        lm: a `LanguageModel`.
        train: a list of raw training texts (domain adaptation) or of (prompt, completion) pairs
            (instruction tuning; only the completions are learnt).
        val: held-out data of either kind, reported as ``val_loss`` each epoch.
        epochs: passes over the data.
        base_lr: AdamW's peak learning rate (2e-4 suits LoRA; use ~2e-5 for full fine-tuning).
        batch_size: windows per step. sequence_length: tokens per training window.
        lora_rank: LoRA rank on the attention query/value projections (base weights frozen), or
            None for full fine-tuning of every weight. A model with LoRA already enabled (an earlier
            adapt, a reloaded `save_causal_lm` folder) takes only its own rank: LoRA cannot be
            switched off again, so None is refused there rather than training the adapters alone.
        weight_decay: AdamW decoupled weight decay.
        warmup_share: share of all steps (0-1) with a linear warmup to ``base_lr``.
        lr_decay: after the warmup, "constant" (default) or "cosine" (down to 0 at the last step).
        callbacks: Keras callbacks for the fit (e.g. a wall-time stop: ``model.stop_training = True``);
            None is the same as ``()``.
        checkpoint_dir: save each epoch there and resume from it when the call is repeated.
        seed: seeds Keras (the LoRA matrices' initial values) and the one-off shuffle of the
            windows; None keeps them in order and leaves the seeds alone.
        verbose: Keras ``fit`` verbosity.

    Raises:
        ArgumentError / ArgumentTypeError: bad data or settings (``lora_rank`` other than the rank
            LoRA is already enabled at, None included). DataError: nothing to train on.
    """
    import keras

    epochs = check_int("epochs", epochs, low=1)
    base_lr = check_float("base_lr", base_lr, low=0, low_open=True)
    weight_decay = check_float("weight_decay", weight_decay, low=0)
    warmup_share = check_float("warmup_share", warmup_share, low=0, high=1, high_open=True)
    lora_rank = check_int("lora_rank", lora_rank, low=1, allow_none=True)
    current = getattr(lm.backbone, "_lora_rank", None)
    if lora_rank is None and current is not None:
        # keras-hub has no way back from enable_lora: the base weights stay frozen, so "full" would
        # train the adapters alone while reporting lora_rank None
        raise ArgumentError("lora_rank", lora_rank,
                            f"cannot be None (full fine-tuning) on a model with LoRA already enabled at rank "
                            f"{current}: its base weights are frozen",
                            hint=f"pass lora_rank={current} to train the adapters further, or load the model "
                                 "without adapters for full fine-tuning")
    if lora_rank is not None:
        if current is not None and current != lora_rank:
            raise ArgumentError("lora_rank", lora_rank, f"must match the rank already enabled ({current})")
        highest = max_lora_rank(lm.backbone)
        if current is None and lora_rank > highest:
            raise ArgumentError("lora_rank", lora_rank,
                                f"must be <= {highest}, the smaller side of the smallest adapted "
                                "attention projection (a higher rank adds nothing)")
    if lr_decay not in LR_DECAYS:
        raise ArgumentError("lr_decay", lr_decay, f"must be one of {LR_DECAYS}")
    seed = check_int("seed", seed, allow_none=True)
    callbacks = () if callbacks is None else callbacks
    if isinstance(callbacks, (keras.callbacks.Callback, str, bytes, dict)) or not hasattr(callbacks, "__iter__"):
        raise ArgumentTypeError("callbacks", callbacks, "a list of keras.callbacks.Callback")
    callbacks = list(callbacks)
    if not all(isinstance(c, keras.callbacks.Callback) for c in callbacks):
        raise ArgumentTypeError("callbacks", callbacks, "a list of keras.callbacks.Callback")
    kind = _split_data("train", train)[0]  # both checked before any work
    if val is not None:
        _split_data("val", val)
    start = time.perf_counter()
    data = causal_lm_batches(lm, train, sequence_length=sequence_length, batch_size=batch_size, seed=seed,
                             name="train")
    val_data = None if val is None else causal_lm_batches(
        lm, val, sequence_length=sequence_length, batch_size=batch_size, seed=None, name="val")
    batches = int(data.cardinality())
    steps = [{"name": "data", "wall_s": time.perf_counter() - start}]
    if seed is not None:
        keras.utils.set_random_seed(seed)
    backbone = lm.backbone
    if lora_rank is not None:
        current = getattr(backbone, "_lora_rank", None)
        if current is None:
            backbone.enable_lora(lora_rank)
    learning_rate = _schedule(base_lr, batches * epochs, warmup_share, lr_decay)
    lm.model.compile(optimizer=keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight"),
                     weighted_metrics=[])
    from tfxfer.optim.prebuild import build_optimizer

    # the first step is then traced once, not twice (benchmarks/first_step.py: 0.61x on SmolLM2-135M)
    build_optimizer(lm.model, batch=data.element_spec)
    callbacks, initial_epoch, resumed_from, checkpoint = list(callbacks), 0, None, None
    if checkpoint_dir is not None:
        from tfxfer.reliability import ResumableCheckpoint

        checkpoint = ResumableCheckpoint(checkpoint_dir)
        callbacks.insert(0, checkpoint)
        initial_epoch = checkpoint.initial_epoch
        resumed_from = None if checkpoint.state is None else str(checkpoint.state.path)
    start = time.perf_counter()
    fit = lm.model.fit(data, validation_data=val_data, epochs=epochs, initial_epoch=initial_epoch,
                       callbacks=callbacks, verbose=verbose, shuffle=False)
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    steps.append({"name": "train", "wall_s": time.perf_counter() - start, "epochs": len(history.get("loss", [])),
                  "history": history, "batches": batches})
    merged = history
    if checkpoint is not None:  # the checkpoint's history holds the epochs before a resume too
        merged = {key: [float(v) for v in values] for key, values in checkpoint.history.items()}
    settings = {"data": kind, "epochs": epochs, "base_lr": base_lr,
                "batch_size": batch_size, "sequence_length": sequence_length, "lora_rank": lora_rank,
                "weight_decay": weight_decay, "warmup_share": warmup_share, "lr_decay": lr_decay, "seed": seed}
    return AdaptResult(history=merged, steps=steps, settings=settings, resumed_from=resumed_from)
