"""`export_all`: pre-flight, convert every variant, verify each on held-out data, benchmark, report.

Example:
    >>> import numpy as np, keras, tempfile
    >>> from tfxfer.export import export_all
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...                           keras.layers.GlobalAveragePooling2D(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> x = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 3)).astype("float32")
    >>> y = model.predict(x, verbose=0).argmax(1)
    >>> table = export_all(model, tempfile.mkdtemp(), variants=("float32", "float16"),
    ...                    eval_data=(x, y), benchmark=False)
    >>> [row["variant"] for row in table.rows], table.passed
    (['float32', 'float16'], True)
"""

from __future__ import annotations

import dataclasses
import os
import re

import numpy as np

from tfxfer.errors import ArgumentError, GateError
from tfxfer.export import _trace
from tfxfer.export.data import as_arrays
from tfxfer.export.tflite import VARIANTS

COLUMNS = ["variant", "size_kib", "size_ratio", "latency_1t_ms", "p90_1t_ms", "latency_nt_ms",
           "latency_ratio", "memory_mib", "top1_agreement", "accuracy_keras", "accuracy_file",
           "accuracy_drop_pts", "max_abs_error", "ece_keras", "ece_file", "gate"]


@dataclasses.dataclass
class ExportTable:
    """Everything `export_all` produced: one row per variant plus the full reports."""

    rows: list
    exports: dict
    gate: object
    preflight: object
    benchmarks: dict
    report_path: str
    saved_model: object = None

    @property
    def passed(self) -> bool:
        return self.gate.passed

    def format(self) -> str:
        def fmt(value):
            if value is None:
                return "-"
            if isinstance(value, float):
                return f"{value:.4g}"
            return str(value)

        widths = {c: max(len(c), *(len(fmt(r.get(c))) for r in self.rows)) for c in COLUMNS}
        lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
        lines += ["  ".join(fmt(r.get(c)).ljust(widths[c]) for c in COLUMNS) for r in self.rows]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "rows": self.rows,
            "exports": {k: v.to_dict() for k, v in self.exports.items()},
            "gate": self.gate.to_dict(),
            "preflight": self.preflight.to_dict(),
            "benchmarks": {k: v.to_dict() for k, v in self.benchmarks.items()},
            "saved_model": self.saved_model.to_dict() if self.saved_model else None,
        }

    def __str__(self) -> str:
        return self.format()


def _row(variant, export, result, bench, base_export, base_bench, threads):
    n = str(max(threads)) if bench else None
    row = {
        "variant": variant,
        "size_kib": round(export.size_bytes / 1024, 1),
        "size_ratio": round(export.size_bytes / base_export.size_bytes, 3) if base_export else None,
        "latency_1t_ms": None, "p90_1t_ms": None, "latency_nt_ms": None, "latency_ratio": None,
        "memory_mib": None,
        "top1_agreement": result.top1_agreement,
        "accuracy_keras": result.keras_accuracy,
        "accuracy_file": result.tflite_accuracy,
        "accuracy_drop_pts": result.accuracy_drop,
        "max_abs_error": result.max_abs_error,
        "ece_keras": result.ece_keras,
        "ece_file": result.ece_tflite,
        "gate": "pass" if result.passed else "FAIL",
    }
    if bench:
        first = str(min(threads))
        row.update(latency_1t_ms=round(bench.latency[first]["median_ms"], 3),
                   p90_1t_ms=round(bench.latency[first]["p90_ms"], 3),
                   latency_nt_ms=round(bench.latency[n]["median_ms"], 3),
                   memory_mib=round(bench.model_memory_mib, 1))
        if base_bench:
            row["latency_ratio"] = round(bench.latency[first]["median_ms"] / base_bench.latency[first]["median_ms"], 3)
    return row


def export_all(
    model,
    out_dir,
    *,
    variants=("float32", "float16", "dynamic", "int8"),
    representative_data=None,
    eval_data,
    class_names=None,
    name: str = "model",
    num_calibration: int = 200,
    input_type: str = "uint8",
    output_type: str = "float32",
    thresholds=None,
    benchmark: bool = True,
    threads=(1, 2),
    bench_runs: int = 50,
    keep_failed: bool = False,
    serving_name: str | None = None,
) -> ExportTable:
    """Export ``model`` to every TFLite variant, verify and benchmark each, and write a report.

    Files: ``<out_dir>/<name>_<variant>.tflite`` with ``<name>_<variant>.json`` sidecars (which
    also record the gate result), ``<out_dir>/<name>_export_report.json``, and with
    ``serving_name`` a SavedModel under ``<out_dir>/serving/<serving_name>/<version>/``.

    Args:
        model: a single-input image ``keras.Model`` taking raw 0-255 pixels.
        out_dir: output folder.
        variants: any of "float32", "float16", "dynamic", "int8".
        representative_data: training images for int8 calibration (needed if "int8" is listed).
        eval_data: held-out ``(images, labels)`` (or a dataset) for the verification gate.
        class_names: one name per output (sidecars, reports, SavedModel).
        name: file name prefix.
        num_calibration: representative images used for int8 calibration.
        input_type / output_type: int8 variant's input and output types ("uint8", "int8", "float32").
        thresholds: ``{variant: Thresholds | dict}`` overriding the gate defaults.
        benchmark: time the files side by side with `benchmark_many` (``threads``, ``bench_runs`` runs).
        keep_failed: keep files that fail the gate (marked "FAIL") instead of deleting them and
            raising `GateError`.
        serving_name: also write a TF Serving SavedModel under this name.

    Returns:
        An `ExportTable` (``.rows``, ``.format()``, ``.gate``, ``.benchmarks``).

    Raises:
        GateError: a variant failed the gate and ``keep_failed`` is False (``.report`` has the
            per-class details; the failing files are removed).
    """
    from tfxfer.export.bench import benchmark_many
    from tfxfer.export.gate import verify
    from tfxfer.export.metadata import check_class_names, read_sidecar, sidecar_path
    from tfxfer.export.preflight import preflight
    from tfxfer.export.tflite import export_tflite
    from tfxfer.utils.atomic import atomic_write_json

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ArgumentError("name", name, "must be letters, digits, '.', '_' or '-' (no path separators): "
                            "it prefixes the file names in out_dir")
    variants = tuple(variants)
    if not variants or len(set(variants)) != len(variants):
        raise ArgumentError("variants", variants, "must list distinct variants")
    for variant in variants:
        if variant not in VARIANTS:
            raise ArgumentError("variants", variants, "may only contain " + ", ".join(VARIANTS))
    if "int8" in variants and representative_data is None:
        raise ArgumentError("representative_data", None, "is required when variants include 'int8'")
    _trace.check_image_model(model)
    names = check_class_names(class_names, _trace.num_outputs(model))
    images, labels = as_arrays(eval_data, name="eval_data")
    if labels is None:
        raise ArgumentError("eval_data", "images without labels", "must carry labels: (images, labels)")
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)

    pre = preflight(model)
    exports = {}
    for variant in variants:
        is_int8 = variant == "int8"
        exports[variant] = export_tflite(
            model, os.path.join(out_dir, f"{name}_{variant}.tflite"), variant=variant,
            representative_data=representative_data if is_int8 else None, num_calibration=num_calibration,
            input_type=input_type if is_int8 else None, output_type=output_type if is_int8 else None,
            class_names=names, run_preflight=False)
    reference = np.asarray(model.predict(images, batch_size=64, verbose=0), dtype=np.float32)
    gate = verify(model, exports, (images, labels), thresholds=thresholds, class_names=names,
                  raise_on_failure=False, reference_outputs=reference)
    benches = {}
    if benchmark:
        measured = benchmark_many([e.path for e in exports.values()], threads=threads, runs=bench_runs)
        benches = {v: measured[e.path] for v, e in exports.items()}
    base = "float32" if "float32" in exports else None
    rows = [_row(v, exports[v], gate[v], benches.get(v), exports.get(base), benches.get(base), threads)
            for v in variants]

    for variant, export in exports.items():  # the file carries its own verification result
        entry = read_sidecar(export.path)
        result = gate[variant]
        entry["gate"] = {k: getattr(result, k) for k in (
            "passed", "failures", "examples", "top1_agreement", "keras_accuracy", "tflite_accuracy",
            "accuracy_drop", "max_abs_error", "ece_keras", "ece_tflite")}
        atomic_write_json(sidecar_path(export.path), entry)

    saved = None
    if serving_name and gate.passed:
        from tfxfer.export.savedmodel import export_saved_model

        saved = export_saved_model(model, os.path.join(out_dir, "serving"), name=serving_name,
                                   class_names=names)
    report_path = os.path.join(out_dir, f"{name}_export_report.json")
    table = ExportTable(rows=rows, exports=exports, gate=gate, preflight=pre, benchmarks=benches,
                        report_path=report_path, saved_model=saved)
    atomic_write_json(report_path, table.to_dict())
    if not gate.passed and not keep_failed:
        for variant in gate.failed:
            for path in (exports[variant].path, sidecar_path(exports[variant].path)):
                if os.path.exists(path):
                    os.remove(path)
        raise GateError(
            f"Verification gate failed for {gate.failed}; their files were removed "
            f"(pass keep_failed=True to keep them). Report: {report_path}\n{gate.format()}",
            report=gate,
        )
    return table
