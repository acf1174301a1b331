"""A `LanguageModel` as one TFLite file (builtin ops only): prefill and decode signatures, explicit KV cache.

The file holds two signatures over the same weights:

* ``decode``: ``(token_ids [1, 1], cache, index) -> (logits [1, 1, vocabulary], cache)``;
* ``prefill``: the same with ``[1, prefill_tokens]`` ids (a fixed-length chunk of the prompt).

Each writes its tokens' keys and values into the cache at ``index`` and attends over the cache up
to them. The cache has a fixed ``cache_length`` (prompt plus generated tokens) and travels in and
out as a float32 ``[1, layers, 2, cache_length, kv_heads, head_dim]`` array. `TFLiteDecoder` runs a
file (prefill chunks, then decode steps); `decoder_gate` measures a file against the Keras model
(next-token top-1 agreement, perplexity change) and says whether it may ship.

What was measured while building it (TF 2.21, keras-hub 0.32):

* converted straight from the model's variables, the weights stay resource variables
  (VAR_HANDLE / READ_VARIABLE) that LiteRT never initialises (every output NaN), so each step is
  frozen (variables -> constants) first;
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
    >>> from tfxfer.export.decoder_tflite import convert_decoder_tflite, decoder_gate
    >>> blob = convert_decoder_tflite(lm, cache_length=256, quantization="float16")  # doctest: +SKIP
    >>> decoder_gate(lm, blob, ["Some held-out text."], variant="float16").passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, ExportError, ModelError
from tfxfer.utils.validate import check_float, check_int

QUANTIZATIONS = (None, "float16", "int8", "int8_block", "int8_hybrid", "dynamic_int8")
#: `int8_weights`'s ``hybrid`` setting behind each of tfxfer's own int8 variants.
_INT8 = {"int8": "none", "int8_hybrid": "body"}
SIGNATURES = ("decode", "prefill")


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


def _named_step(frozen, name):
    """A function called ``name`` (the converter names the signature after it) around ``frozen``."""

    def step(token_ids, cache, index):
        logits, cache = frozen(token_ids, cache, index)
        return {"logits": logits, "cache": cache}

    step.__name__ = name
    return step


#: What `int8_weights` does with each kind of projection, by ``hybrid`` setting.
HYBRID = ("none", "body", "all")


def int8_weights(model_content: bytes, *, hybrid: str = "none", embedding: bool = True,
                 min_elements: int = 1024) -> bytes:
    """A float32 decoder (or text-model) file with every large weight stored as int8, one symmetric scale per row.

    `tfxfer.export.text_tflite.convert_text_tflite` makes text models' ``dynamic`` files with ``hybrid="body"``.

    Each constant float32 matrix read by FULLY_CONNECTED (as its weights) or GATHER (the token
    embedding) becomes an int8 tensor with per-channel (per output row) scales. Where the weight is
    to stay a float computation, one DEQUANTIZE op turns it back into float32: LiteRT runs a
    DEQUANTIZE of a constant once, when the file loads, so the file is ~4x smaller and the
    arithmetic is float32 (only the weights' rounding differs). ``hybrid`` picks the projections
    that instead run LiteRT's hybrid int8 kernels (the input is quantized per row on every call:
    faster, less exact):

    * "none": none (weight-only int8);
    * "body": the transformer blocks' projections; an output projection (as many rows as a gathered
      table, i.e. vocabulary-sized) stays float;
    * "all": every projection, the output one included.

    ``embedding=False`` leaves the token embedding (and a tied output projection) float32.
    Tensors shared by several ops (the tied embedding / output projection) are stored once.
    """
    import flatbuffers  # noqa: F401 - the tflite schema's object API needs it
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    from tfxfer.export.decoder_int8 import weight_uses

    if hybrid not in HYBRID:
        raise ArgumentError("hybrid", hybrid, f"must be one of {HYBRID}")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    fc, gather = fb.BuiltinOperator.FULLY_CONNECTED, fb.BuiltinOperator.GATHER
    code_of = [c.builtinCode for c in model.operatorCodes]
    uses = weight_uses(model, min_elements)  # float32 weight buffer -> [(graph, op, input position)]
    vocabulary = {int(graph.tensors[op.inputs[0]].shape[0]) for graph in model.subgraphs
                  for op in graph.operators if code_of[op.opcodeIndex] == gather}
    dequantize_ops = {id(graph): [] for graph in model.subgraphs}
    for buffer_index, consumers in uses.items():
        if not {(code_of[op.opcodeIndex], pos) for _, op, pos in consumers} <= {(fc, 1), (gather, 0)}:
            continue  # a constant some other op reads: left as it is
        if not embedding and any(code_of[op.opcodeIndex] == gather for _, op, _ in consumers):
            continue
        graph, op, pos = consumers[0]
        shape = [int(d) for d in graph.tensors[op.inputs[pos]].shape]
        weights = np.frombuffer(model.buffers[buffer_index].data.tobytes(), np.float32).reshape(shape)
        scale = np.abs(weights).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        model.buffers[buffer_index].data = np.clip(np.round(weights / scale[:, None]), -127, 127).astype(
            np.int8).reshape(-1).view(np.uint8)  # the same buffer, now int8
        per_graph = {}  # id(graph) -> [int8 tensor, float tensor or None]
        for graph, op, pos in consumers:
            template = graph.tensors[op.inputs[pos]]
            template.buffer = 0  # the float tensor is read by no op once this loop is done
            if id(graph) not in per_graph:
                per_graph[id(graph)] = [_add_tensor(graph, template, fb.TensorType.INT8, b"/int8", buffer_index,
                                                    scale), None]
            tensors = per_graph[id(graph)]
            if code_of[op.opcodeIndex] == fc and (hybrid == "all" or (hybrid == "body" and shape[0] not in vocabulary)):
                op.inputs[pos] = tensors[0]
                op.builtinOptions.asymmetricQuantizeInputs = True
                continue
            if tensors[1] is None:
                tensors[1] = _add_tensor(graph, template, fb.TensorType.FLOAT32, b"/dequantized", 0)
                dequantize_ops[id(graph)].append(_operator(model, fb.BuiltinOperator.DEQUANTIZE, 2,
                                                           [tensors[0]], [tensors[1]]))
            op.inputs[pos] = tensors[1]
    for graph in model.subgraphs:  # their inputs are constants: first is a valid order
        graph.operators = dequantize_ops[id(graph)] + list(graph.operators)
    if hybrid != "none":
        _opcode(model, fc, 12)  # hybrid, per-channel, asymmetric inputs
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _add_tensor(graph, template, dtype, suffix, buffer, scale=None):
    """A new tensor of ``template``'s shape in ``graph`` (``buffer`` 0: computed at run time); with
    ``scale``, symmetric per-row int8 quantization parameters. Returns its index."""
    from tensorflow.lite.python import schema_py_generated as fb

    tensor = fb.TensorT()
    tensor.shape, tensor.type, tensor.buffer = np.asarray(template.shape, np.int32), dtype, buffer
    tensor.name = (template.name or b"weights") + suffix
    if scale is not None:
        tensor.quantization = fb.QuantizationParametersT()
        tensor.quantization.scale = scale.astype(np.float32).tolist()
        tensor.quantization.zeroPoint = [0] * len(scale)
        tensor.quantization.quantizedDimension = 0
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _opcode(model, builtin, version):
    from tensorflow.lite.python import schema_py_generated as fb

    for i, code in enumerate(model.operatorCodes):
        if code.builtinCode == builtin:
            code.version = max(code.version, version)
            return i
    code = fb.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _operator(model, builtin, version, inputs, outputs):
    from tensorflow.lite.python import schema_py_generated as fb

    op = fb.OperatorT()
    op.opcodeIndex = _opcode(model, builtin, version)
    op.inputs, op.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
    return op


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
    module = decoder_module(lm, cache_length=cache_length, prefill_tokens=prefill_tokens)
    names = [n for n in SIGNATURES if hasattr(module, n)]
    with tempfile.TemporaryDirectory(prefix="tfxfer-decoder-") as root:
        if prefill_tokens is None:  # one function: converted straight from it (far less memory)
            converter = tf.lite.TFLiteConverter.from_concrete_functions([module.decode.get_concrete_function()])
        else:
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


class TFLiteDecoder:
    """Runs a `convert_decoder_tflite` file in LiteRT: ``reset()``, then ``feed(ids) -> logits``."""

    def __init__(self, model_content: bytes, *, num_threads: int | None = None):
        """``model_content``: the bytes `convert_decoder_tflite` returned; `ArgumentTypeError` for anything
        else (a path, a string), `ModelError` naming their size when LiteRT cannot load them (truncated,
        corrupt, not a .tflite file)."""
        if not isinstance(model_content, (bytes, bytearray, memoryview)):
            raise ArgumentTypeError("model_content", model_content, "the bytes of a .tflite file "
                                    "(what convert_decoder_tflite returns; read a file with open(path, 'rb'))")
        model_content = bytes(model_content)
        num_threads = check_int("num_threads", num_threads, low=-1, allow_none=True)
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - a declared dependency
            from tensorflow.lite.python.interpreter import Interpreter
        try:
            self._interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:  # LiteRT: "The model is not a valid Flatbuffer buffer", ...
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200].rstrip(".")
            raise ModelError(f"`model_content` is not a loadable .tflite file (truncated or corrupt?): {reason}. "
                             f"Received: model_content=<{len(model_content)} bytes>") from exc
        self._runners = _signature_runners(self._interpreter)
        details = self._runners["decode"].get_input_details()
        self.cache_shape = tuple(int(d) for d in details["cache"]["shape"])
        self.prefill_tokens = (int(self._runners["prefill"].get_input_details()["token_ids"]["shape"][1])
                               if "prefill" in self._runners else None)
        self.vocabulary_size = int(self._runners["decode"].get_output_details()["logits"]["shape"][-1])
        self.reset()

    @property
    def cache_length(self) -> int:
        return self.cache_shape[3]

    def reset(self) -> None:
        """Forget every token seen so far."""
        self._cache = np.zeros(self.cache_shape, dtype=np.float32)
        self.position = 0

    def _run(self, name, ids):
        out = self._runners[name](token_ids=np.asarray([ids], dtype=np.int32), cache=self._cache,
                                  index=np.asarray(self.position, dtype=np.int32))
        self._cache = out["cache"]
        self.position += len(ids)
        return out["logits"][0]

    def feed(self, token_ids) -> np.ndarray:
        """Feed ids (prefill chunks while whole chunks remain, then decode steps); return their
        next-token logits ``(len(token_ids), vocabulary)``.

        Raises:
            ArgumentTypeError: ``token_ids`` is not a list / array of ints (a string, floats).
            ArgumentError: an id outside ``[0, vocabulary_size)``, or too many ids for the cache.
        """
        from tfxfer.causal_lm.tokenizer import check_token_ids

        if isinstance(token_ids, (list, tuple, np.ndarray)) and len(token_ids):
            array = np.asarray(token_ids, dtype=object) if not isinstance(token_ids, np.ndarray) else token_ids
            if array.ndim > 1:  # [[ids]]: one row, as before
                token_ids = array.reshape(-1)
        ids = check_token_ids("token_ids", token_ids, self.vocabulary_size)
        if not ids:
            raise ArgumentError("token_ids", token_ids, "must hold at least one id")
        if self.position + len(ids) > self.cache_length:
            raise ArgumentError("token_ids", f"{len(ids)} ids",
                                f"would pass the cache length {self.cache_length} (at {self.position})")
        chunk, out, i = self.prefill_tokens, [], 0
        while chunk and len(ids) - i >= chunk:
            out.append(self._run("prefill", ids[i: i + chunk]))
            i += chunk
        out.extend(self._run("decode", [t]) for t in ids[i:])
        return np.concatenate(out)


class _PlainRunner:
    """A signature runner's interface over a file without signatures (one function converted
    straight from a frozen graph): inputs found by name, outputs by rank."""

    def __init__(self, interpreter):
        self.interpreter = interpreter
        interpreter.allocate_tensors()
        inputs = interpreter.get_input_details()
        outputs = interpreter.get_output_details()
        self.inputs = {key: _one(inputs, lambda d: key in d["name"], f"input named {key!r}")
                       for key in ("token_ids", "cache", "index")}
        self.outputs = {"cache": _one(outputs, lambda d: len(d["shape"]) == 6, "cache output (rank 6)"),
                        "logits": _one(outputs, lambda d: len(d["shape"]) == 3, "logits output (rank 3)")}

    def get_input_details(self):
        return self.inputs

    def get_output_details(self):
        return self.outputs

    def __call__(self, **feeds):
        for key, value in feeds.items():
            self.interpreter.set_tensor(self.inputs[key]["index"], value)
        self.interpreter.invoke()
        return {key: self.interpreter.get_tensor(d["index"]) for key, d in self.outputs.items()}


def _one(details: list, test, what: str) -> dict:
    """The first tensor of ``details`` passing ``test``; `ModelError` when a file is not a decoder."""
    found = next((d for d in details if test(d)), None)
    if found is None:
        raise ModelError(f"`model_content` is a .tflite file but not a decoder: it has no {what} (has "
                         f"{[d['name'] for d in details]}); pass a file convert_decoder_tflite wrote")
    return found


def _signature_runners(interpreter) -> dict:
    """``{"decode": runner[, "prefill": runner]}``; a decode-only file converted from one function
    has no signature (`_PlainRunner`)."""
    signatures = interpreter.get_signature_list()
    if not signatures:
        return {"decode": _PlainRunner(interpreter)}
    if "decode" not in signatures:
        raise ArgumentError("model_content", "a TFLite file", f"must hold a 'decode' signature (has {sorted(signatures)})")
    return {name: interpreter.get_signature_runner(name) for name in signatures if name in SIGNATURES}


def _log_likelihood(logits, ids):
    logits = logits[:-1].astype(np.float64)
    top = logits.max(-1, keepdims=True)
    log_probs = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
    return log_probs[np.arange(len(ids) - 1), ids[1:]]


def _keras_logits(lm, ids):
    x = np.asarray([ids], dtype=np.int32)
    return np.asarray(lm.model({"token_ids": x, "padding_mask": np.ones_like(x, bool)}, training=False),
                      dtype=np.float32)[0]


def decoder_agreement(lm, model_content: bytes, token_ids) -> dict:
    """Feed ``token_ids`` through the TFLite file and compare every position's next-token logits
    with the Keras model on the whole sequence.

    Returns ``top1_agreement`` (fraction of positions with the same most likely next token),
    ``max_abs_diff`` (largest logit difference) and ``positions``.
    """
    from tfxfer.causal_lm.tokenizer import check_token_ids

    ids = check_token_ids("token_ids", token_ids, lm.backbone.vocabulary_size)
    decoder = TFLiteDecoder(model_content)
    got = decoder.feed(ids)
    expected = _keras_logits(lm, ids)
    return {"top1_agreement": float(np.mean(got.argmax(-1) == expected.argmax(-1))),
            "max_abs_diff": float(np.max(np.abs(got - expected))), "positions": len(ids)}


@dataclasses.dataclass
class DecoderGateReport:
    """`decoder_gate`'s measurements of one file and its verdict."""

    variant: str
    passed: bool
    failures: list
    positions: int
    top1_agreement: float
    max_abs_diff: float
    perplexity_keras: float
    perplexity_tflite: float
    perplexity_change: float
    size_mib: float
    ms_per_token: float
    thresholds: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        lines = [f"{self.variant}: {'PASS' if self.passed else 'FAIL'}  top-1 agreement {self.top1_agreement:.4f} "
                 f"on {self.positions} positions, perplexity {self.perplexity_keras:.3f} -> "
                 f"{self.perplexity_tflite:.3f} ({100 * self.perplexity_change:+.2f} %), max |logit diff| "
                 f"{self.max_abs_diff:.3g}, {self.size_mib:.1f} MiB, {self.ms_per_token:.1f} ms/token (decode)"]
        lines += [f"  {self.variant}: {failure}" for failure in self.failures]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def decoder_gate(lm, model_content: bytes, texts, *, variant: str = "", min_top1_agreement: float | None = None,
                 max_perplexity_change: float = 0.02, num_threads: int | None = None) -> DecoderGateReport:
    """Measure a decoder file against ``lm`` on held-out ``texts`` and apply the limits.

    Each text is tokenized (cut to the file's cache length) and fed through the file from an empty
    cache; every position's next-token argmax is compared with the Keras model's, and both models'
    perplexities are computed from their own logits.

    Args:
        texts: held-out strings (or lists of token ids).
        variant: a name for the report ("float32", "float16", "dynamic_int8").
        min_top1_agreement: fraction of positions (0-1); default the export gate's dynamic-range
            limit (`tfxfer.export.gate.DEFAULT_THRESHOLDS`, 0.99).
        max_perplexity_change: largest relative perplexity change (0.02 = 2 %).
    """
    from tfxfer.export.gate import DEFAULT_THRESHOLDS

    if min_top1_agreement is None:
        min_top1_agreement = DEFAULT_THRESHOLDS["dynamic"].min_top1_agreement
    min_top1_agreement = check_float("min_top1_agreement", min_top1_agreement, low=0.0, high=1.0)
    max_perplexity_change = check_float("max_perplexity_change", max_perplexity_change, low=0.0)
    if isinstance(texts, str) or not len(texts):
        raise ArgumentError("texts", texts, "must be a non-empty list of held-out strings")
    decoder = TFLiteDecoder(model_content, num_threads=num_threads)
    agree, positions, max_diff, ll_keras, ll_tflite, decode_seconds, decode_steps = 0, 0, 0.0, [], [], 0.0, 0
    from tfxfer.causal_lm.tokenizer import check_token_ids

    for i, text in enumerate(texts):
        ids = (lm.tokenizer.encode(text, name=f"texts[{i}]") if isinstance(text, str)
               else check_token_ids(f"texts[{i}]", text, min(lm.backbone.vocabulary_size, decoder.vocabulary_size)))
        ids = ids[: decoder.cache_length]
        if len(ids) < 2:
            raise ArgumentError("texts", text, "must hold at least 2 tokens each")
        decoder.reset()
        got = decoder.feed(ids[:-1])
        start = time.perf_counter()
        got = np.concatenate([got, decoder.feed(ids[-1:])])
        decode_seconds, decode_steps = decode_seconds + time.perf_counter() - start, decode_steps + 1
        expected = _keras_logits(lm, ids)
        agree += int(np.sum(got.argmax(-1) == expected.argmax(-1)))
        positions += len(ids)
        max_diff = max(max_diff, float(np.max(np.abs(got - expected))))
        ll_keras.append(_log_likelihood(expected, ids))
        ll_tflite.append(_log_likelihood(got, ids))
    ppl_keras = float(np.exp(-np.concatenate(ll_keras).mean()))
    ppl_tflite = float(np.exp(-np.concatenate(ll_tflite).mean()))
    change = ppl_tflite / ppl_keras - 1.0
    agreement = agree / positions
    failures = []
    if agreement < min_top1_agreement:
        failures.append(f"top-1 agreement {agreement:.4f} < {min_top1_agreement}")
    if abs(change) > max_perplexity_change:
        failures.append(f"perplexity change {100 * change:+.2f} % beyond +/-{100 * max_perplexity_change:.1f} %")
    return DecoderGateReport(
        variant=variant, passed=not failures, failures=failures, positions=positions, top1_agreement=agreement,
        max_abs_diff=max_diff, perplexity_keras=ppl_keras, perplexity_tflite=ppl_tflite, perplexity_change=change,
        size_mib=len(model_content) / 2**20, ms_per_token=1000 * decode_seconds / decode_steps,
        thresholds={"min_top1_agreement": min_top1_agreement, "max_perplexity_change": max_perplexity_change})


#: ``format`` of the sidecar `save_decoder` writes beside the file (read by ``export/llm_runner.py``).
SIDECAR_FORMAT = "tfxfer-llm-tflite"


def save_decoder(lm, folder: str, *, cache_length: int, prefill_tokens: int | None = 16, quantization=None,
                 gate_texts=None, fallback=("float16", None), name: str = "decoder", **gate_options) -> dict:
    """Write ``<name>.tflite``, ``tokenizer.json`` and the sidecar ``<name>.json`` into ``folder``:
    everything ``export/llm_runner.py`` needs to generate text without TensorFlow.

    With ``gate_texts`` (held-out strings) each file is measured by `decoder_gate` before it is
    written, and only a passing file ships: when the ``quantization`` asked for fails, the
    ``fallback`` variants are tried in order (default float16, then float32) and the first that
    passes is written instead, with a warning; the sidecar records what was asked for and why each
    rejected variant failed (``"requested"``, ``"rejected"``). If none passes, the last one tried is
    written with its failed report (the runner refuses it unless told otherwise).

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
    fallback = list(fallback or ())
    for variant in fallback:
        if variant not in QUANTIZATIONS:
            raise ArgumentError("fallback", fallback, f"must hold variants among {QUANTIZATIONS}")
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
    tokenizer_path = os.path.join(folder, "tokenizer.json")
    lm.tokenizer.save(tokenizer_path)
    eos = lm.tokenizer.eos_token_id
    sidecar = {"format": SIDECAR_FORMAT, "version": 1, "model": os.path.basename(model_path),
               "sha256": hashlib.sha256(blob).hexdigest(), "tokenizer": "tokenizer.json",
               "stop_token_ids": [] if eos is None else [int(eos)], "cache_length": int(cache_length),
               "prefill_tokens": prefill_tokens, "quantization": variant or "float32",
               "requested": quantization or "float32", "source": lm.name,
               "gate": None if report is None else report.to_dict(),
               "rejected": [{"variant": r.variant, "failures": r.failures} for r in rejected]}
    sidecar_path = os.path.join(folder, f"{name}.json")
    atomic_write_text(sidecar_path, json.dumps(sidecar, indent=2))
    return {"model": model_path, "sidecar": sidecar_path, "tokenizer": tokenizer_path, "quantization": variant,
            "gate": report, "rejected": rejected}
