"""What an export run produced: one row per variant (`export_rows`), the gate verdict in each file's
sidecar (`write_verdicts`), and the `ExportTable` that `tfxfer.export.export_all` returns.

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
        entry["gate"] = {k: getattr(result, k) for k in VERDICT_FIELDS}
        atomic_write_json(path, entry)


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
        return {
            "kind": self.kind,
            "rows": self.rows,
            "exports": {k: v.to_dict() for k, v in self.exports.items()},
            "gate": self.gate.to_dict(),
            "preflight": self.preflight.to_dict() if self.preflight else None,
            "benchmarks": {k: v.to_dict() for k, v in self.benchmarks.items()},
            "saved_model": self.saved_model.to_dict() if self.saved_model else None,
        }

    def __str__(self) -> str:
        return self.format()
