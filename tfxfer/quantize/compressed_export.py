"""Export a pruned or clustered Keras 3 model through `tfxfer.export`, gate it, and size it zipped.

Example:
    >>> import os, tempfile, numpy as np, keras
    >>> from tfxfer.quantize.compressed_export import export_compressed
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> x = np.random.default_rng(0).uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    >>> out = export_compressed(model, os.path.join(tempfile.mkdtemp(), "m.tflite"), variant="float32",
    ...                         eval_data=(x, model.predict(x, verbose=0).argmax(1)))
    >>> out.gate.passed, out.sizes["plain_bytes"] == out.export.size_bytes
    (True, True)
"""

from __future__ import annotations

import dataclasses

from tfxfer.quantize.sparsity import zipped_size


@dataclasses.dataclass
class CompressedExport:
    """A gated .tflite file of a compressed model and its plain / zipped sizes."""

    export: object
    gate: object
    sizes: dict

    def to_dict(self) -> dict:
        return {"path": self.export.path, "variant": self.export.variant, "passed": self.gate.passed,
                "sizes": self.sizes, "gate": self.gate.to_dict()}


def export_compressed(model, path, *, variant: str = "int8", representative_data=None, eval_data, reference=None,
                      thresholds=None, class_names=None, raise_on_failure: bool = True) -> CompressedExport:
    """`tfxfer.export.export_tflite` + `tfxfer.export.verify` against ``reference`` + `zipped_size`.

    Args:
        model: the compressed Keras 3 model (e.g. ``PruneResult.model``).
        path: the .tflite path.
        variant: any `tfxfer.export.VARIANTS` entry ("int8" needs ``representative_data``).
        eval_data: held-out ``(images, labels)`` for the gate.
        reference: the model to gate against (default ``model``; pass the uncompressed float
            model to measure what compression and quantization cost together).
        thresholds, class_names: as in `tfxfer.export`.
        raise_on_failure: when the file fails the gate, raise `GateError` without writing it; False
            writes it, its sidecar's ``gate`` saying ``"passed": false`` (the device runner refuses it).

    The file is written and gated in a staging folder beside ``path`` (`tfxfer.export.gated_files`)
    and moved to ``path`` with its verdict in its sidecar: a failed run leaves what was there as it was.
    """
    import os

    from tfxfer.export import export_tflite, verify
    from tfxfer.export.gated_files import settle, staged
    from tfxfer.utils.output_path import check_output_file

    final = os.path.abspath(check_output_file("path", path))
    with staged(final) as staging:
        export = export_tflite(model, os.path.join(staging, os.path.basename(final)), variant=variant,
                               representative_data=representative_data, class_names=class_names)
        gate = verify(reference if reference is not None else model, export, eval_data, thresholds=thresholds,
                      raise_on_failure=False)
        export, gate = settle(export, gate, final, raise_on_failure=raise_on_failure)
    return CompressedExport(export=export, gate=gate, sizes=zipped_size(export.path))
