"""The verification gate's measure and limits: `Thresholds`, `compare_outputs`, `GateReport`.

For each variant: max and mean absolute output error, top-1 agreement, accuracy and its drop with a
paired 95 % interval (`paired_drop_interval`: only the examples the file and the Keras model disagree
on count; the verdict says "undecided" with the size that would decide when the interval straddles
the limit, and the documented point limit decides then), per-class accuracy (recall) deltas, and expected calibration error (`tfxfer.metrics`, 15 bins) before and
after. Thresholds are per variant (`DEFAULT_THRESHOLDS`: top-1 agreement >= 99% for
float32/float16/dynamic, accuracy drop <= 1.0 point for int8) and configurable. Full-integer files are
also measured against the documented agreement target (`INT8_AGREEMENT_TARGET`, 98 %), which is
reported and never fails the gate; `tfxfer.export.delivery.choose_delivery` walks its `DELIVERY_CHAIN`
with both to pick the file that ships.
`tfxfer.export.verify` runs the files (image or text) and applies this.
A multi-label (sigmoid) model is judged per label decision at 0.5 under the same limits (``task=
"multilabel"``); a regression model is refused before any work (`tfxfer.export.metadata.check_gateable`).

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

from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError, suggest
from tfxfer.export.gate_statistics import examples_needed, paired_drop_interval, target_examples
from tfxfer.metrics import confusion_matrix, expected_calibration_error, looks_like_probabilities, per_class_accuracy
from tfxfer.utils.validate import check_float


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
    "weight_only": Thresholds(min_top1_agreement=0.99),
    "int8": Thresholds(max_accuracy_drop=1.0),
}

#: The documented top-1 agreement target of a full-integer file with its Keras model, on all held-out
#: data. It is reported beside the gate and never fails it (the int8 gate stays the 1.0-point accuracy
#: drop); below it the export chain (`tfxfer.export.delivery.choose_delivery`) tries the next remedy
#: before delivering.
INT8_AGREEMENT_TARGET = 0.98


def agreement_target(variant: str) -> float | None:
    """The documented agreement target of ``variant`` (`INT8_AGREEMENT_TARGET` for the full-integer
    files ``int8``, ``int8_qat``, ``int8_selective``), else None.

    Example:
        >>> agreement_target("int8_selective"), agreement_target("float16")
        (0.98, None)
    """
    return INT8_AGREEMENT_TARGET if variant == "int8" or str(variant).startswith("int8_") else None


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
    #: 95 % interval of the accuracy drop in points (paired: only examples the two models disagree on
    #: count), from `paired_drop_interval`; None for outputs without labels' argmax meaning.
    drop_interval: tuple | None = None
    #: "pass" (the interval lies within the drop limit), "fail" (beyond it), "undecided" (it straddles
    #: the limit: the point estimate decides and `examples_needed` says what size would), or "" (no
    #: drop limit).
    drop_verdict: str = ""
    examples_needed: int | None = None
    #: The file's confusion matrix (rows: true class, columns: the file's prediction).
    confusion: list | None = None
    #: The documented agreement target (`agreement_target`; reported, never a gate failure) and
    #: whether the file reaches it; None for variants without one, and when the data are too few to
    #: judge it (fewer than `target_examples`).
    agreement_target: float | None = None
    meets_agreement_target: bool | None = None
    #: "multiclass" (top-1 agreement, accuracy), or "multilabel" (sigmoid outputs: ``top1_agreement`` is
    #: the fraction of per-label decisions at 0.5 that agree with Keras, the accuracies are per-label
    #: binary accuracies and ``per_class`` is per label).
    task: str = "multiclass"

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
            if r.drop_verdict and r.drop_interval is not None:
                low, high = r.drop_interval
                more = f"; about {r.examples_needed} examples would decide" if r.examples_needed else ""
                lines.append(f"  {name}: accuracy drop {r.accuracy_drop:.2f} points, 95 % interval {low:+.2f} to "
                             f"{high:+.2f} on {r.examples} examples: {r.drop_verdict}{more}")
            if r.agreement_target is not None and r.meets_agreement_target is None:
                lines.append(f"  {name}: the {r.agreement_target} agreement target is not judged on {r.examples} "
                             f"examples (one disagreement would miss it; {target_examples(r.agreement_target)} would do)")
            if r.meets_agreement_target is False:
                agreeing = int(round(r.top1_agreement * r.examples))
                lines.append(f"  {name}: top-1 agreement {r.top1_agreement:.4f} ({agreeing} of {r.examples}) is below "
                             f"the {r.agreement_target} target (reported, not a gate limit: the export chain tries "
                             "the next remedy)")
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


def check_thresholds(limits: Thresholds, *, name: str = "thresholds") -> Thresholds:
    """``limits`` with every set field a finite number, else `ArgumentError` naming ``name.field``.

    A NaN limit would pass every comparison, so a gate given one would pass any file; an infinite one
    is no limit (use None). A finite limit no file can meet (an agreement above 1) fails the gate, as
    a caller forcing a failure means it to; the command line and recipes check their ranges
    (`tfxfer.recipes.config.THRESHOLD_RANGES`).

    Example:
        >>> check_thresholds(Thresholds(min_top1_agreement=float("nan")))
        Traceback (most recent call last):
        ...
        tfxfer.errors.ArgumentError: `thresholds.min_top1_agreement` must be a finite number or None. \
Received: thresholds.min_top1_agreement=nan
    """
    for field in dataclasses.fields(Thresholds):
        check_float(f"{name}.{field.name}", getattr(limits, field.name), allow_none=True)
    return limits


#: The variant names a ``thresholds`` key may take besides the names of the files being verified: the
#: defaults' variants, the QAT and selective integer files, and an ONNX file.
THRESHOLD_VARIANTS = tuple(DEFAULT_THRESHOLDS) + ("int8_qat", "int8_selective", "onnx")


def resolve_thresholds(thresholds, *, names=()) -> dict[str, Thresholds]:
    """Defaults overridden by ``{variant: Thresholds | dict}``; each limit is checked (`check_thresholds`).

    Args:
        thresholds: None or ``{variant: Thresholds | dict}``; a key must be one of `THRESHOLD_VARIANTS` or
            of ``names`` (the names of the files being verified, e.g. `tfxfer.export.verify`'s dict keys).

    Raises:
        ArgumentError: a key that names no variant (``"INT8"``: a misspelt key would leave that
            variant's default in force), or a limit that is NaN, infinite or not a number, naming
            ``thresholds[variant].field``.
    """
    merged = dict(DEFAULT_THRESHOLDS)
    if thresholds is None:
        return merged
    if not isinstance(thresholds, dict):
        raise ArgumentTypeError("thresholds", thresholds, "a dict {variant: Thresholds or dict}")
    known = list(dict.fromkeys([*THRESHOLD_VARIANTS, *(str(n) for n in names)]))
    for variant, value in thresholds.items():
        if variant not in known:
            close = suggest(str(variant).lower().replace("-", "").replace(" ", ""), known) if isinstance(
                variant, str) else []
            raise ArgumentError(f"thresholds[{variant!r}]", value,
                                "names no variant: keys must be one of " + ", ".join(known),
                                hint=f"Did you mean {close[0]!r}?" if close else None)
    fields = {f.name for f in dataclasses.fields(Thresholds)}
    for variant, value in thresholds.items():
        if isinstance(value, dict):
            unknown = set(value) - fields
            if unknown:
                raise UnknownNameError("threshold", sorted(unknown)[0], fields)
            value = dataclasses.replace(merged.get(variant, Thresholds()), **value)
        elif not isinstance(value, Thresholds):
            raise ArgumentTypeError(f"thresholds[{variant!r}]", value, "a Thresholds or a dict")
        merged[variant] = check_thresholds(value, name=f"thresholds[{variant!r}]")
    return merged


def _points(value: float) -> float:
    return round(float(value) * 100.0, 4)


def _multiclass_decisions(reference, outputs, labels, class_names):
    """Keras's and the file's correctness per example, top-1 agreement, per-class rows and confusion."""
    num_classes = reference.shape[1]
    k_pred, t_pred = reference.argmax(1), outputs.argmax(1)
    k_cls, support = per_class_accuracy(k_pred, labels, num_classes)
    t_cls, _ = per_class_accuracy(t_pred, labels, num_classes)
    k_conf, t_conf = confusion_matrix(labels, k_pred, num_classes), confusion_matrix(labels, t_pred, num_classes)
    per_class = []
    for c in range(num_classes):
        present = support[c] > 0
        k_called, t_called = int(k_conf[:, c].sum()), int(t_conf[:, c].sum())
        per_class.append({
            "class": c, "name": class_names[c], "support": int(support[c]),
            "keras_accuracy": float(k_cls[c]) if present else None,  # = recall
            "tflite_accuracy": float(t_cls[c]) if present else None,
            "delta_points": _points(t_cls[c] - k_cls[c]) if present else None,
            "keras_precision": float(k_conf[c, c] / k_called) if k_called else None,
            "tflite_precision": float(t_conf[c, c] / t_called) if t_called else None,
        })
    agreement = float((k_pred == t_pred).mean())
    return k_pred == labels, t_pred == labels, agreement, per_class, t_conf.astype(int).tolist()


def _multilabel_decisions(reference, outputs, labels, class_names):
    """The same for sigmoid outputs: each (example, label) decision at 0.5 counts once."""
    k_on, t_on = reference >= 0.5, outputs >= 0.5
    k_right, t_right = k_on == (labels == 1), t_on == (labels == 1)
    per_class = []
    for c in range(reference.shape[1]):
        k_called, t_called = int(k_on[:, c].sum()), int(t_on[:, c].sum())
        positive = labels[:, c] == 1
        per_class.append({
            "class": c, "name": class_names[c], "support": int(positive.sum()),
            "keras_accuracy": float(k_right[:, c].mean()), "tflite_accuracy": float(t_right[:, c].mean()),
            "delta_points": _points(t_right[:, c].mean() - k_right[:, c].mean()),
            "keras_precision": float((k_on[:, c] & positive).sum() / k_called) if k_called else None,
            "tflite_precision": float((t_on[:, c] & positive).sum() / t_called) if t_called else None,
        })
    return k_right.ravel(), t_right.ravel(), float((k_on == t_on).mean()), per_class, None


def compare_outputs(name, path, reference, outputs, labels, class_names, limits: Thresholds,
                    target: float | None = None, *, task: str = "multiclass") -> VariantResult:
    """A `VariantResult` for a file's ``outputs`` against the Keras ``reference`` (both
    ``[examples, classes]``) on ``labels``, checked against ``limits``; NaN/Inf outputs fail.
    ``target``: the agreement target reported beside the gate (default `agreement_target(name)`).
    ``task``: "multiclass" (``labels`` are class ids; softmax, logits or scores) or "multilabel"
    (sigmoid outputs, ``labels`` are ``[examples, labels]`` 0/1 rows: agreement and accuracy are per
    label decision at 0.5; the same limits apply to them, and ``max_abs_error`` to the probabilities).
    Shared by the image gate and the text gate (`tfxfer.export.text_gate`)."""
    if task not in ("multiclass", "multilabel"):
        raise ArgumentError("task", task, "must be 'multiclass' or 'multilabel'")
    target = agreement_target(str(name).split(":", 1)[0]) if target is None else target
    outputs = np.asarray(outputs, dtype=np.float32)
    finite = bool(np.all(np.isfinite(outputs)))
    if not finite:
        outputs = np.nan_to_num(outputs, nan=-1.0, posinf=-1.0, neginf=-1.0)
    diff = np.abs(outputs - reference)
    decide = _multilabel_decisions if task == "multilabel" else _multiclass_decisions
    k_correct, t_correct, agreement, per_class, confusion = decide(reference, outputs, labels, class_names)
    k_acc, t_acc = float(k_correct.mean()), float(t_correct.mean())
    agreement_name = "label agreement" if task == "multilabel" else "top-1 agreement"
    probabilistic = task == "multiclass" and looks_like_probabilities(reference)
    ece_k = expected_calibration_error(reference, labels) if probabilistic else None
    ece_t = expected_calibration_error(np.clip(outputs, 0, 1), labels) if probabilistic else None
    drop = _points(k_acc - t_acc)
    _, low, high = paired_drop_interval(k_correct, t_correct)
    verdict, needed = "", None
    failures = []
    if limits.min_top1_agreement is not None and agreement < limits.min_top1_agreement:
        failures.append(f"{agreement_name} {agreement:.4f} < {limits.min_top1_agreement}")
    if limits.max_accuracy_drop is not None:
        limit = limits.max_accuracy_drop
        verdict = "pass" if high <= limit else "fail" if low > limit else "undecided"
        if verdict == "undecided":
            needed = examples_needed(k_correct, t_correct, limit)
        if drop > limit:
            where = {"fail": "the whole 95 % interval is above the limit",
                     "undecided": f"{len(labels)} examples are too few to decide"
                                  + (f"; about {needed} would" if needed else "")}[verdict]
            failures.append(f"accuracy drop {drop:.2f} points > {limit} "
                            f"(95 % interval {low:+.2f} to {high:+.2f}: {where})")
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
        drop_interval=(round(low, 4), round(high, 4)), drop_verdict=verdict, examples_needed=needed,
        confusion=confusion, agreement_target=target,
        meets_agreement_target=(None if target is None or len(labels) < target_examples(target)
                                else bool(agreement >= target)),
        task=task,
    )
