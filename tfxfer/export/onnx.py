"""ONNX export of an image model, verified in onnxruntime through the same gate as the TFLite files.

`export_onnx` writes ``<stem>.onnx`` with Keras 3 ``model.export(format="onnx")`` (tf2onnx), names
its input ``image`` (raw 0-255 float32 pixels, NHWC, dynamic batch; preprocessing is inside the
graph, as in the TFLite files) and its output for what it holds (``probabilities`` for a softmax
head; ``logits``, ``label_probabilities`` or ``scores`` otherwise: `OUTPUT_KINDS`), embeds the class names in the
file's metadata, runs it in onnxruntime on held-out data and judges it with
`tfxfer.export.gate.compare_outputs` (the measure every TFLite variant gets), under the float32
file's limits by default (`ONNX_THRESHOLDS`: top-1 agreement >= 99 %, max abs error <= 1e-4).
A ``<stem>.json`` sidecar beside the file records the labels, the input, the producer and the
gate's verdict. A file that fails is not written (unless ``keep_failed``).

`verify_onnx` gates an existing file, `predict_onnx` runs one, `benchmark_onnx` times one (batch 1,
1 and N threads). Needs the ``onnx`` extra: ``pip install 'tfxfer[onnx]'``.

Example:
    >>> import numpy as np, keras, os, tempfile
    >>> from tfxfer.export import export_onnx
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> x = np.random.default_rng(0).uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    >>> y = model.predict(x, verbose=0).argmax(1)
    >>> result = export_onnx(model, os.path.join(tempfile.mkdtemp(), "model.onnx"), eval_data=(x, y),
    ...                      class_names=["cat", "dog"])
    >>> result.gate.passed, result.gate.top1_agreement, os.path.basename(result.sidecar_path)
    (True, 1.0, 'model.json')
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
import time
import warnings

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, ExportError, GateError, MissingDependencyError, ModelError
from tfxfer.export import _trace
from tfxfer.export.data import as_arrays, check_image_shape, keras_reference, multilabel_targets, sparse_labels
from tfxfer.export.gate import GateReport, Thresholds, compare_outputs, resolve_thresholds
from tfxfer.export.metadata import OUTPUT_KINDS, RESIZE_NOTE, check_class_names, check_gateable, model_task
from tfxfer.export.table import write_verdicts
from tfxfer.utils.atomic import atomic_path, atomic_write_json
from tfxfer.utils.native_logs import quiet_native_logs

FORMAT = "tfxfer-onnx-sidecar"
FORMAT_VERSION = 1
#: The gate key of an ONNX file; ``thresholds={"onnx": {...}}`` overrides `ONNX_THRESHOLDS`.
VARIANT = "onnx"
#: An ONNX file computes in float32 like the float32 TFLite file, so it is held to the same limits.
ONNX_THRESHOLDS = Thresholds(min_top1_agreement=0.99, max_abs_error=1e-4)
INSTALL = "pip install 'tfxfer[onnx]'  (or: pip install tf2onnx onnx onnxruntime)"


@dataclasses.dataclass
class OnnxExport:
    """One exported .onnx file, what it expects, and its gate result (None when not gated)."""

    path: str
    size_bytes: int
    sidecar_path: str
    opset: int
    input_name: str
    output_name: str
    gate: object = None

    @property
    def variant(self) -> str:
        return VARIANT

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "gate"}
        out["variant"] = VARIANT
        out["gate"] = None if self.gate is None else self.gate.to_dict()
        return out


def onnx_sidecar_path(onnx_path) -> str:
    """``<stem>.json`` beside ``<stem>.onnx`` (the TFLite files' rule)."""
    stem, ext = os.path.splitext(os.fspath(onnx_path))
    return (stem if ext == ".onnx" else os.fspath(onnx_path)) + ".json"


def _require(*packages):
    import importlib

    modules = []
    for package in packages:
        try:
            modules.append(importlib.import_module(package))
        except ImportError as exc:
            raise MissingDependencyError(package, INSTALL, "ONNX export and verification") from exc
    return modules


def _onnx_thresholds(thresholds) -> Thresholds:
    """`ONNX_THRESHOLDS` overridden by ``thresholds["onnx"]`` (a `Thresholds` or a dict of its fields);
    other keys are validated (`resolve_thresholds`) and otherwise ignored."""
    resolved = resolve_thresholds(thresholds)  # type and field-name checks
    value = (thresholds or {}).get(VARIANT)
    if value is None:
        return ONNX_THRESHOLDS
    if isinstance(value, Thresholds):
        return value
    return dataclasses.replace(ONNX_THRESHOLDS, **{k: getattr(resolved[VARIANT], k) for k in value})


def _check_path(path) -> str:
    """``path`` if an .onnx file can be written there (`tfxfer.utils.output_path.check_output_file`)."""
    from tfxfer.utils.output_path import check_output_file

    return check_output_file("path", path, suffix=".onnx")


def _check_eval(eval_data, image_shape, num_classes, task: str = "multiclass"):
    images, labels = as_arrays(eval_data, name="eval_data")
    if labels is None:
        raise ArgumentError("eval_data", "images without labels", "must carry labels: (images, labels)")
    check_image_shape(images, image_shape, name="eval_data")
    if task == "multilabel":  # sigmoid outputs: 0/1 rows, judged per label decision (as the TFLite gate)
        return images, multilabel_targets(labels, num_labels=num_classes, name="eval_data")
    return images, sparse_labels(labels, num_classes=num_classes, name="eval_data")


def session(model_file, *, threads: int | None = None):
    """An onnxruntime ``InferenceSession`` (CPU) for a .onnx path or its bytes; `ModelError` if the file
    is not a loadable ONNX model."""
    (ort,) = _require("onnxruntime")
    if isinstance(model_file, (bytes, bytearray)):
        source, what = bytes(model_file), f"the {len(model_file)} .onnx bytes"
    elif isinstance(model_file, (str, os.PathLike)):
        source = what = os.fspath(model_file)
        if not os.path.isfile(source):
            raise ArgumentError("model_file", source, "must be an existing .onnx file")
    else:
        raise ArgumentTypeError("model_file", model_file, "a .onnx path or its bytes")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
            raise ArgumentError("threads", threads, "must be an int >= 1")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises InvalidProtobuf / Fail / InvalidGraph, all plain Exceptions
        text = str(exc).strip().splitlines()
        raise ModelError(f"{what} is not a loadable ONNX model (truncated, corrupt or not ONNX?): "
                         f"{type(exc).__name__}: {text[0][:300] if text else ''}") from exc


def _io(sess, where: str, image_shape=None, num_classes=None):
    inputs, outputs = sess.get_inputs(), sess.get_outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(f"{where} has {len(inputs)} inputs and {len(outputs)} outputs; an image classifier "
                         "file has one of each")
    shape = list(inputs[0].shape)
    if len(shape) != 4:
        raise ModelError(f"{where} input {inputs[0].name!r} has shape {shape}; expected (batch, height, width, channels)")
    if image_shape is not None and tuple(shape[1:]) != tuple(image_shape):
        raise ModelError(f"{where} takes images of shape {tuple(shape[1:])}, but the model takes {tuple(image_shape)}: "
                         "it was exported from a different model")
    out_shape = list(outputs[0].shape)
    if num_classes is not None and (len(out_shape) != 2 or out_shape[-1] != num_classes):
        raise ModelError(f"{where} outputs shape {out_shape}, but the model has {num_classes} classes: "
                         "it was exported from a different model")
    return inputs[0], outputs[0]


def predict_onnx(model_file, images, *, batch_size: int = 64, threads: int | None = None) -> np.ndarray:
    """Float32 outputs of a .onnx file (a path, its bytes, or an ``InferenceSession``) for ``images``
    (raw pixels, ``(n, h, w, c)``), ``batch_size`` images per call."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ArgumentError("batch_size", batch_size, "must be an int >= 1")
    sess = model_file if hasattr(model_file, "run") and hasattr(model_file, "get_inputs") else session(
        model_file, threads=threads)
    inp, _ = _io(sess, "the .onnx file")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ArgumentError("images", images.shape, "must be a non-empty (n, height, width, channels) array")
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    step = fixed or batch_size
    results = []
    for start in range(0, len(images), step):
        chunk = images[start:start + step]
        n = len(chunk)
        if fixed and n < step:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
        try:
            results.append(np.asarray(sess.run(None, {inp.name: chunk})[0], dtype=np.float32)[:n])
        except Exception as exc:  # wrong input size for the file, ...
            raise ModelError(f"onnxruntime could not run the file on images of shape {chunk.shape[1:]}: "
                             f"{type(exc).__name__}: {str(exc).strip()[:300]}") from exc
    return np.concatenate(results)


def verify_onnx(model, model_file, eval_data, *, thresholds=None, class_names=None, batch_size: int = 64,
                reference_outputs=None, raise_on_failure: bool = True) -> GateReport:
    """Run a .onnx file in onnxruntime on held-out ``eval_data`` (``(images, labels)`` or a dataset) and
    gate it against ``model`` with `compare_outputs`: a `GateReport` with one result, ``"onnx"``.

    A file that is not ONNX, or was exported from a model with another input size or class count,
    raises `ModelError`; a failing file raises `GateError` (with ``.report``) unless
    ``raise_on_failure=False``. ``thresholds``: ``{"onnx": Thresholds | dict}``; other arguments as
    `tfxfer.export.verify`.
    """
    image_shape = _trace.check_image_model(model)
    num_classes = _trace.num_outputs(model)
    task = check_gateable(model)
    names = check_class_names(class_names, num_classes)
    limits = _onnx_thresholds(thresholds)
    images, labels = _check_eval(eval_data, image_shape, num_classes, task)
    where = repr(os.fspath(model_file)) if isinstance(model_file, (str, os.PathLike)) else "the .onnx file"
    sess = session(model_file) if not hasattr(model_file, "run") else model_file
    _io(sess, where, image_shape, num_classes)
    if names is None and isinstance(model_file, (str, os.PathLike)):
        side = onnx_sidecar_path(model_file)
        if os.path.isfile(side):
            try:
                with open(side, encoding="utf-8") as f:
                    names = json.load(f).get("class_names")
            except (OSError, ValueError, AttributeError):
                names = None
    if names is None or len(names) != num_classes:
        names = [str(i) for i in range(num_classes)]
    reference = keras_reference(model, images, reference_outputs, num_classes=num_classes, batch_size=batch_size)
    outputs = predict_onnx(sess, images, batch_size=batch_size)
    path = os.fspath(model_file) if isinstance(model_file, (str, os.PathLike)) else None
    report = GateReport({VARIANT: compare_outputs(VARIANT, path, reference, outputs, labels, list(names), limits,
                                                        task=task)})
    if raise_on_failure and not report.passed:
        raise GateError(f"Verification gate failed for ['onnx']:\n{report.format()}", report=report)
    return report


def _convert(model, path: str, image_shape, opset):
    """``model.export(path, format="onnx")`` with a named float32 NHWC input and a dynamic batch."""
    import tensorflow as tf

    spec = tf.TensorSpec([None, *image_shape], tf.float32, name=_trace.INPUT_NAME)
    try:
        with warnings.catch_warnings(), quiet_native_logs():
            warnings.simplefilter("ignore", FutureWarning)  # Keras' tf2onnx numpy-2 patch probes np.object
            warnings.simplefilter("ignore", DeprecationWarning)
            model.export(path, format="onnx", input_signature=[spec], opset_version=opset, verbose=False)
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raise ExportError(f"ONNX conversion of {model.name!r} failed: {type(exc).__name__}: "
                          f"{text[0][:400] if text else ''}") from exc


def _finish(path: str, *, class_names, image_shape, model_name: str, output_name: str) -> tuple[int, str, str]:
    """Name the output ``output_name`` (what it holds: `OUTPUT_KINDS`), embed the labels and input
    description, check the graph; returns ``(opset, input name, output name)``."""
    onnx, _ = _require("onnx", "tf2onnx")
    proto = onnx.load(path)
    graph = proto.graph
    old = graph.output[0].name
    new = output_name
    if old != new:
        for node in graph.node:
            node.output[:] = [new if name == old else name for name in node.output]
            node.input[:] = [new if name == old else name for name in node.input]
        graph.output[0].name = new
    height, width, channels = image_shape
    meta = {"format": "tfxfer-onnx", "format_version": FORMAT_VERSION, "variant": VARIANT,
            "model_name": model_name, "class_names": class_names,
            "input": {"height": height, "width": width, "channels": channels, "layout": "NHWC",
                      "color": "RGB" if channels == 3 else "grayscale", "pixel_range": [0, 255], "resize": RESIZE_NOTE}}
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "tfxfer", json.dumps(meta)
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise ExportError(f"The converted ONNX graph of {model_name!r} does not pass onnx.checker: {exc}") from exc
    onnx.save(proto, path)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    return int(opset), graph.input[0].name, new


def _sidecar(path: str, *, class_names, image_shape, opset, input_name, output_name, model_name,
             task: str = "multiclass") -> dict:
    import keras

    onnx, tf2onnx, ort = _require("onnx", "tf2onnx", "onnxruntime")
    height, width, channels = image_shape
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "variant": VARIANT, "model_name": model_name,
        "class_names": class_names,
        "input": {"name": input_name, "shape": [-1, height, width, channels], "dtype": "float32",
                  "height": height, "width": width, "channels": channels, "layout": "NHWC",
                  "color": "RGB" if channels == 3 else "grayscale", "pixel_range": [0, 255], "resize": RESIZE_NOTE,
                  "note": "raw pixels as float32; preprocessing is inside the model"},
        "output": {"name": output_name, "shape": [-1, len(class_names or []) or None], "dtype": "float32",
                   "kind": OUTPUT_KINDS[task], "task": task},
        "opset": opset, "sha256": digest,
        "producer": {"keras": keras.__version__, "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__},
        "runtime": {"onnxruntime": ort.__version__},
    }


def export_onnx(model, path, *, eval_data, class_names=None, thresholds=None, opset: int | None = None,
                keep_failed: bool = False, batch_size: int = 64) -> OnnxExport:
    """Export an image model to ONNX and verify it in onnxruntime through the TFLite files' gate.

    Args:
        model: a single-input image ``keras.Model`` taking raw 0-255 pixels (float32 policy).
        path: where to write the file (must end in ``.onnx``); the sidecar goes to ``<stem>.json``.
        eval_data: held-out ``(images, labels)`` (or a dataset of them) for the gate, never the
            training data; None only to skip the gate (the sidecar then says ``"gate": null``).
        class_names: one name per output (sidecar and the file's metadata).
        thresholds: ``{"onnx": Thresholds | dict}`` overriding `ONNX_THRESHOLDS`.
        opset: ONNX opset (default: tf2onnx's).
        keep_failed: keep a file that fails the gate (its sidecar says so) instead of raising.
        batch_size: images per onnxruntime call during the gate.

    Returns:
        An `OnnxExport` (``.gate`` is the gate's `VariantResult`, None without ``eval_data``).

    Raises:
        MissingDependencyError: tf2onnx, onnx or onnxruntime is not installed.
        ExportError: conversion failed; GateError: the file failed the gate (nothing is written, a
            previous file at ``path`` is left as it was) unless ``keep_failed``.
    """
    path = _check_path(path)
    image_shape = _trace.check_image_model(model)
    num_classes = _trace.num_outputs(model)
    task = check_gateable(model)  # a regression model is refused before any work, as by export_all
    names = check_class_names(class_names, num_classes)
    limits = _onnx_thresholds(thresholds)
    if opset is not None and (not isinstance(opset, int) or isinstance(opset, bool) or not 9 <= opset <= 25):
        raise ArgumentError("opset", opset, "must be None or an int in 9-25")
    data = _check_eval(eval_data, image_shape, num_classes, task) if eval_data is not None else None
    _require("tf2onnx", "onnx", "onnxruntime")
    side = onnx_sidecar_path(path)
    result = None
    with atomic_path(path) as tmp:
        _convert(model, tmp, image_shape, opset)
        used_opset, input_name, output_name = _finish(tmp, class_names=names, image_shape=image_shape,
                                                      model_name=model.name, output_name=OUTPUT_KINDS[model_task(model)])
        if data is not None:
            report = verify_onnx(model, tmp, data, thresholds={VARIANT: limits}, class_names=names,
                                 batch_size=batch_size, raise_on_failure=False)
            result = report[VARIANT]
            result.path = path
            if not result.passed and not keep_failed:
                raise GateError(f"Verification gate failed for ['onnx']; {path!r} was not written "
                                f"(pass keep_failed=True to keep it).\n{report.format()}", report=report)
        entry = _sidecar(tmp, class_names=names, image_shape=image_shape, opset=used_opset, input_name=input_name,
                         output_name=output_name, model_name=model.name, task=model_task(model))
        size = os.path.getsize(tmp)
    entry["gate"] = None
    atomic_write_json(side, entry)
    if result is not None:
        write_verdicts({VARIANT: side}, {VARIANT: result})
    return OnnxExport(path=path, size_bytes=size, sidecar_path=side, opset=used_opset, input_name=input_name,
                      output_name=output_name, gate=result)


def benchmark_onnx(model_file, *, threads=(1, 2), runs: int = 50, warmup: int = 5, seed: int = 0) -> dict:
    """Batch-1 onnxruntime latency of a .onnx file: ``{"size_bytes", "latency": {"<threads>":
    {"median_ms", "p90_ms"}}}`` (``runs`` timed calls per thread count after ``warmup``, random pixels).
    Timed in this process, one thread count after the other."""
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 1:
        raise ArgumentError("runs", runs, "must be an int >= 1")
    threads = tuple(threads) if isinstance(threads, (list, tuple)) else (threads,)
    path = os.fspath(model_file)
    latency = {}
    for t in threads:
        sess = session(path, threads=t)
        inp, _ = _io(sess, repr(path))
        shape = [1, *[d if isinstance(d, int) else 1 for d in inp.shape[1:]]]
        x = np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)
        latency[str(t)] = time_calls(lambda: sess.run(None, {inp.name: x}), runs=runs, warmup=warmup)
    return {"size_bytes": os.path.getsize(path), "latency": latency}


def time_calls(call, *, runs: int, warmup: int = 3) -> dict:
    """``{"median_ms", "p90_ms"}`` of ``runs`` calls of ``call()`` after ``warmup`` untimed ones.

    Example:
        >>> sorted(time_calls(lambda: sum(range(100)), runs=5))
        ['median_ms', 'p90_ms']
    """
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]}
