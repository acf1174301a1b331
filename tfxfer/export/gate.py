"""The verification gate's measure and limits: `Thresholds`, `compare_outputs`, `GateReport`.

For each variant: max and mean absolute output error, top-1 agreement, accuracy and its drop,
per-class accuracy deltas, and expected calibration error (`tfxfer.metrics`, 15 bins) before and
after. Thresholds are per variant (`DEFAULT_THRESHOLDS`: top-1 agreement >= 99% for
float32/float16/dynamic, accuracy drop <= 1.0 point for int8) and configurable. `tfxfer.export.verify`
runs the files (image or text) and applies this.

Example:
    >>> import numpy as np
    >>> reference = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], "float32")
    >>> result = compare_outputs("float16", None, reference, reference + 1e-3, np.array([0, 1, 1]),
    ...                          ["cat", "dog"], DEFAULT_THRESHOLDS["float16"])
    >>> result.passed, result.top1_agreement, result.accuracy_drop
    (True, 1.0, 0.0)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfxfer.errors import ArgumentTypeError, UnknownNameError
from tfxfer.metrics import expected_calibration_error, looks_like_probabilities, per_class_accuracy


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Gate limits for one variant; None disables a check.

    Attributes:
        min_top1_agreement: fraction of examples whose argmax matches Keras (0-1).
        max_accuracy_drop: Keras accuracy minus file accuracy, in percentage points.
        max_abs_error: largest absolute difference of any output.
        max_class_accuracy_drop: largest per-class accuracy drop, in points.
        max_ece_increase: largest increase of expected calibration error (0-1 scale).
    """

    min_top1_agreement: float | None = None
    max_accuracy_drop: float | None = None
    max_abs_error: float | None = None
    max_class_accuracy_drop: float | None = None
    max_ece_increase: float | None = None


DEFAULT_THRESHOLDS = {
    "float32": Thresholds(min_top1_agreement=0.99, max_abs_error=1e-4),
    "float16": Thresholds(min_top1_agreement=0.99),
    "dynamic": Thresholds(min_top1_agreement=0.99),
    "int8": Thresholds(max_accuracy_drop=1.0),
}


@dataclasses.dataclass
class VariantResult:
    """The gate's measurements for one exported file."""

    variant: str
    path: str | None
    passed: bool
    failures: list
    examples: int
    max_abs_error: float
    mean_abs_error: float
    top1_agreement: float
    keras_accuracy: float
    tflite_accuracy: float
    accuracy_drop: float
    ece_keras: float | None
    ece_tflite: float | None
    per_class: list
    thresholds: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class GateReport:
    """Results per variant; ``passed`` only if every variant passed."""

    results: dict

    def __getitem__(self, variant: str) -> VariantResult:
        return self.results[variant]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, r in self.results.items() if not r.passed]

    def to_dict(self) -> dict:
        return {"passed": self.passed, "results": {k: v.to_dict() for k, v in self.results.items()}}

    def format(self, *, per_class: str = "failed") -> str:
        """A text table; ``per_class`` is "failed" (default), "all" or "none"."""
        lines = ["variant   result  max_abs   mean_abs  top1_agree  acc_keras  acc_file  drop_pts  ece_keras  ece_file"]
        for name, r in self.results.items():
            ece_k = "-" if r.ece_keras is None else f"{r.ece_keras:.4f}"
            ece_t = "-" if r.ece_tflite is None else f"{r.ece_tflite:.4f}"
            lines.append(
                f"{name:<9} {'PASS' if r.passed else 'FAIL':<7} {r.max_abs_error:<9.2e} {r.mean_abs_error:<9.2e} "
                f"{r.top1_agreement:<11.4f} {r.keras_accuracy:<10.4f} {r.tflite_accuracy:<9.4f} "
                f"{r.accuracy_drop:<9.2f} {ece_k:<10} {ece_t}"
            )
        for name, r in self.results.items():
            for failure in r.failures:
                lines.append(f"  {name}: {failure}")
            if per_class == "all" or (per_class == "failed" and not r.passed):
                lines.append(f"  {name} per class: class  support  acc_keras  acc_file  delta_pts")
                for c in r.per_class:
                    k = "-" if c["keras_accuracy"] is None else f"{c['keras_accuracy']:.3f}"
                    t = "-" if c["tflite_accuracy"] is None else f"{c['tflite_accuracy']:.3f}"
                    d = "-" if c["delta_points"] is None else f"{c['delta_points']:+.1f}"
                    lines.append(f"    {c['name']:<16} {c['support']:<8} {k:<10} {t:<9} {d}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def resolve_thresholds(thresholds) -> dict[str, Thresholds]:
    """Defaults overridden by ``{variant: Thresholds | dict}``."""
    merged = dict(DEFAULT_THRESHOLDS)
    if thresholds is None:
        return merged
    if not isinstance(thresholds, dict):
        raise ArgumentTypeError("thresholds", thresholds, "a dict {variant: Thresholds or dict}")
    fields = {f.name for f in dataclasses.fields(Thresholds)}
    for variant, value in thresholds.items():
        if isinstance(value, dict):
            unknown = set(value) - fields
            if unknown:
                raise UnknownNameError("threshold", sorted(unknown)[0], fields)
            value = dataclasses.replace(merged.get(variant, Thresholds()), **value)
        elif not isinstance(value, Thresholds):
            raise ArgumentTypeError(f"thresholds[{variant!r}]", value, "a Thresholds or a dict")
        merged[variant] = value
    return merged


def _points(value: float) -> float:
    return round(float(value) * 100.0, 4)


def compare_outputs(name, path, reference, outputs, labels, class_names, limits: Thresholds) -> VariantResult:
    """A `VariantResult` for a file's ``outputs`` against the Keras ``reference`` (both
    ``[examples, classes]``) on ``labels``, checked against ``limits``; NaN/Inf outputs fail.
    Shared by the image gate and the text gate (`tfxfer.export.text_gate`)."""
    outputs = np.asarray(outputs, dtype=np.float32)
    finite = bool(np.all(np.isfinite(outputs)))
    if not finite:
        outputs = np.nan_to_num(outputs, nan=-1.0, posinf=-1.0, neginf=-1.0)
    num_classes = reference.shape[1]
    diff = np.abs(outputs - reference)
    k_pred, t_pred = reference.argmax(1), outputs.argmax(1)
    agreement = float((k_pred == t_pred).mean())
    k_acc, t_acc = float((k_pred == labels).mean()), float((t_pred == labels).mean())
    k_cls, support = per_class_accuracy(k_pred, labels, num_classes)
    t_cls, _ = per_class_accuracy(t_pred, labels, num_classes)
    per_class = []
    for c in range(num_classes):
        present = support[c] > 0
        per_class.append({
            "class": c, "name": class_names[c], "support": int(support[c]),
            "keras_accuracy": float(k_cls[c]) if present else None,
            "tflite_accuracy": float(t_cls[c]) if present else None,
            "delta_points": _points(t_cls[c] - k_cls[c]) if present else None,
        })
    probabilistic = looks_like_probabilities(reference)
    ece_k = expected_calibration_error(reference, labels) if probabilistic else None
    ece_t = expected_calibration_error(np.clip(outputs, 0, 1), labels) if probabilistic else None
    drop = _points(k_acc - t_acc)
    failures = []
    if limits.min_top1_agreement is not None and agreement < limits.min_top1_agreement:
        failures.append(f"top-1 agreement {agreement:.4f} < {limits.min_top1_agreement}")
    if limits.max_accuracy_drop is not None and drop > limits.max_accuracy_drop:
        failures.append(f"accuracy drop {drop:.2f} points > {limits.max_accuracy_drop}")
    if limits.max_abs_error is not None and float(diff.max()) > limits.max_abs_error:
        failures.append(f"max abs error {float(diff.max()):.3g} > {limits.max_abs_error}")
    if limits.max_class_accuracy_drop is not None:
        worst = max((-c["delta_points"] for c in per_class if c["delta_points"] is not None), default=0.0)
        if worst > limits.max_class_accuracy_drop:
            failures.append(f"per-class accuracy drop {worst:.2f} points > {limits.max_class_accuracy_drop}")
    if limits.max_ece_increase is not None and ece_k is not None and ece_t - ece_k > limits.max_ece_increase:
        failures.append(f"ECE increase {ece_t - ece_k:.4f} > {limits.max_ece_increase}")
    if not finite:
        failures.append("the file produced NaN or infinite outputs")
    return VariantResult(
        variant=name, path=path if isinstance(path, str) else None, passed=not failures, failures=failures,
        examples=int(len(labels)), max_abs_error=float(diff.max()), mean_abs_error=float(diff.mean()),
        top1_agreement=agreement, keras_accuracy=k_acc, tflite_accuracy=t_acc, accuracy_drop=drop,
        ece_keras=ece_k, ece_tflite=ece_t, per_class=per_class, thresholds=dataclasses.asdict(limits),
    )
