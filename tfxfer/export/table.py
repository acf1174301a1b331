"""What an export run produced: one row per variant (`export_rows`), the gate verdict in each file's
sidecar (`write_verdicts`), and the `ExportTable` that `tfxfer.export.export_all` returns; and the
rows and table of ``tfxfer benchmark`` (one row per format whatever its runtime: `benchmark_row`,
`format_benchmark_table`).

Example:
    >>> from tfxfer.export.gate import VariantResult
    >>> result = VariantResult("int8", None, True, [], 10, 0.1, 0.01, 1.0, 0.8, 0.8, 0.0, None, None, [], {})
    >>> export_rows({"int8": ("m_int8.tflite", 2048)}, {"int8": result}, {}, threads=(1, 2))[0]["size_kib"]
    2.0
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from tfxfer.utils.atomic import atomic_write_json

#: Gate measurements copied into each file's sidecar under ``"gate"``.
VERDICT_FIELDS = ("passed", "failures", "examples", "top1_agreement", "keras_accuracy", "tflite_accuracy",
                  "accuracy_drop", "max_abs_error", "ece_keras", "ece_tflite", "drop_interval", "drop_verdict",
                  "examples_needed")


def json_safe(value):
    """``value`` with every NaN or infinite float replaced by None (JSON has no NaN: a report holding one
    is not valid JSON), through dicts, lists and tuples.

    Example:
        >>> json_safe({"a": [1.0, float("nan")], "b": (float("inf"), "x")})
        {'a': [1.0, None], 'b': [None, 'x']}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "dtype") and getattr(value, "ndim", None) == 0:  # numpy scalars
        return json_safe(value.item())
    return value


def _number(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def export_rows(files: dict, results: dict, benches: dict, *, threads) -> list[dict]:
    """One row per variant of ``files`` (``{variant: (path, size_bytes)}``): size (and ratio to
    float32), LiteRT latency at the fewest and most ``threads`` (median, p90) and memory from
    ``benches`` (``{variant: BenchmarkResult}``, may be empty), accuracy against Keras and the gate
    verdict from ``results`` (``{variant: VariantResult}``)."""
    t1, tn = str(min(threads)), str(max(threads))
    base = files.get("float32", (None, None))[1]
    base_bench = benches.get("float32")
    rows = []
    for variant, (path, size) in files.items():
        r, b = results[variant], benches.get(variant)
        row = {"variant": variant, "file": os.path.basename(path), "size_kib": round(size / 1024, 1),
               "size_ratio": round(size / base, 3) if base else None,
               "latency_ms": None, "p90_ms": None, "latency_nt_ms": None, "latency_ratio": None, "memory_mib": None,
               "threads": [int(t1), int(tn)], "top1_agreement": r.top1_agreement,
               "accuracy_keras": r.keras_accuracy, "accuracy_file": r.tflite_accuracy,
               "accuracy_drop_pts": r.accuracy_drop, "max_abs_error": r.max_abs_error,
               "ece_keras": r.ece_keras, "ece_file": r.ece_tflite, "gate": "pass" if r.passed else "FAIL",
               "failures": list(r.failures)}
        if b:
            row.update(latency_ms=round(b.latency[t1]["median_ms"], 3), p90_ms=round(b.latency[t1]["p90_ms"], 3),
                       latency_nt_ms=round(b.latency[tn]["median_ms"], 3),
                       memory_mib=_number(round(b.model_memory_mib, 1)))
            if base_bench:
                row["latency_ratio"] = round(b.latency[t1]["median_ms"] / base_bench.latency[t1]["median_ms"], 3)
        rows.append(row)
    return rows


def write_verdicts(sidecars: dict, results: dict) -> None:
    """Write each variant's gate measurements into its sidecar (``{variant: sidecar path}``; a
    missing sidecar is created), so the file carries its own verification result."""
    for variant, path in sidecars.items():
        entry = {}
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
        result = results[variant]
        entry["gate"] = json_safe({k: getattr(result, k) for k in VERDICT_FIELDS})
        atomic_write_json(path, entry)


#: The runtime that runs each format of ``tfxfer benchmark``'s table.
BENCHMARK_RUNTIMES = {**{v: "LiteRT" for v in ("float32", "float16", "dynamic", "weight_only", "int8")}, "onnx": "onnxruntime",
                      "saved_model": "TensorFlow", "keras": "Keras"}


def benchmark_row(name: str, *, path, size, result, latency=None, latency_nt=None, threads=(1, 2)) -> dict:
    """One row of ``tfxfer benchmark``'s table (and of its ``--json`` ``formats``): format, runtime,
    file, size, the gate's measurements from ``result`` (a `tfxfer.export.gate.VariantResult`; None
    for the Keras reference row, whose floor is "ref"), and batch-1 latency at 1 and N threads
    (``latency`` / ``latency_nt``: ``{"median_ms", "p90_ms"}`` or None).

    Example:
        >>> row = benchmark_row("keras", path="/m/model.keras", size=2048, result=None,
        ...                     latency={"median_ms": 1.23456, "p90_ms": 2.0})
        >>> row["runtime"], row["file"], row["latency_ms"], row["floor"]
        ('Keras', 'model.keras', 1.235, 'ref')
    """
    return {
        "format": name, "runtime": BENCHMARK_RUNTIMES[name], "file": os.path.basename(path) if path else None,
        "size_bytes": int(size) if size is not None else None,
        "accuracy": result.tflite_accuracy if result else None,
        "accuracy_keras": result.keras_accuracy if result else None,
        "accuracy_drop_pts": result.accuracy_drop if result else None,
        "drop_interval": list(result.drop_interval) if result and result.drop_interval else None,
        "top1_agreement": result.top1_agreement if result else None,
        "max_abs_error": result.max_abs_error if result else None,
        "latency_ms": None if latency is None else round(latency["median_ms"], 3),
        "p90_ms": None if latency is None else round(latency["p90_ms"], 3),
        "latency_nt_ms": None if latency_nt is None else round(latency_nt["median_ms"], 3),
        "threads": [int(t) for t in threads],
        "floor": "ref" if result is None else "pass" if result.passed else "FAIL",
        "thresholds": result.thresholds if result else None,
        "failures": list(result.failures) if result else [],
    }


def format_benchmark_table(rows) -> str:
    """``tfxfer benchmark``'s printed table: one line per `benchmark_row`, then each failure.

    Example:
        >>> row = benchmark_row("keras", path="m.keras", size=2048, result=None, latency=None)
        >>> print(format_benchmark_table([dict(row, accuracy=0.9)]).splitlines()[1])
        keras        Keras          2.0 KiB    0.9000        -         -          -          -  ref
    """
    from tfxfer.utils.humanize import format_bytes

    threads = next((r["threads"][-1] for r in rows if r["threads"]), 2)
    head = (f"{'format':<12} {'runtime':<12} {'size':>9} {'accuracy':>9} {'drop pts':>8} {'agreement':>9} "
            f"{'ms (1 thr)':>10} {f'ms ({threads} thr)':>10}  floor")
    lines = [head]

    def num(value, spec):
        return "-" if value is None else format(value, spec)

    for r in rows:
        lines.append(f"{r['format']:<12} {r['runtime']:<12} {format_bytes(r['size_bytes']) if r['size_bytes'] else '-':>9} "
                     f"{num(r['accuracy'] if r['accuracy'] is not None else r['accuracy_keras'], '.4f'):>9} "
                     f"{num(r['accuracy_drop_pts'], '.2f'):>8} {num(r['top1_agreement'], '.4f'):>9} "
                     f"{num(r['latency_ms'], '.3f'):>10} {num(r['latency_nt_ms'], '.3f'):>10}  {r['floor']}")
    for r in rows:
        lines += [f"  {r['format']}: {failure}" for failure in r["failures"]]
    return "\n".join(lines)


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
    kind: str = "image"
    #: Variants whose files failed the gate and were not kept (their rows stay, marked FAIL).
    removed: list = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.gate.passed

    def format(self) -> str:
        """The table ``tfxfer export`` prints: size, 1-thread latency, agreement with Keras, accuracy and
        its drop (points), size relative to float32, gate verdict."""
        lines = [f"{'variant':<9} {'size KiB':>9} {'latency ms':>10} {'top-1 agree':>11} {'accuracy':>9} "
                 f"{'drop pts':>8} {'size ratio':>10}  gate"]
        for r in self.rows:
            latency = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.2f}"
            ratio = "-" if r["size_ratio"] is None else f"{r['size_ratio']:.3f}"
            lines.append(f"{r['variant']:<9} {r['size_kib']:>9.1f} {latency:>10} {r['top1_agreement']:>11.4f} "
                         f"{r['accuracy_file']:>9.4f} {r['accuracy_drop_pts']:>8.2f} {ratio:>10}  {r['gate']}")
        for r in self.rows:
            lines += [f"  {r['variant']}: {failure}" for failure in r["failures"]]
        if self.saved_model:
            served = "raw strings in" if self.kind == "text" else "image bytes or pixels in"
            lines.append(f"SavedModel ({served}): {self.saved_model.path}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The report `export_all` writes (valid JSON: non-finite numbers become null)."""
        return json_safe({
            "kind": self.kind,
            "rows": self.rows,
            "exports": {k: v.to_dict() for k, v in self.exports.items()},
            "gate": self.gate.to_dict(),
            "preflight": self.preflight.to_dict() if self.preflight else None,
            "benchmarks": {k: v.to_dict() for k, v in self.benchmarks.items()},
            "saved_model": self.saved_model.to_dict() if self.saved_model else None,
            "removed": list(self.removed),
        })

    def __str__(self) -> str:
        return self.format()
