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

Each matrix takes whichever of the two has the smaller rounding error. In the file: the int8 tensor is ``[rows * blocks, block]`` with per-axis
scales, one DEQUANTIZE (LiteRT runs it once, at load) and one RESHAPE back to ``[rows, cols]`` feed the
original op, so the arithmetic stays float32 and only the weights' rounding differs.

Why it exists: per-row int8 (`decoder_tflite.int8_weights`) moves SmolLM2-135M's next-token argmax at
5.6 % of held-out positions and symmetric blocks of 32 at 2.1 %, both short of the 99 % gate. The
pretrained SmolLM2 weights come from a GGUF file whose projections are Q4_1 (16 levels between a
block minimum and maximum, blocks of 32 inputs) and whose embedding is Q8_0 (symmetric blocks of 32):
on that grid the asymmetric blocks of 32 (``255 = 15 * 17`` steps) and the symmetric embedding blocks
reproduce every weight to float32 rounding, so the file agrees with Keras like the float32 one
(``benchmarks/results/causal_lm_export.json``). Weights off such a grid (after a fine-tune merged into
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
        scheme: "auto" (each projection symmetric or asymmetric, whichever rounds it closer) or
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
    uses = {}  # float32 weight buffer -> [(graph, op, input position)]; signatures share buffers
    for graph in model.subgraphs:
        for op in graph.operators:
            for pos, index in enumerate(op.inputs):
                tensor = graph.tensors[index] if index >= 0 else None
                if (tensor is None or tensor.type != fb.TensorType.FLOAT32 or len(tensor.shape) != 2
                        or model.buffers[tensor.buffer].data is None
                        or len(model.buffers[tensor.buffer].data) < 4 * min_elements):
                    continue
                uses.setdefault(tensor.buffer, []).append((graph, op, pos))
    first = {id(graph): [] for graph in model.subgraphs}  # DEQUANTIZE then RESHAPE ops, run first
    after = {}  # id(op) -> the offset-correction ops that follow it
    shared = {}  # (id(graph), kind, cols, blocks) -> tensor index of a shared constant
    for buffer_index, consumers in uses.items():
        kinds = {(code_of[op.opcodeIndex], pos) for _, op, pos in consumers}
        if not kinds <= {(fc, 1), (gather, 0)}:
            continue  # a constant some other op reads: left as it is
        graph, op, pos = consumers[0]
        shape = [int(d) for d in graph.tensors[op.inputs[pos]].shape]
        rows, cols = shape
        size = block if cols % block == 0 else cols
        weights = np.frombuffer(model.buffers[buffer_index].data.tobytes(), np.float32).reshape(shape)
        options = [False]
        plain = all((code_of[o.opcodeIndex] == fc and o.builtinOptions is not None
                     and o.builtinOptions.fusedActivationFunction == fb.ActivationFunctionType.NONE)
                    or (code_of[o.opcodeIndex] == gather and (o.builtinOptions is None or (
                        o.builtinOptions.axis == 0 and o.builtinOptions.batchDims == 0)))
                    for _, o, _ in consumers)
        if scheme == "auto" and plain:
            options.append(True)
        results = [quantize_blocks(weights, size, asymmetric=a) for a in options]
        errors = [_relative_error(weights, r[3]) for r in results]
        choice = int(np.argmin(errors))
        codes, scales, offsets, _ = results[choice]
        name = graph.tensors[op.inputs[pos]].name or b"weights"
        if report is not None:
            report[name.decode(errors="replace")] = {
                "scheme": "asymmetric" if options[choice] else "symmetric", "block": size, "shape": shape,
                "relative_error": errors[choice]}
        model.buffers[buffer_index].data = codes.reshape(-1).view(np.uint8)  # the same buffer, now int8
        shape_buffer = _buffer(model, np.asarray(shape, np.int32)) if size != cols else None
        offset_buffer = _buffer(model, offsets.astype(np.float32)) if offsets is not None else None
        per_graph = {}
        for graph, op, pos in consumers:
            template = graph.tensors[op.inputs[pos]]
            template.buffer = 0  # the float tensor is read by no op once this loop is done
            if id(graph) not in per_graph:
                quantized = _tensor(graph, list(codes.shape), fb.TensorType.INT8, name + b"/int8_blocks",
                                    buffer_index, scales)
                dequantized = _tensor(graph, list(codes.shape), fb.TensorType.FLOAT32, name + b"/dequantized", 0)
                first[id(graph)].append(_operator(model, fb.BuiltinOperator.DEQUANTIZE, 2, [quantized], [dequantized]))
                if shape_buffer is not None:
                    shape_tensor = _tensor(graph, [2], fb.TensorType.INT32, name + b"/shape", shape_buffer)
                    matrix = _tensor(graph, shape, fb.TensorType.FLOAT32, name + b"/matrix", 0)
                    first[id(graph)].append(_operator(model, fb.BuiltinOperator.RESHAPE, 1,
                                                      [dequantized, shape_tensor], [matrix]))
                    dequantized = matrix
                offsets_tensor = (None if offset_buffer is None else
                                  _tensor(graph, [rows, cols // size], fb.TensorType.FLOAT32, name + b"/offsets",
                                          offset_buffer))
                per_graph[id(graph)] = (dequantized, offsets_tensor)
            dequantized, offsets_tensor = per_graph[id(graph)]
            op.inputs[pos] = dequantized
            if offsets_tensor is not None:
                kind = "expand" if code_of[op.opcodeIndex] == gather else "sums"
                indicator = shared.get((id(graph), kind, cols, size))
                if indicator is None:  # sums: [blocks, cols], 1 where a column is in a block; expand: its transpose
                    values = np.kron(np.eye(cols // size, dtype=np.float32), np.ones((1, size), np.float32))
                    values = values.T.copy() if kind == "expand" else values
                    indicator = _tensor(graph, list(values.shape), fb.TensorType.FLOAT32,
                                        b"block_%s/%d_%d" % (kind.encode(), cols, size), _buffer(model, values))
                    shared[(id(graph), kind, cols, size)] = indicator
                correct = _gather_correction if kind == "expand" else _offset_correction
                after[id(op)] = correct(model, graph, op, indicator, offsets_tensor, cols // size)
    for graph in model.subgraphs:  # DEQUANTIZE / RESHAPE read constants only: first is a valid order
        ordered = list(first[id(graph)])
        for op in graph.operators:
            ordered.append(op)
            ordered.extend(after.get(id(op), ()))
        graph.operators = ordered
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _offset_correction(model, graph, op, sums, offsets, blocks):
    """Ops that add ``offsets @ block_sums(x)`` to FULLY_CONNECTED ``op``'s output (``op`` now writes a
    new tensor; the last new op writes the original output, so its readers are unchanged)."""
    from tensorflow.lite.python import schema_py_generated as fb

    x = graph.tensors[op.inputs[0]]
    out_index = int(op.outputs[0])
    out = graph.tensors[out_index]
    keep = bool(op.builtinOptions.keepNumDims)
    lead = [int(d) for d in x.shape[:-1]] if keep else [int(np.prod(x.shape[:-1]))]
    block_sums = _tensor(graph, lead + [blocks], fb.TensorType.FLOAT32, out.name + b"/block_sums", 0)
    correction = _tensor(graph, [int(d) for d in out.shape], fb.TensorType.FLOAT32, out.name + b"/offsets", 0)
    plain = _tensor(graph, [int(d) for d in out.shape], fb.TensorType.FLOAT32, out.name + b"/int8_part", 0)
    for index in (block_sums, correction, plain):
        if keep and x.shapeSignature is not None and out.shapeSignature is not None:
            graph.tensors[index].shapeSignature = np.asarray(
                ([int(d) for d in x.shapeSignature[:-1]] + [blocks]) if index == block_sums
                else [int(d) for d in out.shapeSignature], np.int32)
    op.outputs = np.asarray([plain], np.int32)
    ops = [_fully_connected(model, [int(op.inputs[0]), sums, -1], block_sums, keep),
           _fully_connected(model, [block_sums, offsets, -1], correction, keep)]
    add = _operator(model, fb.BuiltinOperator.ADD, 1, [plain, correction], [out_index])
    add.builtinOptionsType = fb.BuiltinOptions.AddOptions
    add.builtinOptions = fb.AddOptionsT()
    return ops + [add]


def _gather_correction(model, graph, op, expand, offsets, blocks):
    """Ops that add each gathered row's block offsets (gathered the same way, then spread over their
    blocks by a 0/1 FULLY_CONNECTED) to GATHER ``op``'s output; the last writes the original output."""
    from tensorflow.lite.python import schema_py_generated as fb

    out_index = int(op.outputs[0])
    out = graph.tensors[out_index]
    shape = [int(d) for d in out.shape]
    gathered = _tensor(graph, shape[:-1] + [blocks], fb.TensorType.FLOAT32, out.name + b"/gathered_offsets", 0)
    spread = _tensor(graph, shape, fb.TensorType.FLOAT32, out.name + b"/offsets", 0)
    plain = _tensor(graph, shape, fb.TensorType.FLOAT32, out.name + b"/int8_part", 0)
    if out.shapeSignature is not None:
        signature = [int(d) for d in out.shapeSignature]
        graph.tensors[gathered].shapeSignature = np.asarray(signature[:-1] + [blocks], np.int32)
        for index in (spread, plain):
            graph.tensors[index].shapeSignature = np.asarray(signature, np.int32)
    op.outputs = np.asarray([plain], np.int32)
    take = _operator(model, fb.BuiltinOperator.GATHER, 1, [offsets, int(op.inputs[1])], [gathered])
    take.builtinOptionsType = fb.BuiltinOptions.GatherOptions
    take.builtinOptions = fb.GatherOptionsT()
    add = _operator(model, fb.BuiltinOperator.ADD, 1, [plain, spread], [out_index])
    add.builtinOptionsType = fb.BuiltinOptions.AddOptions
    add.builtinOptions = fb.AddOptionsT()
    return [take, _fully_connected(model, [gathered, expand, -1], spread, True), add]


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


def _operator(model, builtin, version, inputs, outputs):
    from tensorflow.lite.python import schema_py_generated as fb

    index = None
    for i, code in enumerate(model.operatorCodes):
        if code.builtinCode == builtin:
            code.version, index = max(code.version, version), i
            break
    if index is None:
        code = fb.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), version
        model.operatorCodes.append(code)
        index = len(model.operatorCodes) - 1
    op = fb.OperatorT()
    op.opcodeIndex = index
    op.inputs, op.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
    return op
