"""`verify`: run every exported file in LiteRT on held-out data and gate it against the Keras model.

Image models take ``(images, labels)``; text models take texts or ``(texts, labels)`` (the
model's own tokenizer makes the token ids; `tfxfer.export.text_gate`). Both are measured by
`tfxfer.export.gate.compare_outputs` against the same `Thresholds`. A failing variant raises
`GateError` carrying the `GateReport`, unless ``raise_on_failure=False``.

Example:
    >>> import numpy as np, keras, os, tempfile
    >>> from tfxfer.export import export_tflite, verify
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> x = np.random.default_rng(0).uniform(0, 255, (32, 8, 8, 3)).astype("float32")
    >>> y = model.predict(x, verbose=0).argmax(1)
    >>> f = export_tflite(model, os.path.join(tempfile.mkdtemp(), "m.tflite"), variant="float32")
    >>> report = verify(model, f, (x, y))
    >>> report.passed, report["float32"].top1_agreement
    (True, 1.0)
"""

from __future__ import annotations

import os

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, GateError
from tfxfer.export import _trace
from tfxfer.export.data import as_arrays, check_image_shape, keras_reference, multilabel_targets, sparse_labels
from tfxfer.export.gate import GateReport, Thresholds, compare_outputs, resolve_thresholds


def _entries(exports) -> list[tuple[str | None, object]]:
    """``[(variant or None, path or bytes)]`` from the many forms `verify` accepts."""
    from tfxfer.export.text_tflite import TextTFLiteExport
    from tfxfer.export.tflite import TFLiteExport

    exported = (TFLiteExport, TextTFLiteExport)
    if isinstance(exports, (str, os.PathLike, bytes, *exported)):
        exports = [exports]
    if isinstance(exports, dict):
        items = list(exports.items())
    elif isinstance(exports, (list, tuple)):
        items = [(None, e) for e in exports]
    else:
        raise ArgumentTypeError("exports", exports, "a .tflite path, a TFLiteExport, or a list/dict of them")
    out = []
    for variant, item in items:
        if isinstance(item, exported):
            out.append((variant or item.variant, item.path))
        elif isinstance(item, (str, os.PathLike, bytes)):
            out.append((variant, item if isinstance(item, bytes) else os.fspath(item)))
        else:
            raise ArgumentTypeError("exports", item, "a .tflite path or a TFLiteExport")
    if not out:  # nothing verified must not read as "passed"
        raise ArgumentError("exports", exports, "must name at least one .tflite file to verify")
    return out


def _checked_file(path, *, image_shape, num_classes: int):
    """A LiteRT interpreter of one ``exports`` file (a path or bytes), checked before any prediction:
    the file exists and loads, takes ``(batch, *image_shape)`` images and gives ``num_classes`` outputs
    (a file of another model fails here, not in the middle of the gate)."""
    from tfxfer.errors import ModelError
    from tfxfer.export.litert import load_interpreter

    what = f"{len(path)} .tflite bytes" if isinstance(path, bytes) else repr(path)
    if isinstance(path, str) and not os.path.isfile(path):
        raise ArgumentError("exports", path, "must name existing .tflite files")
    try:
        interpreter = load_interpreter(path)
    except ModelError as exc:
        raise ModelError(f"`exports` file {what} is not a loadable .tflite model (truncated or corrupt?): "
                         f"{str(exc.__cause__ or exc).strip()[:300]}") from exc
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    shape = tuple(int(d) for d in inputs[0]["shape_signature"][1:]) if len(inputs) == 1 else None
    classes = int(outputs[0]["shape_signature"][-1]) if len(outputs) == 1 else None
    if shape != tuple(image_shape) or classes != num_classes:
        found = (f"{len(inputs)} inputs and {len(outputs)} outputs" if shape is None or classes is None
                 else f"{shape} images and gives {classes} outputs")
        raise ModelError(f"`exports` file {what} takes {found}, but the model takes {tuple(image_shape)} images "
                         f"and gives {num_classes}: was it exported from another model?")
    return interpreter


def image_eval_data(data, *, image_shape, num_classes: int, task: str, name: str = "data"):
    """``(images, labels)`` of held-out image ``data``, checked before any work: finite pixels at the
    model's ``image_shape`` (channels included), labels present and of the form ``task`` needs (class
    ids or one-hot rows; multi-hot rows for "multilabel"), each error naming ``name``."""
    images, labels = as_arrays(data, name=name)
    check_image_shape(images, image_shape, name=name)
    if labels is None:
        raise ArgumentError(name, "images without labels", "must carry labels: (images, labels)")
    if task == "multilabel":
        return images, multilabel_targets(labels, num_labels=num_classes, name=name)
    return images, sparse_labels(labels, num_classes=num_classes, name=name)


def verify(
    model,
    exports,
    data,
    *,
    thresholds=None,
    class_names=None,
    batch_size: int = 64,
    raise_on_failure: bool = True,
    reference_outputs=None,
) -> GateReport:
    """Run each exported file in LiteRT on held-out ``data`` and gate it against ``model``.

    Args:
        model: the Keras model the files were exported from (an image or a tfxfer text model).
        exports: a .tflite path, a `TFLiteExport`, or a list / ``{variant: path}`` dict of them.
            A file's variant comes from its sidecar, else from inspecting the file.
        data: held-out ``(images, labels)`` or a ``tf.data.Dataset`` of them (labels: class ids
            or one-hot; multi-hot rows for a multi-label sigmoid model, whose gate counts each label
            decision at 0.5); images are raw pixels at the model's input size, all finite. For a text model:
            texts, or ``(texts, labels)`` (tag ids per token for a token classifier); without
            labels Keras's own predictions are the reference labels.
        thresholds: ``{variant: Thresholds | dict}`` overriding `DEFAULT_THRESHOLDS`; a key names a
            variant (`tfxfer.export.gate.THRESHOLD_VARIANTS`) or a key of ``exports`` (ArgumentError otherwise).
        class_names: names for the per-class report (default: the sidecar's, else indices).
        batch_size: images per interpreter call.
        raise_on_failure: raise `GateError` (with ``.report``) if any variant fails.
        reference_outputs: precomputed Keras outputs for ``data`` (images; skips recomputing them).

    Returns:
        A `GateReport`.

    Raises:
        ArgumentError: ``exports`` names no file, or a file that does not exist; a ``thresholds`` key
            that names no variant.
        ModelError: a file of ``exports`` that does not load, or takes other images or gives another
            number of outputs than ``model`` (checked before any prediction); a regression model (its task named): the gate judges classifiers and multi-label models.
        DataError: images of the wrong size or channels, a non-finite pixel, labels of the wrong form.
    """
    from tfxfer.export.flatbuffer import detect_variant
    from tfxfer.export.litert import predict_tflite
    from tfxfer.export.metadata import check_class_names, check_gateable, read_sidecar
    from tfxfer.export.text_gate import is_text_model, verify_text

    if not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError("batch_size", batch_size, "must be an int >= 1")
    if is_text_model(model):
        named = {}
        for variant, path in _entries(exports):
            named[variant or detect_variant(path)] = path
        return verify_text(model, named, data, thresholds=thresholds, class_names=class_names,
                           raise_on_failure=raise_on_failure)
    entries = _entries(exports)
    image_shape = _trace.check_image_model(model)
    task = check_gateable(model)
    limits = resolve_thresholds(thresholds, names=[variant for variant, _ in entries if variant])
    num_classes = _trace.num_outputs(model)
    class_names = check_class_names(class_names, num_classes)
    images, labels = image_eval_data(data, image_shape=image_shape, num_classes=num_classes, task=task, name="data")
    files = [_checked_file(path, image_shape=image_shape, num_classes=num_classes) for _, path in entries]
    reference = keras_reference(model, images, reference_outputs, num_classes=num_classes, batch_size=batch_size)
    results = {}
    for (variant, path), interpreter in zip(entries, files):
        sidecar = read_sidecar(path) if isinstance(path, str) else None
        variant = variant or (sidecar or {}).get("variant") or detect_variant(path)
        names = class_names or (sidecar or {}).get("class_names") or [str(i) for i in range(num_classes)]
        key = variant if variant not in results else f"{variant}:{os.path.basename(str(path))}"
        outputs = predict_tflite(interpreter, images, batch_size=batch_size)
        results[key] = compare_outputs(key, path, reference, outputs, labels, list(names),
                                       limits.get(variant, Thresholds()), task=task)
    report = GateReport(results)
    if raise_on_failure and not report.passed:
        raise GateError(f"Verification gate failed for {report.failed}:\n{report.format()}", report=report)
    return report
