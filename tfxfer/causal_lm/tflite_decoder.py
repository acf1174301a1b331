"""A `LanguageModel` as a TFLite decoder with builtin ops only: fixed-size steps, explicit KV cache.

One TFLite file holds one step function ``(token_ids [1, step_tokens], cache, index) -> (logits
[1, step_tokens, vocabulary], cache)``: it writes the new tokens' keys and values into the cache at
``index`` and attends over the cache up to them. ``step_tokens=1`` is the decode step (a prompt can
also be fed through it token by token); a larger ``step_tokens`` is a fixed-length prefill. The
cache has a fixed ``cache_length`` (prompt plus generated tokens) and is passed in and out as a
float32 ``[1, layers, 2, cache_length, kv_heads, head_dim]`` array.

What was measured while building it (TF 2.21, keras-hub 0.32, tiny Llama):

* keras-hub's ``call_with_cache`` converts with ``TFLITE_BUILTINS`` only (ops: FULLY_CONNECTED,
  BATCH_MATMUL, DYNAMIC_UPDATE_SLICE, GATHER, TILE, COS/SIN, SOFTMAX, RSQRT, ...);
* converted straight from a concrete function or a SavedModel, the weights stay resource
  variables (VAR_HANDLE / READ_VARIABLE) that LiteRT never initialises: every output is NaN. The
  step function is therefore frozen first (variables -> constants);
* the converter takes one frozen function only ("Converting multiple functions is under
  development"), and a SavedModel of frozen functions fails to save (a custom-gradient capture),
  so prefill and decode are two files (weights twice) for now.

SmolLM2-135M, cache 64, 30 held-out positions, LiteRT 1 thread (2-core machine): float32 621 MiB
(the tied embedding is stored twice), top-1 agreement 30/30, max |logit diff| 1.4e-4, 78 ms/token,
converted in 126 s; dynamic int8 158 MiB, agreement 28/30, max diff 6.5, 58 ms/token.

Example:
    >>> from tfxfer.causal_lm.tflite_decoder import convert_decoder_tflite, decoder_agreement
    >>> blob = convert_decoder_tflite(lm, cache_length=256)                   # doctest: +SKIP
    >>> decoder_agreement(lm, blob, lm.tokenizer.encode("Some held-out text"))  # doctest: +SKIP
    {'top1_agreement': 1.0, 'max_abs_diff': ...}
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError, ExportError
from tfxfer.utils.validate import check_int

QUANTIZATIONS = (None, "dynamic_int8", "float16")


def _cache_shape(lm, cache_length):
    b = lm.backbone
    return [1, b.num_layers, 2, cache_length, b.num_key_value_heads, b.hidden_dim // b.num_query_heads]


def decoder_step_function(lm, *, cache_length: int, step_tokens: int = 1):
    """The frozen (constants, no variables) step function of ``lm`` for TFLite conversion."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    cache_length = check_int("cache_length", cache_length, low=1, high=lm.context_length)
    step_tokens = check_int("step_tokens", step_tokens, low=1, high=cache_length)
    model = lm.model

    @tf.function(input_signature=[tf.TensorSpec([1, step_tokens], tf.int32, name="token_ids"),
                                  tf.TensorSpec(_cache_shape(lm, cache_length), tf.float32, name="cache"),
                                  tf.TensorSpec([], tf.int32, name="index")])
    def step(token_ids, cache, index):
        logits, _, cache = model.call_with_cache(token_ids, cache, index)
        return {"logits": tf.cast(logits, tf.float32), "cache": cache}

    return convert_variables_to_constants_v2(step.get_concrete_function())


def convert_decoder_tflite(lm, *, cache_length: int, step_tokens: int = 1, quantization=None) -> bytes:
    """TFLite bytes of ``lm``'s step function (builtin ops only).

    Args:
        cache_length: the longest sequence (prompt + generated) the file serves.
        step_tokens: tokens per call (1: decode; more: a fixed-length prefill).
        quantization: None (float32), "dynamic_int8" (int8 weights) or "float16" (float16 weights).

    Raises:
        ExportError: the converter needs an op outside TFLite's builtins.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ArgumentError("quantization", quantization, f"must be one of {QUANTIZATIONS}")
    function = decoder_step_function(lm, cache_length=cache_length, step_tokens=step_tokens)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    try:
        return converter.convert()
    except Exception as e:  # the converter raises ConverterError and plain exceptions alike
        raise ExportError(f"The decoder does not convert to TFLite with builtin ops only: {e}") from e


class TFLiteDecoder:
    """Runs a `convert_decoder_tflite` file in LiteRT: ``reset()``, then ``step(ids) -> logits``."""

    def __init__(self, model_content: bytes, *, num_threads: int | None = None):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - a declared dependency
            from tensorflow.lite.python.interpreter import Interpreter
        self._interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        self._interpreter.allocate_tensors()
        inputs = self._interpreter.get_input_details()
        self._inputs = {key: next(d for d in inputs if key in d["name"]) for key in ("token_ids", "cache", "index")}
        self.step_tokens = int(self._inputs["token_ids"]["shape"][1])
        self.cache_shape = tuple(int(d) for d in self._inputs["cache"]["shape"])
        outputs = self._interpreter.get_output_details()
        self._cache_out = next(d for d in outputs if len(d["shape"]) == 6)
        self._logits_out = next(d for d in outputs if len(d["shape"]) == 3)
        self.reset()

    @property
    def cache_length(self) -> int:
        return self.cache_shape[3]

    def reset(self) -> None:
        """Forget every token seen so far."""
        self._cache = np.zeros(self.cache_shape, dtype=np.float32)
        self.position = 0

    def step(self, token_ids) -> np.ndarray:
        """Feed ``step_tokens`` ids; return their next-token logits ``(step_tokens, vocabulary)``."""
        ids = np.asarray(token_ids, dtype=np.int32).reshape(1, -1)
        if ids.shape[1] != self.step_tokens:
            raise ArgumentError("token_ids", token_ids, f"must hold exactly {self.step_tokens} ids")
        if self.position + self.step_tokens > self.cache_length:
            raise ArgumentError("token_ids", token_ids,
                                f"would pass the cache length {self.cache_length} (at {self.position})")
        it = self._interpreter
        it.set_tensor(self._inputs["token_ids"]["index"], ids)
        it.set_tensor(self._inputs["cache"]["index"], self._cache)
        it.set_tensor(self._inputs["index"]["index"], np.asarray(self.position, dtype=np.int32))
        it.invoke()
        self._cache = it.get_tensor(self._cache_out["index"])
        self.position += self.step_tokens
        return it.get_tensor(self._logits_out["index"])[0]


def decoder_agreement(lm, model_content: bytes, token_ids) -> dict:
    """Feed ``token_ids`` one step at a time through the TFLite decoder and compare every position's
    next-token logits with the Keras model on the whole sequence.

    Returns ``top1_agreement`` (fraction of positions with the same most likely next token) and
    ``max_abs_diff`` (largest logit difference).
    """
    decoder = TFLiteDecoder(model_content)
    ids = [int(i) for i in token_ids]
    usable = len(ids) - len(ids) % decoder.step_tokens
    if usable == 0 or usable > decoder.cache_length:
        raise ArgumentError("token_ids", token_ids, f"must hold between {decoder.step_tokens} and "
                            f"{decoder.cache_length} ids (multiples of {decoder.step_tokens} are used)")
    ids = ids[:usable]
    got = np.concatenate([decoder.step(ids[i: i + decoder.step_tokens])
                          for i in range(0, usable, decoder.step_tokens)])
    x = np.asarray([ids], dtype=np.int32)
    expected = np.asarray(lm.model({"token_ids": x, "padding_mask": np.ones_like(x, bool)}, training=False),
                          dtype=np.float32)[0]
    return {"top1_agreement": float(np.mean(got.argmax(-1) == expected.argmax(-1))),
            "max_abs_diff": float(np.max(np.abs(got - expected))), "positions": usable}
