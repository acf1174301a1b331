"""`generate`: continue prompts with a `LanguageModel` (KV cache, samplers, stop tokens).

Prompts are tokenized exactly (`BPETokenizer`), batched with right padding, and decoded by one
compiled loop: the prompt fills the key/value cache in one pass, then each step feeds one token
(keras-hub's ``call_with_cache``) and asks the sampler (`tfxfer.causal_lm.samplers`) for the next.
The loop is traced once per model, sampler name and stop tokens (the last `MAX_LOOPS` are kept);
temperature, top_k, top_p and the seed are variables it reads, so changing them never retraces.
Generation stops at ``max_new_tokens`` or at a stop token, which is not included in the result.

A prompt that leaves fewer than ``max_new_tokens`` positions in the context is cut from the left
(its end is what the model continues; a start token the tokenizer put first stays first, as in
`BPETokenizer.keep_last`) with a warning naming the limit; an empty prompt is an error.

Example:
    >>> from tfxfer.causal_lm import load_causal_lm, generate
    >>> lm = load_causal_lm("smollm2-135m")                           # doctest: +SKIP
    >>> generate(lm, ["The capital of France is"], max_new_tokens=8)   # doctest: +SKIP
    [' Paris.\\n\\nThe answer is:']
"""

from __future__ import annotations

import collections
import random
import threading
import warnings

import numpy as np

from tfxfer.causal_lm.samplers import check_sampler
from tfxfer.causal_lm.tokenizer import check_token_ids
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.utils.validate import check_int

#: The attribute of a Keras model that holds its decode loops (an OrderedDict {key: _Loop}, least recently
#: used first). On the model itself, not in a module-level weak dictionary: a loop's traced function holds
#: its model, so a weak key would never die; model -> loops -> model is a cycle the collector frees.
_LOOPS_ATTRIBUTE = "_tfxfer_decode_loops"
#: Decode loops kept per model (one per model structure, sampler name and stop ids; the least
#: recently used is dropped). Sampler settings and seeds are variables, so they never add one.
MAX_LOOPS = 4
# XLA for the decode loop. Measured on SmolLM2-135M, 2 CPU cores: no faster (32 tokens 7.0 s vs 6.5 s)
# and it recompiles for every new batch shape (~50 s each), so it stays off.
JIT_COMPILE = False


def _decode_loop(model, sampler, stop_token_ids):
    """A tf.function ``(token_ids, padding_mask) -> token_ids`` for ``model``.

    The stop ids are fixed at trace time (keras-hub's samplers compare against a Python tuple).
    """
    import tensorflow as tf
    from keras import ops

    backbone = model.backbone

    def loop(token_ids, padding_mask):
        batch, length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        head_dim = backbone.hidden_dim // backbone.num_query_heads
        cache = ops.zeros([batch, backbone.num_layers, 2, length, backbone.num_key_value_heads, head_dim],
                          dtype=model.compute_dtype)
        # decoding starts after the shortest prompt: every row needs a token to continue (the first
        # step reads the logits of position index - 1); callers refuse empty prompts, this is the last guard
        lengths = ops.sum(ops.cast(padding_mask, "int32"), axis=-1)
        check = tf.debugging.Assert(tf.logical_and(batch > 0, tf.reduce_all(lengths > 0)), [
            "every row of token_ids needs at least one prompt token (padding_mask all False in a row, "
            "or an empty batch); prompt lengths:", lengths])
        with tf.control_dependencies([check]):
            token_ids = tf.identity(token_ids)
        _, hidden_states, cache = model.call_with_cache(token_ids, cache, 0)
        index = ops.min(lengths)

        def next_logits(prompt, cache, index):
            update_index = index - 1
            logits, hidden, cache = model.call_with_cache(
                ops.slice(prompt, [0, update_index], [ops.shape(prompt)[0], 1]), cache, update_index)
            return ops.squeeze(logits, axis=1), ops.squeeze(hidden, axis=1), cache

        return sampler(next=next_logits, prompt=token_ids, cache=cache, index=index, mask=padding_mask,
                       stop_token_ids=tuple(stop_token_ids) or None, hidden_states=hidden_states,
                       model=model)

    # One trace per model and sampler: batch size and length stay symbolic.
    signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool)]
    return tf.function(loop, jit_compile=JIT_COMPILE, input_signature=signature)


class _Loop:
    """One compiled decode loop and the variables its sampler reads (temperature, top_k, top_p, the
    random state), set before each call: a new seed or setting reuses the trace instead of retracing.

    A seeded call starts the random stream at keras' ``SeedGenerator(seed)`` state, ``[seed, 0]``, so
    a seed gives the same tokens on every call; an unseeded call starts at a state drawn from Python's
    ``random`` (which ``keras.utils.set_random_seed`` seeds).
    """

    def __init__(self, model, sampler: str, stop_token_ids: tuple):
        import keras_hub
        import tensorflow as tf

        self.temperature = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="temperature")
        self.top_k = tf.Variable(1, dtype=tf.int32, trainable=False, name="top_k")
        self.top_p = tf.Variable(1.0, dtype=tf.float32, trainable=False, name="top_p")
        samplers = keras_hub.samplers
        if sampler == "greedy":
            sampler_obj = samplers.GreedySampler()
        elif sampler == "random":
            sampler_obj = samplers.RandomSampler(temperature=self.temperature, seed=0)
        elif sampler == "top_k":
            sampler_obj = samplers.TopKSampler(k=self.top_k, temperature=self.temperature, seed=0)
        else:
            sampler_obj = samplers.TopPSampler(p=self.top_p, temperature=self.temperature, seed=0)
        self.seeds = getattr(sampler_obj, "seed_generator", None)
        self.function = _decode_loop(model, sampler_obj, stop_token_ids)
        self.lock = threading.Lock()  # the variables belong to one call at a time

    def __call__(self, token_ids, padding_mask, settings: dict) -> np.ndarray:
        with self.lock:
            self.temperature.assign(settings["temperature"])
            if settings["top_k"] is not None:
                self.top_k.assign(settings["top_k"])
            if settings["top_p"] is not None:
                self.top_p.assign(settings["top_p"])
            if self.seeds is not None:
                seed = settings["seed"] if settings["seed"] is not None else random.randint(1, 10**9)
                self.seeds.state.assign(np.asarray([seed, 0], dtype=self.seeds.state.dtype))
            return np.asarray(self.function(token_ids, padding_mask))


def compiled_loops(model) -> collections.OrderedDict:
    """The decode loops kept for Keras ``model`` (created empty on first use)."""
    loops = model.__dict__.get(_LOOPS_ATTRIBUTE)
    if loops is None:
        loops = collections.OrderedDict()
        object.__setattr__(model, _LOOPS_ATTRIBUTE, loops)  # past Keras' attribute tracking (holds variables)
    return loops


def _loop(lm, sampler: str, stop_token_ids: tuple) -> _Loop:
    """The cached `_Loop` of ``lm`` for ``sampler`` and the stop ids (at most `MAX_LOOPS` kept)."""
    # The graph changes when layers do (LoRA enabled, Keras quantization): part of the key.
    key = ((len(lm.model.weights), getattr(lm.backbone, "_lora_rank", None)), sampler, stop_token_ids)
    loops = compiled_loops(lm.model)
    if key in loops:
        loops.move_to_end(key)
    else:
        loops[key] = _Loop(lm.model, sampler, stop_token_ids)
        while len(loops) > MAX_LOOPS:
            loops.popitem(last=False)
    return loops[key]


def _check_lm(lm) -> None:
    """`ArgumentTypeError` naming ``lm`` unless it is a `LanguageModel` (a common slip: its ``.model``)."""
    from tfxfer.causal_lm.language_model import LanguageModel

    if not isinstance(lm, LanguageModel):
        raise ArgumentTypeError("lm", lm, "a tfxfer.causal_lm.LanguageModel (from load_causal_lm or "
                                          "build_language_model; the LanguageModel itself, not its .model)")


def _stop_ids(tokenizer, stop_tokens) -> tuple:
    if stop_tokens == "eos":
        return () if tokenizer.eos_token_id is None else (tokenizer.eos_token_id,)
    if stop_tokens is None:
        return ()
    if isinstance(stop_tokens, (str, int)):
        raise ArgumentTypeError("stop_tokens", stop_tokens, '"eos", None or a list of tokens / ids')
    ids = []
    for i, token in enumerate(stop_tokens):
        if isinstance(token, str):
            if token not in tokenizer._ids:
                raise ArgumentError(f"stop_tokens[{i}]", token, "must be a token of the vocabulary",
                                    hint=f"special tokens: {', '.join(tokenizer.special_tokens[:8]) or 'none'}")
            ids.append(tokenizer.token_to_id(token))
        else:
            ids.append(check_int(f"stop_tokens[{i}]", token, low=0, high=tokenizer.vocabulary_size - 1))
    return tuple(ids)


def _prompt_ids(lm, prompts, max_new_tokens) -> list:
    limit = lm.context_length - max_new_tokens
    encoded = lm.tokenizer.encode_batch(prompts, name="prompts")
    out = []
    for i, (prompt, ids) in enumerate(zip(prompts, encoded)):
        if not prompt or not ids:
            raise ArgumentError(f"prompts[{i}]", prompt, "must be a non-empty string")
        if len(ids) > limit:
            ids = lm.tokenizer.keep_last(ids, limit)  # the start token stays first when there is room
            start = len(lm.tokenizer.start_ids)
            kept = start if limit > start else 0
            warnings.warn(
                f"prompts[{i}] has {len(encoded[i])} tokens; the context holds {lm.context_length} and "
                f"max_new_tokens={max_new_tokens}, so it is cut to {'its start token and ' if kept else ''}"
                f"its last {limit - kept} tokens", UserWarning, stacklevel=3)
        out.append(ids)
    return out


def generate_ids(lm, prompt_ids, *, max_new_tokens: int, sampler="greedy", stop_token_ids=(),
                 temperature: float = 1.0, top_k=None, top_p=None, seed=None) -> list:
    """Token-level `generate`: lists of prompt ids in, lists of new ids out (stop token excluded)."""
    _check_lm(lm)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, low=1)
    vocabulary_size = lm.backbone.vocabulary_size
    if isinstance(prompt_ids, (str, bytes)) or not hasattr(prompt_ids, "__iter__"):
        raise ArgumentTypeError("prompt_ids", prompt_ids, "a list of lists of int token ids")
    prompt_ids = [check_token_ids(f"prompt_ids[{i}]", ids, vocabulary_size) for i, ids in enumerate(prompt_ids)]
    if not prompt_ids or not all(prompt_ids):
        raise ArgumentError("prompt_ids", prompt_ids, "must be a non-empty list of non-empty id lists")
    longest = max(len(ids) for ids in prompt_ids)
    if longest + max_new_tokens > lm.context_length:
        raise ArgumentError("max_new_tokens", max_new_tokens,
                            f"plus the longest prompt ({longest} tokens) must fit the context "
                            f"({lm.context_length} tokens)")
    stop_token_ids = tuple(check_token_ids("stop_token_ids", stop_token_ids, vocabulary_size))
    settings = check_sampler(sampler, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                             vocabulary_size=vocabulary_size)
    loop = _loop(lm, sampler, stop_token_ids)
    lengths = [len(ids) for ids in prompt_ids]
    total = max(lengths) + max_new_tokens
    # Padding must not be a stop id: the sampler stops once every row shows a stop id past its prompt
    # (SmolLM2's padding token is its end token).
    pad = next(i for i in range(len(stop_token_ids) + 1) if i not in stop_token_ids)
    token_ids = np.full((len(prompt_ids), total), pad, dtype="int32")
    mask = np.zeros((len(prompt_ids), total), dtype=bool)
    for row, ids in enumerate(prompt_ids):
        token_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = True
    result = loop(token_ids, mask, settings)  # a seeded sampler restarts its random stream on every call
    out = []
    for row, length in enumerate(lengths):
        new = result[row, length: length + max_new_tokens].tolist()
        for position, token in enumerate(new):
            if token in stop_token_ids:
                new = new[:position]
                break
        out.append(new)
    return out


def generate(lm, prompts, *, max_new_tokens: int = 64, sampler: str = "greedy",
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, stop_tokens="eos", batch_size: int = 8):
    """Continue each prompt with up to ``max_new_tokens`` tokens; return the new text only.

    Args:
        lm: a `LanguageModel` (`load_causal_lm`).
        prompts: a string (returns a string) or a list of strings (returns a list).
        max_new_tokens: the most tokens to add, >= 1 and < the context length.
        sampler: "greedy" (default), "random", "top_k" or "top_p" (`tfxfer.causal_lm.samplers`).
        temperature, top_k, top_p, seed: the sampler's settings (an unused one is an error).
        stop_tokens: "eos" (the tokenizer's end token), None, or a list of tokens (``"<|im_end|>"``)
            or ids; generation of a row stops at the first one, which is left out.
        batch_size: prompts decoded together.

    Raises:
        ArgumentError: empty prompt (or no prompt), a character whose bytes the vocabulary has no
            token for, a token not in the vocabulary, bad sampler settings.
        ArgumentTypeError: ``lm`` is not a `LanguageModel` (a keras model, ``lm.model``, included),
            a prompt is not a str.

    Example:
        >>> generate(lm, "Once upon a time", max_new_tokens=20, sampler="top_p", top_p=0.9,
        ...          temperature=0.8, seed=1)                          # doctest: +SKIP
    """
    _check_lm(lm)
    single = isinstance(prompts, str)
    if not single and (isinstance(prompts, bytes) or not hasattr(prompts, "__iter__")):
        raise ArgumentTypeError("prompts", prompts, "a str or a list of str")
    prompts = [prompts] if single else list(prompts)
    if not prompts:
        raise ArgumentError("prompts", prompts, "must hold at least one prompt")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise ArgumentTypeError(f"prompts[{i}]", prompt, "a str")
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, low=1, high=lm.context_length - 1)
    batch_size = check_int("batch_size", batch_size, low=1)
    check_sampler(sampler, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                  vocabulary_size=lm.backbone.vocabulary_size)  # check early
    stops = _stop_ids(lm.tokenizer, stop_tokens)
    ids = _prompt_ids(lm, prompts, max_new_tokens)
    texts = []
    for start in range(0, len(ids), batch_size):
        new = generate_ids(lm, ids[start: start + batch_size], max_new_tokens=max_new_tokens,
                           sampler=sampler, stop_token_ids=stops, temperature=temperature,
                           top_k=top_k, top_p=top_p, seed=seed)
        texts.extend(lm.tokenizer.decode(row) for row in new)
    return texts[0] if single else texts
