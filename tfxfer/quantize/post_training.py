"""Convert a tf_keras model (QAT, pruned, clustered) to TFLite and write it the way `tfxfer.export` does.

`tfxfer.export.export_tflite` traces Keras 3 models; a tf_keras model is traced here instead, into
the same signature (input ``image``: float32 raw 0-255 pixels; output ``probabilities``), converted
with builtin ops only, and written atomically with the same sidecar JSON. The result is a
`tfxfer.export.TFLiteExport`, so `tfxfer.export.verify` (the gate, against the Keras 3 float
model) and `tfxfer.export.benchmark_tflite` take it as they take any other export.

Example:
    >>> import os, tempfile, numpy as np, tfxfer
    >>> from tfxfer.quantize import to_tf_keras, export_tf_keras_tflite
    >>> model = tfxfer.build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> bridged = to_tf_keras(model)
    >>> x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    >>> out = export_tf_keras_tflite(bridged.model, os.path.join(tempfile.mkdtemp(), "m.tflite"),
    ...                              variant="int8", representative_data=x)
    >>> out.variant, out.input_dtype
    ('int8', 'uint8')
"""

from __future__ import annotations

import os
import warnings

from tfxfer.errors import ArgumentError, ExportError, ModelError

#: Variants a tf_keras model can be exported as (QAT models carry their own ranges for "int8").
VARIANTS = ("float32", "float16", "dynamic", "int8")
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"


def tf_keras_image_shape(tfk_model) -> tuple[int, int, int]:
    """``(height, width, channels)`` of a single-input, single-output tf_keras image model."""
    if len(tfk_model.inputs) != 1 or len(tfk_model.outputs) != 1:
        raise ModelError(f"Model {tfk_model.name!r} must have one image input and one output")
    shape = tuple(tfk_model.inputs[0].shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]) or len(tfk_model.outputs[0].shape) != 2:
        raise ModelError(f"Model {tfk_model.name!r} must map (batch, h, w, c) images to (batch, classes); "
                         f"got {shape} -> {tuple(tfk_model.outputs[0].shape)}")
    return int(shape[1]), int(shape[2]), int(shape[3])


def convert_tf_keras(tfk_model, *, variant: str = "int8", representative_data=None, num_calibration: int = 200,
                     input_type: str | None = None, seed: int = 0) -> bytes:
    """TFLite bytes of a tf_keras model (builtins only).

    Args:
        tfk_model: a tf_keras image model (from `to_tf_keras`, QAT, pruning or clustering).
        variant: "float32", "float16", "dynamic" or "int8" (full integer, float32 output).
        representative_data: calibration images for "int8" (also used by QAT models for the
            few tensors that carry no fake-quant range).
        num_calibration: calibration images drawn (seeded).
        input_type: "uint8" (default for "int8": raw pixel bytes go straight in), "int8" or "float32".
        seed: seed of the calibration subset.
    """
    import tensorflow as tf

    from tfxfer.export.data import check_image_shape, sample_images
    from tfxfer.export.converter import base_converter
    from tfxfer.export import _trace
    from tfxfer.utils.native_logs import quiet_native_logs

    if variant not in VARIANTS:
        raise ArgumentError("variant", variant, "must be one of " + ", ".join(VARIANTS))
    if variant == "int8" and representative_data is None:
        raise ArgumentError("representative_data", None, "is required for variant='int8'")
    height, width, channels = tf_keras_image_shape(tfk_model)
    spec = tf.TensorSpec([None, height, width, channels], tf.float32, name=INPUT_NAME)

    exact = variant == "int8" and (input_type or "uint8") == "uint8"  # raw pixel bytes: scale 1, zero point 0

    @tf.function(input_signature=[spec], autograph=False)
    def serve(image):
        image = _trace.exact_pixels(image) if exact else image
        return {OUTPUT_NAME: tf.cast(tfk_model(image, training=False), tf.float32)}

    converter = base_converter(serve.get_concrete_function(), variant)
    if variant == "int8":
        samples = sample_images(representative_data, num_samples=num_calibration, seed=seed)
        check_image_shape(samples, (height, width, channels), name="representative_data")
        converter.representative_dataset = lambda: ([samples[i: i + 1]] for i in range(len(samples)))
        input_type = input_type or "uint8"
        if input_type not in ("uint8", "int8", "float32"):
            raise ArgumentError("input_type", input_type, "must be 'uint8', 'int8' or 'float32'")
        converter.inference_input_type = getattr(tf, input_type)
        converter.inference_output_type = tf.float32
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            with quiet_native_logs():
                content = converter.convert()
    except Exception as exc:  # ConverterError and calibration errors
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ""
        raise ExportError(f"TFLite conversion of tf_keras model {tfk_model.name!r} (variant={variant!r}) "
                          f"failed: {type(exc).__name__}: {first}") from exc
    return content


def write_tflite(content: bytes, path, *, variant: str, image_shape, task: str, class_names=None,
                 model_name: str = "", calibration_samples: int = 0, extra: dict | None = None,
                 calibration_record: dict | None = None):
    """Write ``content`` and its sidecar atomically; return a `tfxfer.export.TFLiteExport`.

    ``task`` is the `tfxfer.export.metadata.model_task` of the model the file was made from: the
    sidecar's ``output.kind`` says what the output is ("label_probabilities" for a sigmoid model,
    "logits" for a linear classifier), as `tfxfer.export.export_tflite` writes it.

    The label list and input description are embedded in the file too (`tfxfer.export.flatbuffer.embed_metadata`),
    as `tfxfer.export.export_tflite` does, so the file names its classes without its sidecar. For "int8"
    the sidecar's ``calibration`` records ``calibration_record`` (where the images came from) with the count.
    """
    import json

    from tfxfer.export.flatbuffer import embed_metadata, tflite_ops
    from tfxfer.export.litert import new_interpreter
    from tfxfer.export.metadata import build_sidecar, check_class_names, embedded_metadata, sidecar_path
    from tfxfer.export.tflite import TFLiteExport
    from tfxfer.utils.atomic import atomic_path, atomic_write_json

    interpreter = new_interpreter(model_content=content)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    names = check_class_names(class_names, int(out["shape"][-1]))
    content = embed_metadata(content, json.dumps(embedded_metadata(
        variant=variant, class_names=names, image_shape=tuple(image_shape), model_name=model_name)).encode("utf-8"))
    path = os.fspath(path)
    side = sidecar_path(path)
    entry = build_sidecar(content=content, variant=variant, class_names=names, image_shape=image_shape,
                          extra=dict({"model_name": model_name, "calibration_samples": calibration_samples},
                                     **(extra or {})), task=task)
    if variant == "int8" and calibration_samples:
        entry["calibration"] = {**(calibration_record or {"source": "representative_data"}),
                                "samples": calibration_samples}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
    atomic_write_json(side, entry)
    return TFLiteExport(
        path=path, variant=variant, size_bytes=len(content), input_dtype=inp["dtype"].__name__,
        output_dtype=out["dtype"].__name__, input_quantization=tuple(float(v) for v in inp["quantization"]),
        output_quantization=tuple(float(v) for v in out["quantization"]), ops=tflite_ops(content),
        sidecar_path=side, calibration_samples=calibration_samples,
    )


def export_tf_keras_tflite(tfk_model, path, *, variant: str = "int8", representative_data=None,
                           num_calibration: int = 200, class_names=None, extra: dict | None = None, seed: int = 0,
                           calibration_record: dict | None = None, task: str | None = None):
    """Convert a tf_keras model and write it with its sidecar (see `convert_tf_keras`).

    ``task``: the `tfxfer.export.metadata.model_task` of the Keras 3 model ``tfk_model`` stands for
    (a QAT model passes its float model's: its wrapped output layer hides the activation); default
    that of ``tfk_model`` itself.
    """
    from tfxfer.export.metadata import model_task

    content = convert_tf_keras(tfk_model, variant=variant, representative_data=representative_data,
                               num_calibration=num_calibration, seed=seed)
    used = 0
    if variant == "int8":
        from tfxfer.export.data import sample_images

        used = len(sample_images(representative_data, num_samples=num_calibration, seed=seed))
    return write_tflite(content, path, variant=variant, image_shape=tf_keras_image_shape(tfk_model),
                        class_names=class_names, model_name=tfk_model.name, calibration_samples=used, extra=extra,
                        calibration_record=calibration_record, task=task or model_task(tfk_model))
