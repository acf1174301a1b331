"""Read a .tflite flatbuffer without running it: its operators and the kind of quantization it holds.

Example:
    >>> import keras
    >>> from tfxfer.export import convert_tflite
    >>> from tfxfer.export.flatbuffer import tflite_ops, detect_variant
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> content = convert_tflite(model, variant="float32")
    >>> sorted(tflite_ops(content))
    ['FULLY_CONNECTED', 'MEAN', 'SOFTMAX']
    >>> detect_variant(content)
    'float32'
"""

from __future__ import annotations

import collections
import functools
import os

from tfxfer.errors import ArgumentTypeError


@functools.lru_cache(maxsize=1)
def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _content(model) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        with open(model, "rb") as f:
            return f.read()
    raise ArgumentTypeError("model", model, "the bytes or the path of a .tflite file")


def _root(content: bytes):
    return _schema().Model.GetRootAsModel(content, 0)


def _opcode_names(root) -> list[str]:
    schema = _schema()
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        custom = code.CustomCode()
        if custom:
            names.append(custom.decode("utf-8", "replace"))
            continue
        value = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        names.append(builtin.get(value, f"BUILTIN_{value}"))
    return names


def tflite_ops(model) -> dict[str, int]:
    """Operator name -> count over all subgraphs (custom and Flex ops by their custom code)."""
    root = _root(_content(model))
    names = _opcode_names(root)
    counts: collections.Counter = collections.Counter()
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            counts[names[subgraph.Operators(o).OpcodeIndex()]] += 1
    return dict(sorted(counts.items()))


def non_builtin_ops(model) -> dict[str, list[str]]:
    """Custom/Flex op name -> output tensor names (which carry the TF node names of the graph)."""
    root = _root(_content(model))
    names = _opcode_names(root)
    schema = _schema()
    builtin_names = set(k for k in vars(schema.BuiltinOperator) if not k.startswith("_"))
    found: dict[str, list[str]] = {}
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for o in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(o)
            name = names[op.OpcodeIndex()]
            if name in builtin_names:
                continue
            outputs = [subgraph.Tensors(op.Outputs(i)).Name().decode() for i in range(op.OutputsLength())]
            found.setdefault(name, []).extend(outputs)
    return found


def tensor_types(model) -> dict[str, int]:
    """Tensor type name (FLOAT32, INT8, ...) -> number of tensors, over all subgraphs."""
    schema = _schema()
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    root = _root(_content(model))
    counts: collections.Counter = collections.Counter()
    for s in range(root.SubgraphsLength()):
        subgraph = root.Subgraphs(s)
        for t in range(subgraph.TensorsLength()):
            counts[type_names.get(subgraph.Tensors(t).Type(), "UNKNOWN")] += 1
    return dict(counts)


def detect_variant(model) -> str:
    """Guess the export variant of a .tflite file: "float32", "float16", "dynamic" or "int8".

    Full-integer models run their convolutions on int8 tensors with quantized activations;
    dynamic-range models keep float activations and int8 weights; float16 models store float16
    weights that are dequantized on load.
    """
    content = _content(model)
    ops = tflite_ops(content)
    types = tensor_types(content)
    if types.get("FLOAT16"):
        return "float16"
    if not types.get("INT8") and not types.get("UINT8"):
        return "float32"
    # Full integer: at least as many int8 tensors as float ones and QUANTIZE ops on the way in/out
    # or integer inputs; dynamic range keeps float activations everywhere.
    if types.get("INT8", 0) > types.get("FLOAT32", 0) or "QUANTIZE" in ops:
        return "int8"
    return "dynamic"


#: Name of the metadata entry tfxfer embeds in every image .tflite file (JSON: labels, input description).
METADATA_NAME = "tfxfer_metadata"


def embed_metadata(model, data: bytes, *, name: str = METADATA_NAME) -> bytes:
    """The .tflite bytes of ``model`` with ``data`` stored as the metadata entry ``name`` (a buffer of
    the flatbuffer's ``Model.metadata`` list, which interpreters ignore); an entry of that name is
    replaced. `read_metadata` (and the TensorFlow-free device runner) read it back.

    Example:
        >>> import keras
        >>> from tfxfer.export import convert_tflite
        >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.GlobalAveragePooling2D(),
        ...                           keras.layers.Dense(2, activation="softmax")])
        >>> content = embed_metadata(convert_tflite(model, variant="float32"), b'{"class_names": ["a", "b"]}')
        >>> read_metadata(content)[METADATA_NAME]
        b'{"class_names": ["a", "b"]}'
    """
    import flatbuffers
    import numpy as np

    schema = _schema()
    root = schema.ModelT.InitFromPackedBuf(bytearray(_content(model)), 0)
    root.buffers = root.buffers or []
    root.metadata = [m for m in (root.metadata or []) if _text(m.name) != name]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(bytes(data), dtype=np.uint8)
    root.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(root.buffers) - 1
    root.metadata.append(entry)
    builder = flatbuffers.Builder(1024)
    builder.Finish(root.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_metadata(model) -> dict[str, bytes]:
    """``{name: bytes}`` of the metadata entries of a .tflite file (bytes or path)."""
    root = _root(_content(model))
    out = {}
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        buffer = root.Buffers(entry.Buffer())
        out[_text(entry.Name())] = bytes(buffer.DataAsNumpy()) if buffer.DataLength() else b""
    return out
