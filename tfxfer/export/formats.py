"""Every deployable format of an image model through the same gate, timed: the rows of ``tfxfer
benchmark`` (`benchmark_formats`) and each format's floor (`floors`).

Formats: the TFLite variants (`tfxfer.export.export_all`: float32, float16, dynamic, int8; LiteRT, timed
side by side), ``onnx`` (`tfxfer.export.onnx`, onnxruntime) and ``saved_model`` (`export_serving`, its
``serving_image`` signature run in TensorFlow, reading its output that is the model's own:
`tfxfer.export.savedmodel.model_output`, e.g. ``logits`` of a linear classifier). Every file is judged by
`tfxfer.export.gate.compare_outputs` against the Keras outputs on the same images; rows are
`tfxfer.export.table.benchmark_row` dicts.

Example:
    >>> sorted(floors(["float32", "onnx"]))
    ['float32', 'onnx']
    >>> floors(["int8"], max_accuracy_drop=0.5)["int8"].max_accuracy_drop
    0.5
"""

from __future__ import annotations

import dataclasses
import os

from tfxfer.utils.native_logs import quiet_native_logs

#: Formats that are not TFLite variants of `tfxfer.export.export_all`.
OTHER_FORMATS = ("onnx", "saved_model")


def floors(formats, *, min_agreement=None, max_accuracy_drop=None) -> dict:
    """``{format: Thresholds}``: the gate's default for each format, with the two floors replaced
    for all when given."""
    from tfxfer.export.gate import DEFAULT_THRESHOLDS
    from tfxfer.export.onnx import ONNX_THRESHOLDS

    base = {**DEFAULT_THRESHOLDS, "onnx": ONNX_THRESHOLDS, "saved_model": DEFAULT_THRESHOLDS["float32"]}
    out = {}
    for name in formats:
        limits = base[name]
        if min_agreement is not None:
            limits = dataclasses.replace(limits, min_top1_agreement=min_agreement)
        if max_accuracy_drop is not None:
            limits = dataclasses.replace(limits, max_accuracy_drop=max_accuracy_drop)
        out[name] = limits
    return out


def _dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def _time_calls(call, runs: int) -> dict | None:
    """Batch-1 latency of ``call`` (`tfxfer.export.onnx.time_calls`, the ONNX rows' timer), None for no runs."""
    from tfxfer.export.onnx import time_calls

    return time_calls(call, runs=runs) if runs >= 1 else None


def _row(name, **kwargs) -> dict:
    from tfxfer.export.table import benchmark_row

    return benchmark_row(name, **kwargs)


def _keras_row(model, model_path, images, labels, reference, runs, threads, task) -> dict:
    """The reference row: the .keras file, its accuracy (per label decision at 0.5 for a multi-label
    model, as the gate judges it), and one image through ``model(x)`` timed."""
    import numpy as np

    one = np.asarray(images[:1], dtype=np.float32)
    latency = _time_calls(lambda: model(one, training=False), runs)
    row = _row("keras", path=model_path, size=os.path.getsize(model_path), result=None, latency=latency,
               threads=(1, threads))
    correct = ((reference >= 0.5) == (np.asarray(labels) >= 0.5) if task == "multilabel"
               else reference.argmax(1) == np.asarray(labels))
    row["accuracy"] = row["accuracy_keras"] = float(np.mean(correct))
    return row


def _saved_model_row(model, out, names, images, labels, reference, limits, runs, threads, task) -> dict:
    import numpy as np
    import tensorflow as tf

    from tfxfer.export import export_serving
    from tfxfer.export.gate import compare_outputs
    from tfxfer.export.savedmodel import model_output

    pixels = np.clip(np.round(images), 0, 255).astype(np.uint8)
    with quiet_native_logs():  # oneDNN's note on uint8 kernels (its warm-up check runs them first)
        saved = export_serving(model, os.path.join(out, "serving"), name="model", class_names=names)
        signature = tf.saved_model.load(saved.path).signatures["serving_image"]
        key = model_output(signature.structured_outputs)  # what `reference` (model.predict) holds: like with like
        outputs = np.concatenate([signature(image=tf.constant(pixels[i:i + 64]))[key].numpy()
                                  for i in range(0, len(pixels), 64)])
    result = compare_outputs("saved_model", saved.path, reference, outputs, labels, names, limits, task=task)
    one = tf.constant(pixels[:1])
    latency = _time_calls(lambda: signature(image=one), runs)
    return _row("saved_model", path=saved.path, size=_dir_size(saved.path), result=result, latency=latency,
                threads=(1, threads))


def benchmark_formats(model, out, *, formats, eval_data, class_names, limits, representative_data=None,
                      calibration_record=None, num_calibration: int = 500, runs: int = 50, threads: int = 2,
                      model_path: str | None = None, progress=None) -> list[dict]:
    """One row per format (and a ``keras`` reference row when ``model_path`` is given): every file
    exported into ``out``, gated against ``model`` on ``eval_data`` under ``limits`` (`floors`) and
    timed. Files that miss their floor are kept (marked FAIL in their sidecars)."""
    import numpy as np

    from tfxfer.export import export_all
    from tfxfer.export.metadata import check_gateable
    from tfxfer.export.table import write_verdicts

    task = check_gateable(model)  # a regression model refused before anything is written; multi-label per label
    images, labels = eval_data
    reference = np.asarray(model.predict(images, batch_size=64, verbose=0), dtype=np.float32)
    thread_counts = (1, threads) if threads != 1 else (1,)
    note = progress or (lambda text: None)
    rows = []
    if model_path:
        rows.append(_keras_row(model, model_path, images, labels, reference, runs, threads, task))
    tflite = [f for f in formats if f not in OTHER_FORMATS]
    if tflite:
        note(f"TFLite: {', '.join(tflite)} (convert, gate{', time in LiteRT' if runs else ''})")
        table = export_all(model, out, variants=tflite, representative_data=representative_data,
                           eval_data=(images, labels), class_names=class_names, num_calibration=num_calibration,
                           thresholds={v: limits[v] for v in tflite}, benchmark=runs > 0, threads=thread_counts,
                           bench_runs=max(runs, 1), bench_memory=False, keep_failed=True,
                           calibration_record=calibration_record)
        for variant in tflite:
            bench = table.benchmarks.get(variant)
            lat = bench.latency if bench else {}
            rows.append(_row(variant, path=table.exports[variant].path, size=table.exports[variant].size_bytes,
                             result=table.gate[variant], latency=lat.get("1"), latency_nt=lat.get(str(threads)),
                             threads=(1, threads)))
    if "onnx" in formats:
        from tfxfer.export.onnx import benchmark_onnx, export_onnx, verify_onnx

        note("ONNX (convert, gate in onnxruntime" + (", time)" if runs else ")"))
        exported = export_onnx(model, os.path.join(out, "model.onnx"), eval_data=None, class_names=class_names)
        result = verify_onnx(model, exported.path, (images, labels), thresholds={"onnx": limits["onnx"]},
                             class_names=class_names, reference_outputs=reference, raise_on_failure=False)["onnx"]
        write_verdicts({"onnx": exported.sidecar_path}, {"onnx": result})
        lat = benchmark_onnx(exported.path, threads=thread_counts, runs=runs)["latency"] if runs else {}
        rows.append(_row("onnx", path=exported.path, size=exported.size_bytes, result=result, latency=lat.get("1"),
                         latency_nt=lat.get(str(threads)), threads=(1, threads)))
    if "saved_model" in formats:
        note("SavedModel (export, gate and time its serving_image signature in TensorFlow)")
        names = list(class_names) if class_names else [str(i) for i in range(reference.shape[1])]
        rows.append(_saved_model_row(model, out, names, images, labels, reference, limits["saved_model"], runs,
                                     threads, task))
    return rows
