"""What pruning and clustering bought: per-layer sparsity, unique kernel values, plain vs zipped size.

Pruned and clustered weights are still stored as full tensors, so a .tflite file does not shrink
until it is compressed: `zipped_size` reports both sizes (DEFLATE, as ``zip -9`` does).

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.quantize import sparsity_report, zipped_size
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="d")])
    >>> _ = model.get_layer("d").kernel.assign(np.diag([1.0, 2.0, 3.0, 4.0]))
    >>> report = sparsity_report(model)
    >>> report.layers[0]["name"], report.layers[0]["sparsity"]
    ('d', 0.75)
    >>> sizes = zipped_size(bytes(100_000))
    >>> sizes["plain_bytes"], sizes["zipped_bytes"] < 1000
    (100000, True)
"""

from __future__ import annotations

import dataclasses
import io
import os
import zipfile

import numpy as np

from tfxfer.errors import ArgumentTypeError

#: Weight attributes that hold the kernels pruning and clustering act on.
KERNEL_ATTRIBUTES = ("kernel", "depthwise_kernel", "pointwise_kernel")


@dataclasses.dataclass
class SparsityReport:
    """Per-layer kernel sparsity.

    Attributes:
        layers: ``[{"name", "class", "weights", "zeros", "sparsity", "unique_values"}]`` for every
            layer with a kernel (Keras 3 models: nested layers as ``backbone/layer``).
        overall: zeros / weights over ``layers``.
    """

    layers: list

    @property
    def overall(self) -> float:
        total = sum(r["weights"] for r in self.layers)
        return sum(r["zeros"] for r in self.layers) / total if total else 0.0

    def sparsity_of(self, name: str) -> float:
        for row in self.layers:
            if row["name"] == name:
                return row["sparsity"]
        raise KeyError(name)

    def format(self) -> str:
        lines = [f"{'layer':<40} {'class':<18} {'weights':>9} {'sparsity':>8} {'unique':>7}"]
        for r in self.layers:
            lines.append(f"{r['name']:<40} {r['class']:<18} {r['weights']:>9} {r['sparsity']:>8.3f} "
                         f"{r['unique_values']:>7}")
        lines.append(f"{'overall':<40} {'':<18} {sum(r['weights'] for r in self.layers):>9} {self.overall:>8.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"overall": self.overall, "layers": self.layers}


def _kernel(layer):
    for attribute in KERNEL_ATTRIBUTES:
        value = getattr(layer, attribute, None)
        if value is not None and hasattr(value, "shape") and len(value.shape) >= 2:
            return np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    return None


def _walk(model, prefix=""):
    for layer in model.layers:
        inner = getattr(layer, "layers", None)
        if inner is not None and hasattr(layer, "inputs"):
            yield from _walk(layer, prefix + layer.name + "/")
        else:
            yield prefix + layer.name, layer


def sparsity_report(model) -> SparsityReport:
    """Sparsity and unique kernel values of every Conv/Dense/Depthwise layer of a Keras 3 or tf_keras model."""
    if not hasattr(model, "layers"):
        raise ArgumentTypeError("model", model, "a Keras 3 or tf_keras model")
    rows = []
    for name, layer in _walk(model):
        kernel = _kernel(getattr(layer, "layer", layer))
        if kernel is None:
            continue
        zeros = int(kernel.size - np.count_nonzero(kernel))
        rows.append({"name": name, "class": type(getattr(layer, "layer", layer)).__name__,
                     "weights": int(kernel.size), "zeros": zeros, "sparsity": zeros / kernel.size,
                     "unique_values": int(np.unique(kernel).size)})
    return SparsityReport(rows)


def unique_values(model) -> dict[str, int]:
    """``{layer: number of distinct kernel values}`` (clustering bounds these)."""
    return {r["name"]: r["unique_values"] for r in sparsity_report(model).layers}


def zipped_size(content) -> dict:
    """``{"plain_bytes", "zipped_bytes", "ratio"}`` of a file (path) or bytes, compressed with DEFLATE level 9."""
    if isinstance(content, (str, os.PathLike)):
        with open(content, "rb") as f:
            content = f.read()
    if not isinstance(content, (bytes, bytearray)):
        raise ArgumentTypeError("content", content, "bytes or a file path")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("model", bytes(content))
    zipped = len(buffer.getvalue())
    return {"plain_bytes": len(content), "zipped_bytes": zipped, "ratio": zipped / max(len(content), 1)}
