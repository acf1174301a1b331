"""Selective quantization: full int8 unless the gate fails, then keep the layers that hurt most in float.

1. Export full int8 (`tfxfer.export.export_tflite`) and gate it. If it passes, done.
2. Otherwise LiteRT's quantization debugger (``tf.lite.experimental.QuantizationDebugger``) runs
   the calibrated model with NumericVerify ops and scores every quantized tensor by its
   noise-to-signal ratio (mean over channels of quantization MSE / float variance; a layer whose
   useful channels drown in a wide int8 range scores high even when its error per quantization
   step looks normal), next to the usual RMSE / scale.
3. The worst tensors are denylisted (kept in float) together with the ops that read them (an int8
   consumer would re-quantize the float tensor with the same bad range), the model is
   re-quantized and re-gated with 1, 2, 4, ... tensors until it passes (and, with
   ``min_top1_agreement``, agrees that often with the Keras model) or ``max_float_nodes``.

The input stays the raw pixel bytes: uint8 with scale 1 and zero point 0, as full int8 has
(`quantize_calibrated` re-quantizes with the converter's own input type; checked on every attempt).
``float_layers=[...]`` skips the search: exactly those Keras layers are kept in float. The full-int8
file stays beside the result as ``<stem>_full_int8.tflite`` for comparison, its sidecar carrying its own
gate verdict (a failed one is refused by ``export/litert_runner.py``).

Every attempt is written in a staging folder beside ``path`` (`tfxfer.export.gated_files`): only a
result that passed its gate is moved to ``path``, its verdict in its sidecar; a failed search writes
nothing (`GateError`) and leaves what was at ``path`` as it was, unless ``raise_on_failure=False``,
which moves the files in marked failed.
The result says what was kept in float and what it cost in size (and latency, if benchmarked).

Example:
    >>> import os, tempfile, numpy as np, tfxfer
    >>> from tfxfer.quantize import selective_int8
    >>> model = tfxfer.build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    >>> y = model.predict(x, verbose=0).argmax(1)
    >>> result = selective_int8(model, os.path.join(tempfile.mkdtemp(), "m.tflite"), representative_data=x,
    ...                         eval_data=(x, y), float_layers=["Conv1"],
    ...                         thresholds={"int8": {"max_accuracy_drop": 100.0}})
    >>> result.float_layers, result.gate.passed, result.input["exact_raw_pixels"]
    (['mobilenet_v2/Conv1'], True, True)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import warnings

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError

INTERNAL_OPS = {"QUANTIZE", "DEQUANTIZE"}
INPUT_TYPES = ("uint8", "int8", "float32")


@dataclasses.dataclass
class SelectiveResult:
    """What `selective_int8` produced.

    Attributes:
        export: the final `tfxfer.export.TFLiteExport` (full int8 if that passed).
        gate: its `tfxfer.export.GateReport` against ``model``.
        float_nodes: TFLite tensors kept in float (empty for full int8).
        float_layers: the Keras layer paths those tensors belong to.
        ranking: quantized tensors, worst first: ``{"tensor", "op", "layer", "nsr", "rmse_over_scale"}``.
        attempts: every gated try: ``{"float_nodes", "passed", "accuracy_drop", "top1_agreement", "size_bytes"}``.
        cost: size (and latency, when benchmarked) of the result vs full int8.
        input: the file's input quantization (`input_quantization`): uint8 raw pixel bytes by default.
    """

    export: object
    gate: object
    float_nodes: list
    float_layers: list
    ranking: list
    attempts: list
    cost: dict
    input: dict | None = None

    def to_dict(self) -> dict:
        return {"path": self.export.path, "passed": self.gate.passed, "float_nodes": self.float_nodes,
                "float_layers": self.float_layers, "ranking": self.ranking[:20], "attempts": self.attempts,
                "cost": self.cost, "input": self.input}


def noise_to_signal(float_values, quantized_values, scale, zero_point) -> float:
    """Mean over channels (last axis) of quantization MSE / variance of the float tensor."""
    f = np.asarray(float_values, np.float64)
    d = (np.asarray(quantized_values, np.int64) - zero_point) * float(scale)
    axes = tuple(range(f.ndim - 1)) or None
    err = np.atleast_1d(((d - f) ** 2).mean(axis=axes))
    var = np.atleast_1d(f.var(axis=axes))
    keep = var > 1e-12 * max(float(var.max()), 1e-30)
    return float((err[keep] / var[keep]).mean()) if keep.any() else 0.0


def _converter(model, samples, *, exact_uint8_input: bool = True):
    import tensorflow as tf

    from tfxfer.export import _trace

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [_trace.inference_function(model, exact_uint8_input=exact_uint8_input)])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([samples[i: i + 1]] for i in range(len(samples)))
    return converter


def _layer_of(model, tensor_name: str) -> str | None:
    """The Keras layer a (possibly fused, ``a;b;c``) TFLite tensor belongs to: its first part with a
    kernel (the convolution / dense of a fused op), else the first part that maps to a layer."""
    from tfxfer.export import _trace

    layers = dict(_trace.iter_layers(model))
    first = None
    for part in tensor_name.split(";"):
        found = _trace.layers_for_nodes(model, [part])
        if not found:
            continue
        first = first or found[0]
        layer = layers.get(found[0])
        if any(getattr(layer, a, None) is not None for a in ("kernel", "depthwise_kernel")):
            return found[0]
    return first


def _graph(calibrated: bytes):
    """``(quantizable op output names, {tensor: [consumer op output names]})`` of the calibrated model."""
    from tfxfer.export.litert import new_interpreter

    interpreter = new_interpreter(model_content=calibrated)
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    consumers: dict[str, list[str]] = {}
    outputs = []
    for op in interpreter._get_ops_details():  # LiteRT has no public op-graph API
        outs = [names[i] for i in op["outputs"] if i >= 0]
        if op["op_name"] in INTERNAL_OPS:
            continue
        outputs.extend(outs)
        for i in op["inputs"]:
            if i >= 0 and i in names:
                consumers.setdefault(names[i], []).extend(outs)
    return outputs, consumers


def rank_layers(model, representative_data, *, num_samples: int = 64, num_calibration: int | None = None,
                seed: int = 0):
    """Score every quantized tensor with the quantization debugger, worst first.

    The model is calibrated on ``num_calibration`` images of ``representative_data`` (all of them by
    default) with the input pinned to raw pixel bytes (`tfxfer.export._trace.exact_pixels`); the
    debugger scores the tensors on ``num_samples`` of those images.

    Returns:
        ``(ranking, debugger)``; ``debugger.calibrated_model`` re-quantizes with a denylist
        (`quantize_calibrated`).
    """
    import tensorflow as tf

    from tfxfer.export.data import sample_images

    calibration = sample_images(representative_data, num_samples=num_calibration or 10 ** 9, seed=seed)
    samples = sample_images(calibration, num_samples=num_samples, seed=seed)
    data = lambda: ([samples[i: i + 1]] for i in range(len(samples)))  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(converter=_converter(model, calibration),
                                                             debug_dataset=data)
        options = tf.lite.experimental.QuantizationDebugOptions(
            layer_direct_compare_metrics={"nsr": noise_to_signal})
        scorer = tf.lite.experimental.QuantizationDebugger(quant_debug_model_content=debugger.quant_model,
                                                           debug_dataset=data, debug_options=options)
        scorer.run()
    debugger.calibration_samples = len(calibration)
    buffer = io.StringIO()
    scorer.layer_statistics_dump(buffer)
    ranking = []
    for row in csv.DictReader(io.StringIO(buffer.getvalue())):
        scale = float(row["scale"]) or 1.0
        ranking.append({"tensor": row["tensor_name"], "op": row["op_name"], "layer": _layer_of(model, row["tensor_name"]),
                        "nsr": float(row["nsr"]), "rmse_over_scale": float(np.sqrt(float(row["mean_squared_error"]))) / scale})
    ranking.sort(key=lambda r: (-r["nsr"], -r["rmse_over_scale"]))
    return ranking, debugger


def quantize_calibrated(calibrated: bytes, *, float_nodes=(), input_type: str = "uint8") -> bytes:
    """Full-integer model from a calibrated one (`rank_layers`' ``debugger.calibrated_model``) with the
    tensors ``float_nodes`` (and their ops) kept in float, input of ``input_type`` and float32 output.

    This is the converter's own last step (the MLIR quantizer with the converter's input type), so a
    ``"uint8"`` input of a model traced with `tfxfer.export._trace.exact_pixels` is the raw pixel
    bytes (scale 1, zero point 0) whatever is kept in float, where the debugger's
    ``get_nondebug_quantized_model`` always gives a float input.
    """
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize  # the converter's (and the debugger's) quantizer

    from tfxfer.utils.native_logs import quiet_native_logs

    if input_type not in INPUT_TYPES:
        raise ArgumentError("input_type", input_type, "must be one of " + ", ".join(INPUT_TYPES))
    with quiet_native_logs():
        return mlir_quantize(calibrated, input_data_type=getattr(tf, input_type), output_data_type=tf.float32,
                             denylisted_nodes=list(float_nodes) or None)


def input_quantization(content_or_path) -> dict:
    """``{"dtype", "scale", "zero_point", "exact_raw_pixels"}`` of a .tflite file's input: exact when
    it takes uint8 pixel bytes with scale 1 and zero point 0."""
    from tfxfer.export.litert import load_interpreter

    detail = load_interpreter(content_or_path).get_input_details()[0]
    scale, zero = detail["quantization"]
    dtype = detail["dtype"].__name__
    return {"dtype": dtype, "scale": float(scale), "zero_point": int(zero),
            "exact_raw_pixels": dtype == "uint8" and (float(scale), int(zero)) == (1.0, 0)}


def _nodes_for_layers(model, names: list[str], outputs: list[str]) -> list[str]:
    from tfxfer.export import _trace

    paths = [p for p, _ in _trace.iter_layers(model)]
    wanted = {}
    for name in names:
        matches = [p for p in paths if p == name or p.rsplit("/", 1)[-1] == name]
        if not matches:
            raise UnknownNameError("layer", name, [p.rsplit("/", 1)[-1] for p in paths])
        wanted[matches[0]] = name
    nodes = []
    for tensor in outputs:
        layers = {found for part in tensor.split(";") for found in _trace.layers_for_nodes(model, [part])}
        if layers & set(wanted):
            nodes.append(tensor)
    missing = [n for p, n in wanted.items() if not any(p in {f for part in t.split(";")
                                                               for f in _trace.layers_for_nodes(model, [part])}
                                                          for t in nodes)]
    if missing:
        raise ArgumentError("float_layers", missing, "name layers with no quantized op in the converted model",
                            hint="BatchNorm and activation layers are fused into the preceding convolution")
    return nodes


def _expand(nodes, consumers, outputs) -> list[str]:
    chosen = list(dict.fromkeys(nodes))
    for node in nodes:
        for consumer in consumers.get(node, []):
            if consumer in outputs and consumer not in chosen:
                chosen.append(consumer)
    return chosen


def _meets(gate_result, min_top1_agreement) -> bool:
    return gate_result.passed and (min_top1_agreement is None or gate_result.top1_agreement >= min_top1_agreement)


def selective_int8(model, path, *, representative_data, eval_data, float_layers=None, thresholds=None,
                   max_float_nodes: int = 16, include_consumers: bool = True, num_calibration: int = 200,
                   num_debug: int = 64, class_names=None, benchmark: bool = False, input_type: str = "uint8",
                   min_top1_agreement: float | None = None, calibration_record: dict | None = None,
                   raise_on_failure: bool = True, seed: int = 0) -> SelectiveResult:
    """Full-int8 TFLite, falling back to int8 with the most harmful layers kept in float.

    Args:
        model: the float Keras 3 image model (raw 0-255 pixels in).
        path: where to write the .tflite file (sidecar beside it).
        representative_data: calibration images (training data).
        eval_data: held-out ``(images, labels)`` the attempts are judged on (the gate, and
            ``min_top1_agreement``). A caller that reports a final figure should gate the result again
            on data the search did not see (the recipes search on the validation split).
        float_layers: Keras layer names (or ``backbone/layer`` paths) to keep in float; skips the search.
        thresholds: gate thresholds (`tfxfer.export.verify`); the "int8" entry applies.
        max_float_nodes: give up (GateError) when this many tensors are in float and it still fails.
        include_consumers: in the search, also keep the ops reading a float-kept tensor in float
            (``float_layers`` are kept exactly as named).
        num_calibration: calibration images for the conversion (all of them calibrate the ranges).
        num_debug: images (of those) the debugger scores layers on.
        class_names: written to the sidecar and embedded in the file.
        benchmark: also time full int8 and the result (single thread) for the cost report.
        input_type: "uint8" (default: the raw pixel bytes, scale 1 / zero point 0, as
            `tfxfer.export.export_tflite` gives; checked), "int8" or "float32".
        min_top1_agreement: also require this top-1 agreement with ``model`` on ``eval_data`` before
            stopping the search (e.g. `tfxfer.export.gate.INT8_AGREEMENT_TARGET`); the gate itself is
            unchanged. When no attempt reaches it, the passing attempt with the highest agreement is kept.
        calibration_record: where ``representative_data`` came from (``{"source", "split"}``), written
            to the sidecar with the number of images and the seed.
        raise_on_failure: raise `GateError` if no attempt passes, writing nothing; False writes the
            files, their sidecars' ``gate`` saying ``"passed": false``.
        seed: seed of the sample subsets.

    Returns:
        A `SelectiveResult`.
    """
    from tfxfer.export.gated_files import staged
    from tfxfer.utils.output_path import check_output_file

    if float_layers is not None and (isinstance(float_layers, str) or not all(isinstance(n, str) for n in float_layers)):
        raise ArgumentTypeError("float_layers", float_layers, "a list of layer names")
    if isinstance(max_float_nodes, bool) or not isinstance(max_float_nodes, int) or max_float_nodes < 1:
        raise ArgumentError("max_float_nodes", max_float_nodes, "must be an int >= 1")
    if input_type not in INPUT_TYPES:
        raise ArgumentError("input_type", input_type, "must be one of " + ", ".join(INPUT_TYPES))
    if min_top1_agreement is not None and (isinstance(min_top1_agreement, bool)
                                           or not isinstance(min_top1_agreement, (int, float))
                                           or not 0.0 <= min_top1_agreement <= 1.0):
        raise ArgumentError("min_top1_agreement", min_top1_agreement, "must be None or a number in [0, 1]")
    path = os.path.abspath(check_output_file("path", path))
    with staged(path) as staging:
        result = _search(model, os.path.join(staging, os.path.basename(path)), representative_data=representative_data,
                         eval_data=eval_data, float_layers=float_layers, thresholds=thresholds,
                         max_float_nodes=max_float_nodes, include_consumers=include_consumers,
                         num_calibration=num_calibration, num_debug=num_debug, class_names=class_names,
                         input_type=input_type, min_top1_agreement=min_top1_agreement,
                         calibration_record=calibration_record, seed=seed)
        result = _settle(result, path, raise_on_failure=raise_on_failure, model_name=model.name)
    if benchmark:
        from tfxfer.export import benchmark_tflite

        full_path = result.cost["full_int8_path"]
        full_ms = benchmark_tflite(full_path, threads=(1,)).median_ms(1)
        ms = full_ms if full_path == result.export.path else benchmark_tflite(result.export.path, threads=(1,)).median_ms(1)
        result.cost.update(full_int8_latency_ms=full_ms, latency_ms=ms, latency_ratio=ms / full_ms)
    return result


def _settle(result, path: str, *, raise_on_failure: bool, model_name: str) -> SelectiveResult:
    """Record the verdicts in the staged sidecars and move the files to ``path`` (and
    ``<stem>_full_int8.tflite``, unless full int8 is the result), or raise `GateError` writing nothing."""
    from tfxfer.export.gated_files import move_in, record_verdict, settle

    result, (full, full_gate) = result
    full_final = f"{os.path.splitext(path)[0]}_full_int8.tflite"
    if full.path != result.export.path:
        record_verdict(full, full_gate)
    export, gate = settle(result.export, result.gate, path, raise_on_failure=raise_on_failure,
                          what=f"Selective quantization of {model_name!r} still fails the gate with "
                               f"{len(result.float_nodes)} tensors in float")
    if full.path != result.export.path:
        full, _ = move_in(full, full_gate, full_final)
    return dataclasses.replace(result, export=export, gate=gate,
                               cost=dict(result.cost, full_int8_path=full.path if full.path != result.export.path
                                         else export.path))


def _search(model, path, *, representative_data, eval_data, float_layers, thresholds, max_float_nodes,
            include_consumers, num_calibration, num_debug, class_names, input_type, min_top1_agreement,
            calibration_record, seed):
    """The search of `selective_int8`, every file written at ``path`` (in its staging folder) and
    ``<stem>_full_int8.tflite`` beside it; returns ``(SelectiveResult, (full int8 export, its gate))``."""
    from tfxfer.errors import ExportError
    from tfxfer.export import export_tflite, verify
    from tfxfer.export.data import as_arrays, sample_images
    from tfxfer.export.metadata import model_task
    from tfxfer.quantize.post_training import write_tflite

    stem = os.path.splitext(path)[0]
    record = dict(calibration_record or {"source": "representative_data"}, seed=seed)
    full = export_tflite(model, f"{stem}_full_int8.tflite", variant="int8", representative_data=representative_data,
                         num_calibration=num_calibration, class_names=class_names, seed=seed, input_type=input_type,
                         calibration_record=calibration_record)
    eval_data = as_arrays(eval_data, name="eval_data")
    reference = np.asarray(model.predict(eval_data[0], batch_size=64, verbose=0), np.float32)  # once for all tries

    def gate_of(export):
        return verify(model, export, eval_data, thresholds=thresholds, raise_on_failure=False,
                      reference_outputs=reference)

    full_gate = gate_of(full)
    attempts = [{"float_nodes": 0, "passed": full_gate.passed, "accuracy_drop": full_gate["int8"].accuracy_drop,
                 "top1_agreement": full_gate["int8"].top1_agreement, "size_bytes": full.size_bytes}]
    cost = {"full_int8_path": full.path, "full_int8_bytes": full.size_bytes}
    if _meets(full_gate["int8"], min_top1_agreement) and not float_layers:
        return SelectiveResult(export=full, gate=full_gate, float_nodes=[], float_layers=[], ranking=[],
                               attempts=attempts, cost=dict(cost, size_bytes=full.size_bytes, size_ratio=1.0),
                               input=input_quantization(full.path)), (full, full_gate)
    samples = sample_images(representative_data, num_samples=num_calibration, seed=seed)
    ranking, debugger = rank_layers(model, samples, num_samples=min(num_debug, len(samples)), seed=seed)
    outputs, consumers = _graph(debugger.calibrated_model)
    if float_layers:
        candidates = [_nodes_for_layers(model, list(float_layers), outputs)]
    else:
        ordered = [r["tensor"] for r in ranking if r["tensor"] in outputs]
        candidates, k = [], 1
        while k <= min(max_float_nodes, len(ordered)):
            nodes = _expand(ordered[:k], consumers, outputs) if include_consumers else ordered[:k]
            candidates.append(nodes[:max_float_nodes])
            k *= 2
    image_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    task = model_task(model)

    def write(content, nodes):
        layers = sorted({layer for layer in (_layer_of(model, n) for n in nodes) if layer})
        return write_tflite(content, path, variant="int8", image_shape=image_shape, task=task, class_names=class_names,
                            model_name=model.name, calibration_samples=len(samples), calibration_record=record,
                            extra={"selective": True, "float_nodes": list(nodes), "float_layers": layers})

    export, gate, chosen, best = full, full_gate, [], None
    for nodes in candidates:
        content = quantize_calibrated(debugger.calibrated_model, float_nodes=nodes, input_type=input_type)
        found = input_quantization(content)
        if input_type == "uint8" and not found["exact_raw_pixels"]:
            raise ExportError(f"Selective int8 of {model.name!r} with {len(nodes)} tensors in float takes "
                              f"{found['dtype']} input with scale {found['scale']:g} / zero point "
                              f"{found['zero_point']}, not the raw pixel bytes (scale 1, zero point 0)")
        export = write(content, nodes)
        gate = gate_of(export)
        r = gate["int8"]
        attempts.append({"float_nodes": len(nodes), "passed": r.passed, "accuracy_drop": r.accuracy_drop,
                         "top1_agreement": r.top1_agreement, "size_bytes": export.size_bytes})
        chosen = list(nodes)
        if r.passed and (best is None or r.top1_agreement > best[2].top1_agreement):
            best = (content, chosen, r, gate, export)
        if _meets(r, min_top1_agreement):
            break
    if best is not None and best[1] != chosen:  # the target was not reached: keep the best passing attempt
        content, chosen, _, gate, _ = best
        export = write(content, chosen)
    cost = dict(cost, size_bytes=export.size_bytes, size_ratio=export.size_bytes / full.size_bytes)
    result = SelectiveResult(export=export, gate=gate, float_nodes=chosen,
                             float_layers=sorted({layer for layer in (_layer_of(model, n) for n in chosen) if layer}),
                             ranking=ranking, attempts=attempts, cost=cost, input=input_quantization(export.path))
    return result, (full, full_gate)
