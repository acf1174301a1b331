"""A `LanguageModel` as one TFLite file (builtin ops only): prefill and decode signatures, explicit KV cache.

The file holds two signatures over the same weights:

* ``decode``: ``(token_ids [1, 1], cache, index) -> (logits [1, 1, vocabulary], cache)``;
* ``prefill``: the same with ``[1, prefill_tokens]`` ids (a fixed-length chunk of the prompt).

Each writes its tokens' keys and values into the cache at ``index`` and attends over the cache up
to them. The cache has a fixed ``cache_length`` (prompt plus generated tokens) and travels in and
out as a float32 ``[1, layers, 2, cache_length, kv_heads, head_dim]`` array.
`tfxfer.export.decoder_runner.TFLiteDecoder` runs a file (prefill chunks, then decode steps);
`tfxfer.export.decoder_verification.decoder_gate` measures a file against the Keras model (next-token
top-1 agreement, perplexity change) and says whether it may ship; `save_decoder` writes the file that
passes. The int8 variants rewrite the float32 file: `tfxfer.export.int8_per_row` (one scale per row)
and `tfxfer.export.decoder_int8` (blocks of 32).

What was measured while building it (TF 2.21, keras-hub 0.32):

* converted through a SavedModel of the model's variables, the weights stay resource variables
  (VAR_HANDLE / READ_VARIABLE) that LiteRT never initialises (every output NaN), so the step of a
  two-signature file is frozen (variables -> constants) first; a decode-only file is converted
  from its one function, and the converter freezes it itself (SmolLM2, float32: 42 s, against 67 s
  when frozen first);
* the converter takes several functions only through a SavedModel (a decode-only file,
  ``prefill_tokens=None``, is converted straight from its one function: SmolLM2's two-signature
  conversion went past 18 GB of memory on this 23 GB machine and was stopped; its decode-only one
  fits), and a SavedModel of frozen
  functions saves only without custom gradients (``experimental_custom_gradients=False``). Both
  signatures call one frozen step of any length (two frozen steps held every weight twice in the
  SavedModel: SmolLM2's conversion then passed 20 GB and was killed); the converter stores each
  weight once and both signatures point at it;
* the output projection reuses the token embedding (tied models) once the converter is told not to
  fold the final norm's scale into it (``_experimental_disable_fuse_mul_and_fc``); dynamic int8
  still keeps two int8 copies (a per-tensor one for GATHER, a per-channel one for the projection).

SmolLM2-135M-Instruct, decode-only files, cache 128, gate on 8 held-out BBC articles (1024
positions), LiteRT 2 threads on the shared 2-core machine (timings noisy: other jobs ran),
conversion 90-134 s each (``benchmarks/causal_lm.py --export``,
``benchmarks/results/causal_lm_export.json``):

* float32: 514 MiB (the tied embedding once; 621 MiB before), agreement 1.000, perplexity
  +0.00 %, ~176 ms/token greedy: passes;
* float16: 257 MiB, top-1 agreement 0.999, perplexity change 0.00 %, ~123 ms/token: **passes**
  the gate; this is the variant to ship;
* dynamic int8 (the converter's): 158 MiB, ~50 ms/token, agreement 0.887, perplexity +2.54 %: **fails**;
* ``"int8_block"`` (`tfxfer.export.decoder_int8`: int8 blocks of 32 inputs, a scale per block, exact
  block offsets): 195 MiB, agreement 1.000, perplexity -0.00 %, max |logit diff| 2.3e-4, ~74 ms/token:
  **passes**, the smallest file that does. It matches the weights' own grid (the GGUF file is Q4_1
  with a Q8_0 embedding); off that grid (2 % noise on every weight, a stand-in for a merged
  fine-tune) a Keras simulation gives 0.973, so a fine-tuned model's file is left to the gate.

Why int8 fails, measured on the same 1024 positions (``results/causal_lm_export.json``, ``int8_study``):
per-row int8 rounding moves every weight matrix by ~0.8 % of its norm (float16: 0.02 %), evenly across
all 211 matrices (no outlier matrix to keep in float). With float32 arithmetic on those weights
(``"int8"``, 131 MiB) agreement is 0.944 (perplexity +0.27 %); with the embedding left float32, 0.959;
the hybrid kernels' per-row quantization of the activations takes it to 0.870 (output projection
float, ``"int8_hybrid"``) or 0.864 (every projection). So `save_decoder` asked for ``"int8"`` with
held-out texts ships the float16 file and says why (``fallback``); ``"int8_block"`` passes on the
pretrained SmolLM2.

Example:
    >>> from tfxfer.export.decoder_tflite import convert_decoder_tflite
    >>> from tfxfer.export.decoder_verification import decoder_gate
    >>> blob = convert_decoder_tflite(lm, cache_length=256, quantization="float16")  # doctest: +SKIP
    >>> decoder_gate(lm, blob, ["Some held-out text."], variant="float16").passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import os
import tempfile

from tfxfer.errors import ArgumentError, ExportError
from tfxfer.export.decoder_runner import SIGNATURES
from tfxfer.export.decoder_verification import decoder_gate
from tfxfer.export.int8_per_row import int8_weights
from tfxfer.utils.validate import check_float, check_int, check_safe_name

QUANTIZATIONS = (None, "float16", "int8", "int8_block", "int8_hybrid", "dynamic_int8")
#: `int8_weights`'s ``hybrid`` setting behind each of tfxfer's own int8 variants.
_INT8 = {"int8": "none", "int8_hybrid": "body"}


def _cache_shape(lm, cache_length):
    b = lm.backbone
    return [1, b.num_layers, 2, cache_length, b.num_key_value_heads, b.hidden_dim // b.num_query_heads]


def _step_body(backbone):
    """``(token_ids, cache, index) -> (logits, cache)`` over ``backbone``'s layers; a tied output
    projection is written as a product with the embedding table itself, so the file can store it once."""
    import tensorflow as tf

    embedding = backbone.token_embedding
    tied = getattr(embedding, "tie_weights", True)

    def body(token_ids, cache, index):
        table = embedding.embeddings
        x = tf.gather(table, token_ids)
        caches = []
        for i, layer in enumerate(backbone.transformer_layers):
            x, layer_cache = layer(x, self_attention_cache=cache[:, i, ...], self_attention_cache_update_index=index)
            caches.append(layer_cache)
        x = backbone.layer_norm(x)
        logits = tf.matmul(x, table, transpose_b=True) if tied else embedding(x, reverse=True)
        return tf.cast(logits, tf.float32), tf.stack(caches, axis=1)

    return body


def _signature(lm, cache_length, tokens):
    import tensorflow as tf

    return [tf.TensorSpec([1, tokens], tf.int32, name="token_ids"),
            tf.TensorSpec(_cache_shape(lm, cache_length), tf.float32, name="cache"),
            tf.TensorSpec([], tf.int32, name="index")]


def decoder_module(lm, *, cache_length: int, prefill_tokens: int | None = 16):
    """A ``tf.Module`` whose ``decode`` and ``prefill`` functions call one frozen (constants, no
    variables) step of any length, so a SavedModel of it holds the weights once."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    _check_float32(lm)
    cache_length = check_int("cache_length", cache_length, low=1, high=lm.context_length)
    sizes = {"decode": 1}
    if prefill_tokens is not None:
        sizes["prefill"] = check_int("prefill_tokens", prefill_tokens, low=2, high=cache_length)
    frozen = convert_variables_to_constants_v2(
        tf.function(_step_body(lm.backbone), input_signature=_signature(lm, cache_length, None)).get_concrete_function())
    module = tf.Module()
    for name, tokens in sizes.items():
        setattr(module, name, tf.function(_named_step(frozen, name), input_signature=_signature(lm, cache_length, tokens)))
    return module


def _check_float32(lm) -> None:
    """Refuse a model computing in another dtype than float32 before any conversion: a bfloat16 or
    float16 model (``load_causal_lm(..., dtype=...)``) converts to ops outside TFLite's builtins."""
    from tfxfer.causal_lm.language_model import LanguageModel
    from tfxfer.errors import ArgumentTypeError

    if not isinstance(lm, LanguageModel):
        raise ArgumentTypeError("lm", lm, "a tfxfer.causal_lm.LanguageModel (from load_causal_lm)")
    policy = getattr(lm.model, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", "float32")
    if compute != "float32":
        raise ArgumentError("lm", f"a model computing in {compute} (dtype policy {getattr(policy, 'name', policy)})",
                            "must compute in float32 to be converted (the file's float16 / int8 variants are "
                            "made from float32 weights)", hint="Load it with load_causal_lm(..., dtype='float32')")


def _check_save_arguments(lm, folder, fallback, gate_texts, gate_options, name) -> list:
    """Every argument of `save_decoder` checked before the conversion (minutes on a real model);
    returns ``fallback`` as a list."""
    import inspect

    from tfxfer.errors import ArgumentTypeError

    _check_float32(lm)
    if not isinstance(folder, (str, os.PathLike)):
        raise ArgumentTypeError("folder", folder, "a folder path (str or os.PathLike)")
    if not isinstance(name, str):
        raise ArgumentTypeError("name", name, "a str (the files' name in `folder`, e.g. 'decoder')")
    check_safe_name("name", name, use="it names <name>.tflite, <name>.tokenizer.json and <name>.json in `folder`")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ArgumentError("folder", os.fspath(folder), "must be a folder (or not exist yet); it is a file")
    if isinstance(fallback, (str, bytes)) or not isinstance(fallback, (list, tuple, type(None))):
        raise ArgumentTypeError("fallback", fallback, f"a list of variants among {QUANTIZATIONS}, e.g. ['float16', None]")
    fallback = list(fallback or ())
    for variant in fallback:
        if variant not in QUANTIZATIONS:
            raise ArgumentError("fallback", fallback, f"must hold variants among {QUANTIZATIONS}")
    known = [n for n in inspect.signature(decoder_gate).parameters if n not in ("lm", "model_content", "texts", "variant")]
    unknown = sorted(set(gate_options) - set(known))
    if unknown:
        raise ArgumentError("gate_options", f"unknown option(s) {unknown}", f"among decoder_gate's options {known}")
    limits = {"min_top1_agreement": dict(low=0.0, high=1.0), "max_perplexity_change": dict(low=0.0)}
    for key, bounds in limits.items():
        if gate_options.get(key) is not None:
            check_float(key, gate_options[key], **bounds)
    if gate_options.get("num_threads") is not None:
        check_int("num_threads", gate_options["num_threads"], low=1)
    if gate_texts is None:
        if gate_options:
            raise ArgumentError("gate_texts", None, f"must be given for the gate options {sorted(gate_options)} to apply "
                                "(without it no file is gated)")
        return fallback
    if isinstance(gate_texts, (str, bytes)) or not isinstance(gate_texts, (list, tuple)) or not gate_texts:
        raise ArgumentTypeError("gate_texts", gate_texts, "a non-empty list of held-out strings (or token id lists)")
    for i, text in enumerate(gate_texts):
        ids = lm.tokenizer.encode(text, name=f"gate_texts[{i}]") if isinstance(text, str) else text
        if not hasattr(ids, "__len__") or len(ids) < 2:
            raise ArgumentError(f"gate_texts[{i}]", text, "must hold at least 2 tokens")
    return fallback


def _decode_function(lm, cache_length):
    """The ``decode`` step over the model's variables, for a decode-only file. Converted from one
    function, the converter freezes the variables itself (no VAR_HANDLE is left in the file), which
    is faster than freezing first: SmolLM2-135M, float32, 42 s against 67 s."""
    import tensorflow as tf

    _check_float32(lm)
    cache_length = check_int("cache_length", cache_length, low=1, high=lm.context_length)
    step = tf.function(_named_step(_step_body(lm.backbone), "decode"), input_signature=_signature(lm, cache_length, 1))
    return step.get_concrete_function()


def _named_step(frozen, name):
    """A function called ``name`` (the converter names the signature after it) around ``frozen``."""

    def step(token_ids, cache, index):
        logits, cache = frozen(token_ids, cache, index)
        return {"logits": logits, "cache": cache}

    step.__name__ = name
    return step


def convert_decoder_tflite(lm, *, cache_length: int, prefill_tokens: int | None = 16, quantization=None) -> bytes:
    """TFLite bytes of ``lm`` (builtin ops only) with a ``decode`` and a ``prefill`` signature.

    Args:
        cache_length: the longest sequence (prompt + generated) the file serves.
        prefill_tokens: ids per ``prefill`` call (None: a decode-only file).
        quantization: None (float32); "float16" (float16 weights); "int8" (int8 weights with one
            scale per row, float32 arithmetic: `int8_weights` with ``hybrid="none"``);
            "int8_hybrid" (the same file, the transformer blocks' projections on LiteRT's hybrid
            int8 kernels, the output projection float: ``hybrid="body"``); "int8_block" (int8 weights
            in blocks of 32 inputs, a scale per block and, for projections, an exact block offset:
            `tfxfer.export.decoder_int8.int8_block_weights`, float32 arithmetic); "dynamic_int8" (the
            converter's dynamic-range quantization: per-tensor int8 embedding, every projection
            hybrid).

    Raises:
        ExportError: the converter needs an op outside TFLite's builtins.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ArgumentError("quantization", quantization, f"must be one of {QUANTIZATIONS}")
    with tempfile.TemporaryDirectory(prefix="tfxfer-decoder-") as root:
        if prefill_tokens is None:  # one function: converted straight from it (far less memory)
            converter = tf.lite.TFLiteConverter.from_concrete_functions([_decode_function(lm, cache_length)])
        else:
            module = decoder_module(lm, cache_length=cache_length, prefill_tokens=prefill_tokens)
            names = [n for n in SIGNATURES if hasattr(module, n)]
            path = os.path.join(root, "saved_model")
            tf.saved_model.save(module, path, signatures={n: getattr(module, n).get_concrete_function() for n in names},
                                options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))
            converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=names)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter._experimental_disable_fuse_mul_and_fc = True  # keep the tied projection == the embedding
        if quantization in ("float16", "dynamic_int8"):  # tfxfer's int8 variants rewrite the float32 file
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        try:
            blob = converter.convert()
        except Exception as e:  # the converter raises ConverterError and plain exceptions alike
            raise ExportError(f"The decoder does not convert to TFLite with builtin ops only: {e}") from e
    if quantization == "int8_block":
        from tfxfer.export.decoder_int8 import int8_block_weights

        return int8_block_weights(blob)
    return int8_weights(blob, hybrid=_INT8[quantization]) if quantization in _INT8 else blob


#: ``format`` of the sidecar `save_decoder` writes beside the file (read by ``export/llm_runner.py``).
SIDECAR_FORMAT = "tfxfer-llm-tflite"


def save_decoder(lm, folder: str, *, cache_length: int, prefill_tokens: int | None = 16, quantization=None,
                 gate_texts=None, fallback=("float16", None), name: str = "decoder", **gate_options) -> dict:
    """Write ``<name>.tflite``, ``<name>.tokenizer.json`` and the sidecar ``<name>.json`` into ``folder``:
    everything ``export/llm_runner.py`` needs to generate text without TensorFlow.

    With ``gate_texts`` (held-out strings) each file is measured by `decoder_gate` before it is
    written, and only a passing file ships: when the ``quantization`` asked for fails, the
    ``fallback`` variants are tried in order (default float16, then float32) and the first that
    passes is written instead, with a warning; the sidecar records what was asked for and why each
    rejected variant failed (``"requested"``, ``"rejected"``). If none passes, the last one tried is
    written with its failed report (the runner refuses it unless told otherwise).

    ``name`` names the three files: letters, digits, '.', '_' or '-' (no path separator, no leading
    dot); it is checked, with every other argument, before the conversion.

    Returns:
        ``{"model", "sidecar", "tokenizer"}`` paths, ``"quantization"`` (the variant written),
        ``"gate"`` (its report, or None without ``gate_texts``) and ``"rejected"`` (the reports of
        the variants that failed).
    """
    import hashlib
    import warnings

    from tfxfer.utils.atomic import atomic_write_text

    if quantization not in QUANTIZATIONS:
        raise ArgumentError("quantization", quantization, f"must be one of {QUANTIZATIONS}")
    fallback = _check_save_arguments(lm, folder, fallback, gate_texts, gate_options, name)
    candidates = [quantization] + ([v for v in fallback if v != quantization] if gate_texts is not None else [])
    report, rejected = None, []
    for variant in candidates:
        blob = convert_decoder_tflite(lm, cache_length=cache_length, prefill_tokens=prefill_tokens,
                                      quantization=variant)
        if gate_texts is None:
            break
        report = decoder_gate(lm, blob, gate_texts, variant=variant or "float32", **gate_options)
        if report.passed:
            break
        if variant is not candidates[-1]:
            rejected.append(report)
    if rejected and report.passed:
        warnings.warn(f"{rejected[0].variant} failed its gate ({'; '.join(rejected[0].failures)}); "
                      f"{report.variant} passed and was written instead", UserWarning, stacklevel=2)
    os.makedirs(folder, exist_ok=True)
    model_path = os.path.join(folder, f"{name}.tflite")
    with open(model_path + ".tmp", "wb") as f:
        f.write(blob)
    os.replace(model_path + ".tmp", model_path)
    # named after the file (two decoders in one folder keep their own), its sha256 in the sidecar
    tokenizer_path = os.path.join(folder, f"{name}.tokenizer.json")
    lm.tokenizer.save(tokenizer_path)
    with open(tokenizer_path, "rb") as f:
        tokenizer_sha256 = hashlib.sha256(f.read()).hexdigest()
    eos = lm.tokenizer.eos_token_id
    sidecar = {"format": SIDECAR_FORMAT, "version": 1, "model": os.path.basename(model_path),
               "sha256": hashlib.sha256(blob).hexdigest(), "tokenizer": os.path.basename(tokenizer_path),
               "tokenizer_sha256": tokenizer_sha256,
               "stop_token_ids": [] if eos is None else [int(eos)], "cache_length": int(cache_length),
               "prefill_tokens": prefill_tokens, "quantization": variant or "float32",
               "requested": quantization or "float32", "source": lm.name,
               "gate": None if report is None else report.to_dict(),
               "rejected": [{"variant": r.variant, "failures": r.failures} for r in rejected]}
    sidecar_path = os.path.join(folder, f"{name}.json")
    atomic_write_text(sidecar_path, json.dumps(sidecar, indent=2))
    return {"model": model_path, "sidecar": sidecar_path, "tokenizer": tokenizer_path, "quantization": variant,
            "gate": report, "rejected": rejected}
