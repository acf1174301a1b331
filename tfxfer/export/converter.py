"""The TFLite converter set-up of each variant, shared by every converter of `tfxfer.export` and
`tfxfer.quantize` (and by the pre-flight, whose trial conversion is the float32 file).

Example:
    >>> import tensorflow as tf
    >>> from tfxfer.export.converter import base_converter
    >>> fn = tf.function(lambda x: {"y": x * 2.0}, input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    >>> converter = base_converter(fn.get_concrete_function(), "float16")
    >>> converter.target_spec.supported_types, len(converter.convert()) > 0
    ([tf.float16], True)
"""

from __future__ import annotations


def base_converter(concrete_function, variant: str):
    """A ``TFLiteConverter`` for ``concrete_function`` set up for ``variant`` (builtin ops only;
    weight quantization for every variant but float32, float16 weights for "float16"). Full int8
    callers add their representative data and input/output types."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete_function])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return converter
