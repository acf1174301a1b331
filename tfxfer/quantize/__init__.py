"""Compression through TensorFlow Model Optimization, for Keras 3 transfer models.

TFMOT only takes flat tf_keras (Keras 2) models. This package bridges: `to_tf_keras` rebuilds a
Keras 3 model (nested backbone inlined) as a flat tf_keras model with the same layer names and
weights, checked to give the same outputs; then

* `train_qat` / `quantize_model`: quantization-aware training -> full-int8 TFLite, gated;
* `prune`: magnitude pruning with a schedule (or 2:4 structured sparsity), stripped;
* `cluster`: weight clustering (at most N unique values per kernel), stripped;
* `sparsity_report`, `zipped_size`: what pruning/clustering bought (files shrink only zipped);
* `selective_int8`: full int8 first; if it fails the gate, the LiteRT quantization debugger
  ranks the layers that hurt most and those are kept in float until the file passes.

tf_keras and TFMOT are imported lazily, on first use of a function that needs them; without
them the rest of tfxfer works and these functions raise `MissingDependencyError` with the
install command. Importing TFMOT switches ``tf.keras`` to tf_keras for the process; tfxfer never
uses ``tf.keras``.

Example:
    >>> import tfxfer
    >>> from tfxfer.quantize import to_tf_keras
    >>> model = tfxfer.build_model("efficientnet_lite0", 3, input_size=(32, 32), weights=None)
    >>> to_tf_keras(model).max_abs_diff <= 1e-4
    True
"""

from tfxfer.utils.lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "BridgedModel": "tfxfer.quantize.bridge",
    "to_tf_keras": "tfxfer.quantize.bridge",
    "weights_to_keras": "tfxfer.quantize.bridge",
    "clone_keras_model": "tfxfer.quantize.bridge",
    "QATModel": "tfxfer.quantize.qat",
    "quantize_model": "tfxfer.quantize.qat",
    "plan_layers": "tfxfer.quantize.qat",
    "init_ranges": "tfxfer.quantize.qat",
    "QATResult": "tfxfer.quantize.qat_train",
    "train_qat": "tfxfer.quantize.qat_train",
    "PruneResult": "tfxfer.quantize.pruning",
    "prune": "tfxfer.quantize.pruning",
    "ClusterResult": "tfxfer.quantize.clustering",
    "cluster": "tfxfer.quantize.clustering",
    "sparsity_report": "tfxfer.quantize.sparsity",
    "unique_values": "tfxfer.quantize.sparsity",
    "zipped_size": "tfxfer.quantize.sparsity",
    "SelectiveResult": "tfxfer.quantize.selective",
    "selective_int8": "tfxfer.quantize.selective",
    "rank_layers": "tfxfer.quantize.selective",
    "convert_tf_keras": "tfxfer.quantize.post_training",
    "export_tf_keras_tflite": "tfxfer.quantize.post_training",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = _lazy_exports('tfxfer.quantize', _EXPORTS)
