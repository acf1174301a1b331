"""Per-row int8 weights for a float32 TFLite file (a decoder's or a text model's), builtin ops only.

`int8_weights` stores every large FULLY_CONNECTED / GATHER weight matrix as int8 with one symmetric
scale per output row. Each one either stays a float32 computation behind one DEQUANTIZE (LiteRT runs
it once, at load: the file is ~4x smaller and only the weights' rounding differs) or, as ``hybrid``
(`HYBRID`) says, runs LiteRT's hybrid int8 kernels. `tfxfer.export.decoder_tflite.convert_decoder_tflite`
makes its ``"int8"`` and ``"int8_hybrid"`` decoder files with it, and
`tfxfer.export.text_tflite.convert_text_tflite` its text models' ``dynamic`` and ``weight_only`` files.
Block-wise int8 (a scale per block of 32 inputs, exact on GGUF weight grids) is
`tfxfer.export.decoder_int8`; why per-row rounding fails SmolLM2's decoder gate is measured in
`tfxfer.export.decoder_tflite`'s docstring.

Example:
    >>> from tfxfer.export.int8_per_row import int8_weights
    >>> smaller = int8_weights(float32_decoder_bytes, hybrid="none")     # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.export.decoder_int8 import _opcode, _operator, _tensor  # one find-or-add for both rewrites


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
    return _tensor(graph, template.shape, dtype, (template.name or b"weights") + suffix, buffer, scale)
