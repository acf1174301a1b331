"""TFLite export: float32, float16, dynamic-range int8 and full-integer int8 variants.

The model is traced with ``training=False`` (`tfxfer.export._trace`) and converted with TFLite
builtins only, so the file runs on any LiteRT runtime without Flex ops. Preprocessing is inside the
graph: the device feeds raw 0-255 pixels. For full int8 with ``input_type="uint8"`` the input
quantization is normally scale 1 / zero point 0, so the raw pixel bytes go straight in.

Example:
    >>> import numpy as np, keras, tempfile, os
    >>> from tfxfer.export import export_tflite
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> images = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 3)).astype("float32")
    >>> path = os.path.join(tempfile.mkdtemp(), "model_int8.tflite")
    >>> result = export_tflite(model, path, variant="int8", representative_data=images,
    ...                        class_names=["cat", "dog"])
    >>> result.input_dtype, result.calibration_samples, os.path.exists(result.sidecar_path)
    ('uint8', 16, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings

from tfxfer.errors import ArgumentError, ExportError
from tfxfer.export import _trace
from tfxfer.export.converter import base_converter
from tfxfer.export.data import check_image_shape, sample_images
from tfxfer.export.metadata import build_sidecar, check_class_names, embedded_metadata, model_task, sidecar_path
from tfxfer.utils.native_logs import quiet_native_logs
from tfxfer.utils.atomic import atomic_path
from tfxfer.utils.output_path import check_output_file

#: Export variants and what they do.
VARIANTS = {
    "float32": "no quantization",
    "float16": "float16 weights, float32 compute on CPU (half the size)",
    "dynamic": "int8 weights, float activations (dynamic-range quantization)",
    "int8": "full-integer int8 weights and activations, calibrated on a representative set",
}
IO_TYPES = ("float32", "uint8", "int8")


@dataclasses.dataclass
class TFLiteExport:
    """One exported .tflite file and what it expects."""

    path: str
    variant: str
    size_bytes: int
    input_dtype: str
    output_dtype: str
    input_quantization: tuple
    output_quantization: tuple
    ops: dict
    sidecar_path: str | None
    calibration_samples: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _check_options(variant, input_type, output_type, representative_data):
    if variant not in VARIANTS:
        raise ArgumentError("variant", variant, "must be one of " + ", ".join(VARIANTS))
    input_type = input_type or ("uint8" if variant == "int8" else "float32")
    output_type = output_type or "float32"
    for name, value in (("input_type", input_type), ("output_type", output_type)):
        if value not in IO_TYPES:
            raise ArgumentError(name, value, "must be one of " + ", ".join(IO_TYPES))
        if variant != "int8" and value != "float32":
            raise ArgumentError(name, value, f"must be 'float32' for variant={variant!r}",
                                hint="Integer input/output needs variant='int8'")
    if variant == "int8" and representative_data is None:
        raise ArgumentError("representative_data", None, "is required for variant='int8'",
                            hint="Pass a few hundred training images (raw 0-255 pixels)")
    if variant != "int8" and representative_data is not None:
        raise ArgumentError("representative_data", type(representative_data).__name__,
                            f"is only used by variant='int8', not {variant!r}")
    return input_type, output_type


def convert_tflite(
    model,
    *,
    variant: str = "float32",
    representative_data=None,
    num_calibration: int = 200,
    input_type: str | None = None,
    output_type: str | None = None,
    batch_size: int | None = None,
    seed: int = 0,
) -> bytes:
    """Convert ``model`` to .tflite bytes (no file written). See `export_tflite` for the arguments."""
    content, _ = _convert(model, variant=variant, representative_data=representative_data,
                          num_calibration=num_calibration, input_type=input_type,
                          output_type=output_type, batch_size=batch_size, seed=seed)
    return content


def _convert(model, *, variant, representative_data, num_calibration, input_type, output_type,
             batch_size, seed, traces=None):
    import tensorflow as tf

    input_type, output_type = _check_options(variant, input_type, output_type, representative_data)
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ArgumentError("batch_size", batch_size, "must be None (dynamic) or an int >= 1")
    image_shape = _trace.check_image_model(model)
    traces = traces or _trace.Traces(model)
    if variant == "float32" and batch_size is None and traces.float32 is not None:
        return traces.float32, 0  # the pre-flight of this export converted exactly this file
    exact = variant == "int8" and input_type == "uint8"  # raw pixel bytes in: scale 1, zero point 0
    function = traces.function(batch_size=batch_size, exact_uint8_input=exact)
    converter = base_converter(function, variant)
    used = [0]
    if variant == "int8":
        samples = sample_images(representative_data, num_samples=num_calibration, seed=seed)
        check_image_shape(samples, image_shape, name="representative_data")

        def representative():
            for i in range(len(samples)):
                used[0] += 1
                yield [samples[i : i + 1]]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, input_type)
        converter.inference_output_type = getattr(tf, output_type)
    try:
        with warnings.catch_warnings():  # TF's notice that int8 input statistics come from calibration
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            with quiet_native_logs():
                content = converter.convert()
    except Exception as exc:  # ConverterError, RuntimeError from calibration, errors from user data
        raise ExportError(
            f"TFLite conversion of {model.name!r} (variant={variant!r}) failed: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ''}"
            " (run tfxfer.export.preflight(model) to list unsupported ops)"
        ) from exc
    return content, used[0]


def export_tflite(
    model,
    path,
    *,
    variant: str = "int8",
    representative_data=None,
    num_calibration: int = 200,
    input_type: str | None = None,
    output_type: str | None = None,
    class_names=None,
    batch_size: int | None = None,
    run_preflight: bool = True,
    sidecar: bool = True,
    seed: int = 0,
    calibration_record: dict | None = None,
) -> TFLiteExport:
    """Convert ``model`` to a .tflite file (atomically) with a sidecar JSON of labels and input details.

    Args:
        model: a single-input image ``keras.Model`` taking raw 0-255 pixels.
        path: where to write the .tflite file; the sidecar goes to ``<stem>.json``.
        variant: "float32", "float16", "dynamic" (int8 weights) or "int8" (full integer).
        representative_data: images (array, ``(images, labels)`` or ``tf.data.Dataset``) from
            the training data, required for "int8" and rejected for the other variants.
        num_calibration: how many representative images to draw (seeded random subset).
        input_type: "float32", "uint8" or "int8"; integer types only for "int8"
            (default "uint8" for "int8", else "float32").
        output_type: "float32" (default), "uint8" or "int8" (integer only for "int8").
        class_names: one name per output, written to the sidecar.
        batch_size: None for a dynamic batch dimension (default) or a fixed batch size.
        run_preflight: check for augmentation layers, random ops and non-builtin ops first.
        sidecar: write ``<stem>.json`` beside the file.
        seed: seed of the calibration subset.
        calibration_record: where the int8 calibration images came from (e.g. ``{"source": "elpv",
            "split": "train"}``), written to the sidecar's ``calibration`` with the count and seed.

    Returns:
        A `TFLiteExport` describing the file.

    Raises:
        ArgumentError: ``path`` is a folder or cannot be written (checked before any work).
        ExportError: pre-flight or conversion failed; nothing is left at ``path``.
    """
    return export_tflite_traced(
        _trace.Traces(model), path, variant=variant, representative_data=representative_data,
        num_calibration=num_calibration, input_type=input_type, output_type=output_type, class_names=class_names,
        batch_size=batch_size, run_preflight=run_preflight, sidecar=sidecar, seed=seed,
        calibration_record=calibration_record)


def export_tflite_traced(traces, path, *, variant, representative_data, num_calibration, input_type, output_type,
                         class_names, batch_size, run_preflight, sidecar, seed, calibration_record) -> TFLiteExport:
    """`export_tflite` of ``traces.model`` through an export's shared `_trace.Traces` (its traces, and the
    float32 file its pre-flight converted)."""
    from tfxfer.export.flatbuffer import embed_metadata, tflite_ops
    from tfxfer.export.litert import new_interpreter
    from tfxfer.export.preflight import preflight_traced

    model = traces.model
    path = check_output_file("path", path)
    _check_options(variant, input_type, output_type, representative_data)
    image_shape = _trace.check_image_model(model)
    names = check_class_names(class_names, _trace.num_outputs(model))
    if variant == "int8":  # the calibration images are checked (size, finite pixels) before any work
        check_image_shape(sample_images(representative_data, num_samples=num_calibration, seed=seed), image_shape,
                          name="representative_data")
    if run_preflight:
        preflight_traced(traces)
    content, used = _convert(model, variant=variant, representative_data=representative_data,
                             num_calibration=num_calibration, input_type=input_type,
                             output_type=output_type, batch_size=batch_size, seed=seed, traces=traces)
    content = embed_metadata(content, json.dumps(embedded_metadata(
        variant=variant, class_names=names, image_shape=image_shape, model_name=model.name)).encode("utf-8"))
    interpreter = new_interpreter(model_content=content)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    side = sidecar_path(path) if sidecar else None
    entry = build_sidecar(content=content, variant=variant, class_names=names, image_shape=image_shape,
                          extra={"model_name": model.name, "calibration_samples": used},
                          task=model_task(model)) if sidecar else None
    if sidecar and variant == "int8":
        entry["calibration"] = {**(calibration_record or {"source": "representative_data"}), "samples": used,
                                "seed": seed}
    from tfxfer.utils import atomic

    # The sidecar is written first to a temporary (a failure there publishes nothing) and renamed into
    # place only after the file its sha256 names is: a failed rename of the file leaves no sidecar.
    with (atomic_path(side) if side else contextlib.nullcontext()) as side_tmp:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(content)
            if side:
                atomic.atomic_write_json(side_tmp, entry)
    return TFLiteExport(
        path=path, variant=variant, size_bytes=len(content),
        input_dtype=inp["dtype"].__name__, output_dtype=out["dtype"].__name__,
        input_quantization=tuple(float(v) for v in inp["quantization"]),
        output_quantization=tuple(float(v) for v in out["quantization"]),
        ops=tflite_ops(content), sidecar_path=side, calibration_samples=used,
    )
