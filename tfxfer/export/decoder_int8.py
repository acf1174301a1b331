"""Block-wise int8 weights for a float32 decoder file (`tfxfer.export.decoder_tflite`), builtin ops only.

`int8_block_weights` stores every large FULLY_CONNECTED / GATHER matrix as int8 codes with one
float32 scale per block of ``block`` consecutive inputs of a row (GGUF's Q8_0 / Q8_1 layout):

* **symmetric** blocks: ``w = scale * q``, ``q`` in [-127, 127];
* **asymmetric** blocks: ``w = scale * q + offset``, ``q`` in [-128, 127], the
  block's minimum mapped exactly (255 steps over the block's range instead of 254 over twice its
  largest magnitude). The offsets never enter the int8 tensor: ``W x = dequantize(Q) x + C s(x)``,
  where ``s(x)`` sums ``x`` over each block (one FULLY_CONNECTED with a 0/1 matrix) and ``C``
  ``[rows, blocks]`` holds the offsets (another, tiny, FULLY_CONNECTED), added to the output; a
  GATHER (the token embedding) gathers its rows' offsets too and spreads them over their blocks.

Each matrix takes whichever of the two has the smaller rounding error. In the file, a ``[rows, cols]``
matrix becomes ``cols / block`` int8 ``[rows, block]`` matrices whose per-row (per-axis) scales are
the block scales, each behind one DEQUANTIZE (LiteRT runs it once, at load; XNNPACK keeps the int8
weights): a FULLY_CONNECTED becomes a SPLIT of its input, one FULLY_CONNECTED per block and ADDs; a
GATHER becomes one GATHER per block and a CONCATENATION. Only builtin ops; the arithmetic stays
float32, so only the weights' rounding differs from the float32 file. (A first layout, one
``[rows * blocks, block]`` tensor RESHAPEd back to ``[rows, cols]``, ran at ~221 ms per SmolLM2 token
against ~91 for this one, 1 thread: LiteRT copied the reshaped float32 weights on every call.)

Why it exists: per-row int8 (`int8_per_row.int8_weights`) moves SmolLM2-135M's next-token argmax at
5.6 % of held-out positions and symmetric blocks of 32 at 2.1 %, both short of the 99 % gate. The
pretrained SmolLM2 weights come from a GGUF file whose projections are Q4_1 (16 levels between a
block minimum and maximum, blocks of 32 inputs) and whose embedding is Q8_0 (symmetric blocks of 32):
on that grid the asymmetric blocks of 32 (``255 = 15 * 17`` steps) and the symmetric embedding blocks
reproduce every weight to float32 rounding (largest relative error 7e-8), so the file agrees with
Keras like the float32 one: on the gate's 1,024 held-out positions (8 BBC articles) agreement 1.000,
perplexity -0.00 %, 195 MiB, ~74 ms per token on 2 threads (``benchmarks/results/causal_lm_export.json``). Weights off such a grid (after a fine-tune merged into
them) keep the ordinary rounding error of 8-bit blocks of 32 (at most half a step, a step being the
block's range / 255), and the gate decides.

Example:
    >>> from tfxfer.export.decoder_int8 import int8_block_weights
    >>> small = int8_block_weights(float32_decoder_bytes, block=32)     # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.utils.validate import check_int

#: what a matrix may be quantized as (``"auto"``: the smaller rounding error of the two)
SCHEMES = ("auto", "symmetric")


def quantize_blocks(weights: np.ndarray, block: int, *, asymmetric: bool):
    """``(codes int8 [rows * blocks, block], scales float32 [rows * blocks], offsets float64 [rows, blocks]
    or None, dequantized float64 [rows, cols])`` of a ``[rows, cols]`` matrix, ``cols`` a multiple of ``block``.

    Example:
        >>> q, s, c, w = quantize_blocks(np.arange(8.0).reshape(1, 8), 4, asymmetric=True)
        >>> bool(np.allclose(w, np.arange(8.0).reshape(1, 8)))
        True
    """
    rows, cols = weights.shape
    blocks = weights.reshape(rows * (cols // block), block).astype(np.float64)
    if asymmetric:
        low, high = blocks.min(axis=1), blocks.max(axis=1)
        scale = (high - low) / 255.0
        scale[scale == 0] = 1.0
        scale = scale.astype(np.float32).astype(np.float64)
        codes = np.clip(np.round((blocks - low[:, None]) / scale[:, None]), 0, 255) - 128
        offsets = (low + 128.0 * scale).astype(np.float32).astype(np.float64)  # as stored
    else:
        scale = np.abs(blocks).max(axis=1) / 127.0
        scale[scale == 0] = 1.0
        codes = np.clip(np.round(blocks / scale[:, None]), -127, 127)
        offsets = None
    scale32 = scale.astype(np.float32)
    dequantized = scale32.astype(np.float64)[:, None] * codes
    if offsets is not None:
        dequantized = dequantized + offsets[:, None]
        offsets = offsets.reshape(rows, cols // block)
    return codes.astype(np.int8), scale32, offsets, dequantized.reshape(rows, cols)


def _relative_error(weights, dequantized):
    norm = float(np.linalg.norm(weights))
    return float(np.linalg.norm(dequantized - weights)) / norm if norm else 0.0


def int8_block_weights(model_content: bytes, *, block: int = 32, scheme: str = "auto",
                       min_elements: int = 1024, report: dict | None = None) -> bytes:
    """A float32 decoder file with every large matrix stored as block-wise int8 (see the module docstring).

    Args:
        model_content: a float32 file from `tfxfer.export.decoder_tflite.convert_decoder_tflite`.
        block: inputs per block (per row); a matrix whose input size it does not divide gets one
            block per row.
        scheme: "auto" (each matrix symmetric or asymmetric, whichever rounds it closer) or
            "symmetric" (every matrix symmetric: no offset correction ops).
        min_elements: smaller matrices stay float32.
        report: a dict to fill with ``{tensor name: {"scheme", "block", "shape", "relative_error"}}``
            (``relative_error``: ``||W_int8 - W|| / ||W||``).

    Raises:
        ArgumentError: a bad ``block`` / ``scheme`` / ``min_elements``.
    """
    import flatbuffers  # noqa: F401 - the tflite schema's object API needs it
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    block = check_int("block", block, low=2)
    min_elements = check_int("min_elements", min_elements, low=1)
    if scheme not in SCHEMES:
        raise ArgumentError("scheme", scheme, f"must be one of {SCHEMES}")
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_content))
    fc, gather = fb.BuiltinOperator.FULLY_CONNECTED, fb.BuiltinOperator.GATHER
    code_of = [c.builtinCode for c in model.operatorCodes]
    uses = weight_uses(model, min_elements)
    first = {id(graph): [] for graph in model.subgraphs}  # DEQUANTIZE ops (of constants: run once, at load)
    replaced = {}  # id(op) -> the ops computing its output from the int8 blocks
    shared = {}  # (id(graph), kind, cols, block) -> index of a constant tensor shared by several ops
    for buffer_index, consumers in uses.items():
        if not all(_plain(fb, code_of[op.opcodeIndex], op, pos) for _, op, pos in consumers):
            continue  # a constant some other op (or a fused activation) reads: left as it is
        graph, op, pos = consumers[0]
        shape = [int(d) for d in graph.tensors[op.inputs[pos]].shape]
        rows, cols = shape
        size = block if cols % block == 0 else cols
        weights = np.frombuffer(model.buffers[buffer_index].data.tobytes(), np.float32).reshape(shape)
        options = [False, True] if scheme == "auto" else [False]
        results = [quantize_blocks(weights, size, asymmetric=a) for a in options]
        errors = [_relative_error(weights, r[3]) for r in results]
        choice = int(np.argmin(errors))
        codes, scales, offsets, _ = results[choice]
        name = graph.tensors[op.inputs[pos]].name or b"weights"
        if report is not None:
            report[name.decode(errors="replace")] = {
                "scheme": "asymmetric" if options[choice] else "symmetric", "block": size, "shape": shape,
                "relative_error": errors[choice]}
        blocks = cols // size
        codes, scales = codes.reshape(rows, blocks, size), scales.reshape(rows, blocks)
        model.buffers[buffer_index].data = None  # the float32 copy goes
        block_buffers = [_buffer(model, codes[:, b, :]) for b in range(blocks)]
        offset_buffer = None if offsets is None else _buffer(model, offsets.astype(np.float32))
        per_graph = {}
        for graph, op, pos in consumers:
            graph.tensors[op.inputs[pos]].buffer = 0  # read by no op once this loop is done
            if id(graph) not in per_graph:
                matrices = []
                for b, buffer in enumerate(block_buffers):
                    quantized = _tensor(graph, [rows, size], fb.TensorType.INT8, name + b"/int8_block%d" % b, buffer,
                                        scales[:, b])
                    matrices.append(_tensor(graph, [rows, size], fb.TensorType.FLOAT32, name + b"/block%d" % b, 0))
                    first[id(graph)].append(_operator(model, fb.BuiltinOperator.DEQUANTIZE, 2, [quantized],
                                                      [matrices[-1]]))
                offsets_tensor = (None if offset_buffer is None else
                                  _tensor(graph, [rows, blocks], fb.TensorType.FLOAT32, name + b"/offsets",
                                          offset_buffer))
                per_graph[id(graph)] = matrices, offsets_tensor
            matrices, offsets_tensor = per_graph[id(graph)]
            out = int(op.outputs[0])
            ops, target = [], out
            if offsets_tensor is not None:
                kind = "expand" if code_of[op.opcodeIndex] == gather else "sums"
                indicator = shared.get((id(graph), kind, cols, size))
                if indicator is None:  # sums: [blocks, cols], 1 where a column is in a block; expand: its transpose
                    values = np.kron(np.eye(blocks, dtype=np.float32), np.ones((1, size), np.float32))
                    values = values.T.copy() if kind == "expand" else values
                    indicator = _tensor(graph, list(values.shape), fb.TensorType.FLOAT32,
                                        b"block_%s/%d_%d" % (kind.encode(), cols, size), _buffer(model, values))
                    shared[(id(graph), kind, cols, size)] = indicator
                correct = _gather_correction if kind == "expand" else _offset_correction
                ops, target = correct(model, graph, op, indicator, offsets_tensor, blocks)
            split = _gather_blocks if code_of[op.opcodeIndex] == gather else _fully_connected_blocks
            replaced[id(op)] = split(model, graph, op, matrices, target, shared) + ops
    for graph in model.subgraphs:  # DEQUANTIZE reads constants only: first is a valid order
        ordered = list(first[id(graph)])
        for op in graph.operators:
            ordered.extend(replaced.get(id(op), [op]))
        graph.operators = ordered
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def weight_uses(model, min_elements: int) -> dict:
    """``{buffer index: [(graph, op, input position)]}``: every constant float32 matrix of at least
    ``min_elements`` values in a TFLite object-API ``model``, with the ops reading it (the
    signatures of a decoder file share buffers)."""
    from tensorflow.lite.python import schema_py_generated as fb

    uses = {}
    for graph in model.subgraphs:
        for op in graph.operators:
            for pos, index in enumerate(op.inputs):
                tensor = graph.tensors[index] if index >= 0 else None
                if (tensor is None or tensor.type != fb.TensorType.FLOAT32 or len(tensor.shape) != 2
                        or model.buffers[tensor.buffer].data is None
                        or len(model.buffers[tensor.buffer].data) < 4 * min_elements):
                    continue
                uses.setdefault(tensor.buffer, []).append((graph, op, pos))
    return uses


def _plain(fb, code, op, pos) -> bool:
    """Whether ``op`` reads a weight matrix at ``pos`` in a way the block layout can replace: the
    weights of a FULLY_CONNECTED without fused activation, or the table of a GATHER along axis 0."""
    options = op.builtinOptions
    if code == fb.BuiltinOperator.FULLY_CONNECTED:
        return pos == 1 and options is not None and options.fusedActivationFunction == fb.ActivationFunctionType.NONE
    if code == fb.BuiltinOperator.GATHER:
        return pos == 0 and (options is None or (options.axis == 0 and options.batchDims == 0))
    return False


def _like(graph, index, last, suffix):
    """A new float32 tensor shaped like tensor ``index`` with its last dimension set to ``last``."""
    from tensorflow.lite.python import schema_py_generated as fb

    source = graph.tensors[index]
    new = _tensor(graph, [int(d) for d in source.shape[:-1]] + [last], fb.TensorType.FLOAT32, source.name + suffix, 0)
    if source.shapeSignature is not None:
        graph.tensors[new].shapeSignature = np.asarray([int(d) for d in source.shapeSignature[:-1]] + [last], np.int32)
    return new


def _fully_connected_blocks(model, graph, op, matrices, target, shared):
    """``op``'s product as one FULLY_CONNECTED per block of inputs (SPLIT of the input, then ADDs),
    written into ``target``; with one block, ``op`` itself reading the block."""
    from tensorflow.lite.python import schema_py_generated as fb

    x, out = int(op.inputs[0]), int(op.outputs[0])
    rows, size = (int(d) for d in graph.tensors[matrices[0]].shape)
    keep = bool(op.builtinOptions.keepNumDims)
    if len(matrices) == 1:
        op.inputs[1], op.outputs = matrices[0], np.asarray([target], np.int32)
        return [op]
    rank = len(graph.tensors[x].shape)
    axis = shared.get((id(graph), "axis", rank))
    if axis is None:
        axis = _tensor(graph, [], fb.TensorType.INT32, b"block_split_axis/%d" % rank,
                       _buffer(model, np.asarray([rank - 1], np.int32)))
        shared[(id(graph), "axis", rank)] = axis
    parts = [_like(graph, x, size, b"/part%d" % b) for b in range(len(matrices))]
    split = _operator(model, fb.BuiltinOperator.SPLIT, 1, [axis, x], parts)
    split.builtinOptionsType, split.builtinOptions = fb.BuiltinOptions.SplitOptions, fb.SplitOptionsT()
    split.builtinOptions.numSplits = len(matrices)
    ops, total = [split], None
    for b, (part, matrix) in enumerate(zip(parts, matrices)):
        product = _like(graph, out, rows, b"/block%d" % b)
        ops.append(_fully_connected(model, [part, matrix, -1], product, keep))
        if total is not None:
            last = b == len(matrices) - 1
            summed = target if last else _like(graph, out, rows, b"/sum%d" % b)
            ops.append(_add(model, total, product, summed))
            product = summed
        total = product
    return ops


def _gather_blocks(model, graph, op, matrices, target, shared):
    """``op``'s rows gathered from each block and concatenated, written into ``target``."""
    from tensorflow.lite.python import schema_py_generated as fb

    out = int(op.outputs[0])
    if len(matrices) == 1:
        op.inputs[0], op.outputs = matrices[0], np.asarray([target], np.int32)
        return [op]
    size = int(graph.tensors[matrices[0]].shape[1])
    ops, parts = [], []
    for b, matrix in enumerate(matrices):
        parts.append(_like(graph, out, size, b"/block%d" % b))
        take = _operator(model, fb.BuiltinOperator.GATHER, 1, [matrix, int(op.inputs[1])], [parts[-1]])
        take.builtinOptionsType, take.builtinOptions = fb.BuiltinOptions.GatherOptions, fb.GatherOptionsT()
        ops.append(take)
    concat = _operator(model, fb.BuiltinOperator.CONCATENATION, 1, parts, [target])
    concat.builtinOptionsType = fb.BuiltinOptions.ConcatenationOptions
    concat.builtinOptions = fb.ConcatenationOptionsT()
    concat.builtinOptions.axis = len(graph.tensors[out].shape) - 1
    return ops + [concat]


def _offset_correction(model, graph, op, sums, offsets, blocks):
    """``(ops, tensor)``: ops that add ``offsets @ block_sums(x)`` to FULLY_CONNECTED ``op``'s product,
    which must be written into the returned tensor; the last op writes ``op``'s output."""
    x, out = int(op.inputs[0]), int(op.outputs[0])
    keep = bool(op.builtinOptions.keepNumDims)
    rows = int(graph.tensors[out].shape[-1])
    block_sums = _like(graph, x, blocks, b"/block_sums")
    if not keep:  # FULLY_CONNECTED flattens the leading dimensions
        graph.tensors[block_sums].shape = np.asarray([int(np.prod(graph.tensors[x].shape[:-1])), blocks], np.int32)
        graph.tensors[block_sums].shapeSignature = None
    correction, product = _like(graph, out, rows, b"/offsets"), _like(graph, out, rows, b"/int8_part")
    ops = [_fully_connected(model, [x, sums, -1], block_sums, keep),
           _fully_connected(model, [block_sums, offsets, -1], correction, keep), _add(model, product, correction, out)]
    return ops, product


def _gather_correction(model, graph, op, expand, offsets, blocks):
    """``(ops, tensor)``: ops that add each gathered row's block offsets (gathered the same way, then
    spread over their blocks by a 0/1 FULLY_CONNECTED) to GATHER ``op``'s rows, which must be written
    into the returned tensor; the last op writes ``op``'s output."""
    from tensorflow.lite.python import schema_py_generated as fb

    out = int(op.outputs[0])
    cols = int(graph.tensors[out].shape[-1])
    gathered = _like(graph, out, blocks, b"/gathered_offsets")
    spread, rows = _like(graph, out, cols, b"/offsets"), _like(graph, out, cols, b"/int8_part")
    take = _operator(model, fb.BuiltinOperator.GATHER, 1, [offsets, int(op.inputs[1])], [gathered])
    take.builtinOptionsType, take.builtinOptions = fb.BuiltinOptions.GatherOptions, fb.GatherOptionsT()
    return [take, _fully_connected(model, [gathered, expand, -1], spread, True), _add(model, rows, spread, out)], rows


def _add(model, a, b, out):
    from tensorflow.lite.python import schema_py_generated as fb

    op = _operator(model, fb.BuiltinOperator.ADD, 1, [a, b], [out])
    op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.AddOptions, fb.AddOptionsT()
    return op


def _fully_connected(model, inputs, output, keep_num_dims):
    from tensorflow.lite.python import schema_py_generated as fb

    op = _operator(model, fb.BuiltinOperator.FULLY_CONNECTED, 1, inputs, [output])
    op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = fb.FullyConnectedOptionsT()
    op.builtinOptions.keepNumDims = keep_num_dims
    return op


def _buffer(model, array):
    from tensorflow.lite.python import schema_py_generated as fb

    buffer = fb.BufferT()
    buffer.data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _tensor(graph, shape, dtype, name, buffer, scales=None):
    from tensorflow.lite.python import schema_py_generated as fb

    tensor = fb.TensorT()
    tensor.shape, tensor.type, tensor.buffer, tensor.name = np.asarray(shape, np.int32), dtype, buffer, name
    if scales is not None:
        tensor.quantization = fb.QuantizationParametersT()
        tensor.quantization.scale = scales.astype(np.float32).tolist()
        tensor.quantization.zeroPoint = [0] * len(scales)
        tensor.quantization.quantizedDimension = 0
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _opcode(model, builtin, version) -> int:
    """The index of ``builtin``'s operator code in ``model`` (added if missing; its version raised to
    at least ``version``)."""
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
