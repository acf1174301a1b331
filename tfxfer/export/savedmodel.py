"""A versioned SavedModel for TF Serving: image bytes or uint8 tensors in, class scores and names out.

Layout: ``<base_dir>/<name>/<version>/`` (saved_model.pb, variables/, assets.extra/
tf_serving_warmup_requests) and ``<base_dir>/models.config``. Signatures:

* ``serving_default``: ``image_bytes`` (string ``[batch]``: JPEG, PNG, GIF or BMP files, what
  TF Serving's REST ``{"b64": ...}`` and gRPC clients send), decoded, turned upright by the EXIF
  orientation (in the graph: `tfxfer.export.exif`, as training, ``predict`` and the device runner
  turn them), resized to the model size.
* ``serving_image``: ``image`` (uint8 ``[batch, height, width, channels]``, any size, resized).

Both return what the model's head means (`OUTPUTS`, keyed by `tfxfer.export.metadata.model_task`, the
task the TFLite and ONNX sidecars record as ``output.kind``; `tfxfer.export.served_outputs`): a softmax
model ``probabilities``, ``classes``, ``top_class``, ``top_probability``; a linear classifier real softmax
``probabilities`` plus its ``logits``; a sigmoid model the ``predicted`` label set (no ``top_class``);
another output layer its ``scores`` (no invented probabilities). A regression model is refused with
`ModelError`, as `tfxfer.export.export_all` refuses it. The export checks the served output that is the
model's own (`model_output`: ``logits``, ``scores`` or ``probabilities``) against Keras before publishing.
The model runs with ``training=False``; bad input (undecodable bytes, wrong rank or dtype) raises an
``InvalidArgumentError`` / signature error for that request, never a crash of the server.

Example:
    >>> import keras, tempfile
    >>> from tfxfer.export import export_saved_model
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> result = export_saved_model(model, tempfile.mkdtemp(), name="pets", class_names=["cat", "dog"])
    >>> result.version, sorted(result.signatures), sorted(result.outputs)
    (1, ['serving_default', 'serving_image'], ['classes', 'probabilities', 'top_class', 'top_probability'])
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from tfxfer.errors import ArgumentError, ExportError
from tfxfer.export import _trace
from tfxfer.export import serving
from tfxfer.export.metadata import check_class_names, model_task
from tfxfer.export.served_outputs import (  # noqa: F401 - MULTILABEL_THRESHOLD: re-exported
    MULTILABEL_THRESHOLD, OUTPUTS, check_servable, model_output, served_outputs)
from tfxfer.utils.atomic import atomic_path
from tfxfer.utils.validate import check_safe_name

SIGNATURES = {
    "serving_default": "image_bytes: string [batch] of encoded images (JPEG/PNG/GIF/BMP)",
    "serving_image": "image: uint8 [batch, height, width, channels], resized to the model size",
}


@dataclasses.dataclass
class SavedModelExport:
    """Where the SavedModel went and what it offers."""

    path: str
    name: str
    version: int
    signatures: dict
    warmup_path: str | None
    models_config_path: str
    verified: bool
    outputs: dict | None = None  # {output: description} both signatures return (`OUTPUTS`); None: not recorded

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_folder(name: str, path, *, inside: str | None = None) -> str:
    """``path`` as a string if it is a folder or can be made one (neither it nor a parent is a file),
    else `ArgumentError` naming ``name``; with ``inside``, ``<path>/<inside>`` must not be a file either.

    Example:
        >>> import tempfile, os
        >>> f = os.path.join(tempfile.mkdtemp(), "f"); _ = open(f, "w").close()
        >>> check_folder("out_dir", f)
        Traceback (most recent call last):
        ...
        tfxfer.errors.ArgumentError: `out_dir` must be a folder (or a path where one can be made), not a file. \
Received: out_dir=...
    """
    path = os.fspath(path)
    probe = os.path.abspath(path)
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if os.path.exists(probe) and not os.path.isdir(probe):
        where = "" if probe == os.path.abspath(path) else f" ({probe!r} is a file)"
        raise ArgumentError(name, path, f"must be a folder (or a path where one can be made), not a file{where}")
    if inside is not None and os.path.exists(os.path.join(path, inside)) \
            and not os.path.isdir(os.path.join(path, inside)):
        raise ArgumentError(name, path, f"holds a file named {inside!r} where the folder {inside!r} goes",
                            hint="Move that file or choose another name or folder")
    return path


def _next_version(model_dir: str) -> int:
    versions = [int(v) for v in os.listdir(model_dir) if re.fullmatch(r"\d+", v)] if os.path.isdir(model_dir) else []
    return max(versions, default=0) + 1


def _serving_functions(model, class_names, image_size, channels):
    import tensorflow as tf

    from tfxfer.data.decode import resize_pixels, to_channels
    from tfxfer.export.exif import decode_upright_rgb

    call = _trace.model_call(model)
    task = model_task(model)
    height, width = image_size
    names = tf.constant(class_names)

    def to_model_size(images):  # uint8/float [b, h, w, c] -> float32 [b, H, W, c]: THE resize (data/decode.py)
        return tf.cast(resize_pixels(images, (height, width)), tf.float32)

    def outputs(images):
        return served_outputs(task, call(to_model_size(images)), names)

    def decode(data):  # RGB first (GIF, CMYK JPEG), EXIF orientation, then grayscale if asked: data/decode.py
        return to_model_size(to_channels(decode_upright_rgb(data), channels)[None])[0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def from_bytes(image_bytes):
        checks = [tf.debugging.assert_rank(image_bytes, 1,
                                           message="`image_bytes` must be a 1-D batch of encoded images")]
        with tf.control_dependencies([c for c in checks if c is not None]):  # checked before any decode
            image_bytes = tf.identity(image_bytes)
        images = tf.map_fn(decode, image_bytes,
                           fn_output_signature=tf.TensorSpec([height, width, channels], tf.float32))
        return outputs(images)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, channels], tf.uint8, name="image")])
    def from_tensor(image):
        checks = [tf.debugging.assert_rank(image, 4, message="`image` must be uint8 [batch, height, width, channels]"),
                  tf.debugging.assert_equal(tf.shape(image)[-1], channels,
                                            message=f"`image` must have {channels} channel(s)")]
        with tf.control_dependencies([c for c in checks if c is not None]):  # before the model: not a conv error
            image = tf.identity(image)
        return outputs(image)

    return {"serving_default": from_bytes, "serving_image": from_tensor}


def _warmup_logs(name, image_size, channels):
    import tensorflow as tf

    height, width = image_size
    ramp = np.linspace(0, 255, height * width * channels, dtype=np.float32).reshape(height, width, channels)
    image = ramp.astype(np.uint8)
    png = tf.io.encode_png(image).numpy()
    return serving.warmup_requests(model_name=name, requests=[
        ("serving_default", {"image_bytes": np.array([png], dtype=object)}),
        ("serving_image", {"image": image[None]}),
    ])


def check_saved_model(path, model=None) -> dict:
    """Load ``path`` with ``tf.saved_model.load``, replay its warm-up requests through their
    signatures, and (given ``model``) check that they serve ``model``'s `OUTPUTS` and compare the
    tensor signature with the Keras model. Like is compared with like: the served output that is the
    model's own (`model_output`: ``logits`` for a linear classifier, ``scores``, else ``probabilities``).

    Returns:
        ``{signature: that output}`` of the replayed requests. Raises `ExportError` on a mismatch.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(path))
    warmup = os.path.join(os.fspath(path), serving.WARMUP_DIR, serving.WARMUP_FILE)
    task = model_task(model) if model is not None else None
    expected_outputs = sorted(OUTPUTS[task]) if task in OUTPUTS else None
    results = {}
    for log in serving.read_warmup(warmup):
        signature = log.predict_log.request.model_spec.signature_name
        if signature not in loaded.signatures:
            raise ExportError(f"Warm-up request names signature {signature!r}, not in {list(loaded.signatures)}")
        inputs = {k: tf.constant(v) for k, v in serving.request_inputs(log).items()}
        served = loaded.signatures[signature](**inputs)
        if expected_outputs is not None and sorted(served) != expected_outputs:
            raise ExportError(f"Signature {signature!r} serves {sorted(served)}; a {task!r} model should serve "
                              f"{expected_outputs}")
        results[signature] = served[model_output(served)].numpy()
    if len(results) == 2 and not np.allclose(results["serving_default"], results["serving_image"], atol=1e-5):
        raise ExportError("The bytes and tensor signatures disagree on the same warm-up image")
    if model is not None and "serving_image" in results:
        pixels = [v for k, v in serving.request_inputs(_first(serving.read_warmup(warmup), "serving_image")).items()][0]
        expected = np.asarray(model.predict(pixels.astype(np.float32), verbose=0))
        if not np.allclose(results["serving_image"], expected, atol=1e-4):
            raise ExportError("The SavedModel and the Keras model disagree on the warm-up image (max abs difference "
                              f"{float(np.max(np.abs(results['serving_image'] - expected))):.3g})")
    return results


def _first(logs, signature):
    return next(log for log in logs if log.predict_log.request.model_spec.signature_name == signature)


def export_saved_model(
    model,
    base_dir,
    *,
    name: str,
    version: int | None = None,
    class_names=None,
    image_size: tuple[int, int] | None = None,
    warmup: bool = True,
    verify: bool = True,
    overwrite: bool = False,
    serving_base_path: str | None = None,
) -> SavedModelExport:
    """Write ``<base_dir>/<name>/<version>/`` for TF Serving (atomically) and ``models.config``.

    Args:
        model: a single-input image classifier (``keras.Model`` taking raw 0-255 pixels; softmax,
            sigmoid, logits or other class-score outputs: what each serves is `OUTPUTS`).
        base_dir: the model repository folder (TF Serving's ``--model_base_path`` parent).
        name: the served model name (letters, digits, ``._-``).
        version: integer version (default: one more than the highest present, else 1).
        class_names: one name per output (default "0", "1", ...).
        image_size: (height, width) images are resized to (default: the model's input size,
            which the model needs; set only to check it).
        warmup: write ``assets.extra/tf_serving_warmup_requests``.
        verify: load the written SavedModel back and replay the warm-up requests (needs warmup).
        overwrite: replace an existing version folder instead of raising.
        serving_base_path: base path written to ``models.config`` (e.g. "/models" in Docker).

    Returns:
        A `SavedModelExport`.

    Raises:
        ModelError: a regression model (a linear output that is the prediction, not class scores).
        ArgumentError: a bad ``name``, ``version``, ``class_names`` or ``base_dir``.
    """
    import keras

    from tfxfer.export.preflight import preflight

    height, width, channels = _trace.check_image_model(model)
    task = check_servable(model, model_task(model))  # regression refused, as export_all refuses it
    check_safe_name("name", name)
    check_folder("base_dir", base_dir, inside=name)
    if image_size is not None and tuple(image_size) != (height, width):
        raise ArgumentError("image_size", image_size, f"must match the model input size {(height, width)}")
    num_classes = _trace.num_outputs(model)
    names = check_class_names(class_names, num_classes) or [str(i) for i in range(num_classes)]
    model_dir = os.path.join(os.fspath(base_dir), name)
    if version is None:
        version = _next_version(model_dir)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArgumentError("version", version, "must be an int >= 1")
    path = os.path.join(model_dir, str(version))
    if os.path.exists(path) and not overwrite:
        raise ArgumentError("version", version, f"already exists at {path!r}", hint="Pass overwrite=True")
    if verify and not warmup:
        raise ArgumentError("verify", verify, "needs warmup=True (it replays the warm-up requests)")
    preflight(model, check_conversion=False)

    functions = _serving_functions(model, names, (height, width), channels)
    warmup_path = None
    with atomic_path(path, directory=True) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for signature, function in functions.items():
            archive.add_endpoint(signature, function)
        archive.write_out(tmp, verbose=False)
        if warmup:
            serving.write_warmup(tmp, _warmup_logs(name, (height, width), channels))
            warmup_path = os.path.join(path, serving.WARMUP_DIR, serving.WARMUP_FILE)
        if verify:
            check_saved_model(tmp, model)
    config_path = serving.write_models_config(base_dir, serving_base_path=serving_base_path)
    return SavedModelExport(path=path, name=name, version=version, signatures=dict(SIGNATURES),
                            warmup_path=warmup_path, models_config_path=config_path, verified=bool(verify),
                            outputs=dict(OUTPUTS[task]))
