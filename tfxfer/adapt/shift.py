"""`detect_shift`: has the data moved between training (source) and deployment (target)?

A two-sample test on the model's own features (a domain classifier's held-out AUC and/or the MMD,
each with a permutation p-value), and, for classifiers, what the shift does to its predictions:
the confidence drop per predicted class and the accuracy to expect on the target, estimated from
the source without target labels by Average Thresholded Confidence (ATC, Garg et al., ICLR 2022).
Target labels, when given, are used only to report the measured target accuracy beside it.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt import detect_shift
    >>> rng = np.random.default_rng(0)
    >>> source = rng.normal(size=(200, 16)); target = rng.normal(loc=0.8, size=(200, 16))
    >>> result = detect_shift(None, source, target, permutations=300)  # None: data are features
    >>> result.shifted, result.p_value < 0.01
    (True, True)
    >>> print(result.verdict.split(":")[0])
    Shift detected
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tfxfer.adapt.domain_data import check_inputs, check_labels, domain_features, sparse_labels, split_data
from tfxfer.adapt.two_sample import MAX_PERMUTATIONS, TwoSampleTest, classifier_test, mmd_test
from tfxfer.errors import ArgumentError
from tfxfer.utils.validate import check_float, check_int

METHODS = ("both", "classifier", "mmd")


@dataclasses.dataclass(frozen=True)
class ClassConfidence:
    """Mean top-1 confidence on examples predicted as ``label`` in each domain, and the drop."""

    label: int
    n_source: int
    n_target: int
    source_confidence: float
    target_confidence: float

    @property
    def drop(self) -> float:
        return self.source_confidence - self.target_confidence


@dataclasses.dataclass
class ShiftResult:
    """What `detect_shift` found.

    Attributes:
        shifted: True when the (Bonferroni-combined) ``p_value`` is below ``alpha``.
        p_value: the smallest test p-value times the number of tests (capped at 1).
        tests: one `TwoSampleTest` per method run.
        per_class: confidence per predicted class (classifiers only), sorted by largest drop.
        source_accuracy: accuracy on the labelled source (None without source labels).
        expected_target_accuracy: the ATC estimate (needs source labels and a classifier).
        target_accuracy: measured, only when target labels were given (scoring only).
        verdict: the finding in plain words.
    """

    shifted: bool
    p_value: float
    alpha: float
    tests: list
    n_source: int
    n_target: int
    feature_dim: int
    per_class: list = dataclasses.field(default_factory=list)
    source_confidence: float | None = None
    target_confidence: float | None = None
    source_accuracy: float | None = None
    expected_target_accuracy: float | None = None
    target_accuracy: float | None = None
    notes: list = dataclasses.field(default_factory=list)
    verdict: str = ""

    def test(self, name: str) -> TwoSampleTest | None:
        return next((t for t in self.tests if t.name == name), None)

    @property
    def domain_auc(self) -> float | None:
        test = self.test("classifier")
        return None if test is None else test.statistic

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["per_class"] = [dict(dataclasses.asdict(c), drop=c.drop) for c in self.per_class]
        return out

    def summary(self) -> str:
        lines = [self.verdict, *(f"  {t.describe()}" for t in self.tests)]
        for c in self.per_class:
            lines.append(f"  class {c.label}: confidence {c.source_confidence:.3f} -> {c.target_confidence:.3f} "
                         f"(n={c.n_source} -> {c.n_target})")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _per_class(source_probs: np.ndarray, target_probs: np.ndarray) -> list[ClassConfidence]:
    rows = []
    s_pred, t_pred = source_probs.argmax(axis=1), target_probs.argmax(axis=1)
    s_conf, t_conf = source_probs.max(axis=1), target_probs.max(axis=1)
    for label in range(source_probs.shape[1]):
        s, t = s_pred == label, t_pred == label
        if s.any() and t.any():
            rows.append(ClassConfidence(label, int(s.sum()), int(t.sum()), float(s_conf[s].mean()),
                                        float(t_conf[t].mean())))
    return sorted(rows, key=lambda c: -c.drop)


def atc_estimate(source_probs: np.ndarray, source_labels: np.ndarray, target_probs: np.ndarray) -> float:
    """Average Thresholded Confidence: the target accuracy a source-calibrated threshold predicts.

    The threshold ``t`` makes the share of source examples with confidence > t equal the source
    accuracy; the estimate is the share of target examples above ``t``. Confidences tied at ``t``
    (a saturated softmax gives many exact 1.0s) count with the weight that makes the source share
    exact, so ``target == source`` always gives back the source accuracy.

    Example:
        >>> import numpy as np
        >>> probs = np.array([[0.0, 1.0]] * 4 + [[0.3, 0.7]] * 2, dtype="float32")
        >>> labels = np.array([1, 1, 1, 0, 1, 0])  # 4 of 6 right, four confidences tied at 1.0
        >>> round(atc_estimate(probs, labels, probs), 3), atc_estimate(probs, labels, probs[4:])
        (0.667, 0.0)
    """
    s_conf, t_conf = source_probs.max(axis=1), target_probs.max(axis=1)
    accuracy = float(np.mean(source_probs.argmax(axis=1) == sparse_labels(source_labels)))
    correct = int(round(accuracy * len(s_conf)))
    if correct == 0:
        return float(np.mean(t_conf > s_conf.max()))
    threshold = np.sort(s_conf)[::-1][correct - 1]  # the correct-th largest source confidence
    above, tied = float(np.mean(s_conf > threshold)), float(np.mean(s_conf == threshold))
    weight = min(1.0, max(0.0, (accuracy - above) / tied))
    return float(np.mean(t_conf > threshold) + weight * np.mean(t_conf == threshold))


def _verdict(result: ShiftResult) -> str:
    tests = "; ".join(t.describe() for t in result.tests)
    if result.shifted:
        text = f"Shift detected: p={result.p_value:.3g} < {result.alpha:g} ({tests})."
    else:
        text = f"No shift detected: p={result.p_value:.3g} >= {result.alpha:g} ({tests})."
    if result.expected_target_accuracy is not None and result.source_accuracy is not None:
        text += (f" Accuracy {result.source_accuracy:.3f} on the source; about "
                 f"{result.expected_target_accuracy:.3f} expected on the target (ATC estimate)")
        text += f", {result.target_accuracy:.3f} measured." if result.target_accuracy is not None else "."
    elif result.source_confidence is not None:
        text += (f" Mean confidence {result.source_confidence:.3f} on the source, "
                 f"{result.target_confidence:.3f} on the target.")
    if result.shifted:
        text += (" Consider adapting to the target (tfxfer.adapt: adapt_batchnorm, DeepCORAL, DANN, self_train) "
                 "and check it on labelled target examples.")
    return text


def detect_shift(model_or_backbone, source, target, *, method: str = "both", alpha: float = 0.01,
                 permutations: int = 500, max_samples: int | None = 500, batch_size: int = 32,
                 seed: int = 0) -> ShiftResult:
    """Test whether ``target`` data differ from ``source`` data in the model's feature space.

    Args:
        model_or_backbone: a tfxfer image or text classifier (pooled features + its head's
            confidences), a bare ``keras.Model`` backbone (its output, average-pooled), a
            `tfxfer.text.TextEncoder` (mean-pooled embeddings), or None when ``source`` and
            ``target`` already are feature matrices.
        source: ``(x, y)``, ``x`` or a batched dataset: data like the training data; its labels
            (optional) give the source accuracy and the ATC estimate. Use held-out data.
        target: ``x``, or ``(x, y)`` whose labels are used only to report the measured accuracy.
        method: "both" (domain classifier and MMD, Bonferroni-combined), "classifier" or "mmd".
        alpha: significance level of the verdict, in (0, 1).
        permutations: permutations per test (the smallest reachable p-value is 1/(1+permutations)),
            at most `tfxfer.adapt.two_sample.MAX_PERMUTATIONS`.
        max_samples: at most this many examples per domain enter each test (random subset).
        batch_size: batch size of the feature pass.
        seed: seeds subsets, splits and permutations.

    Returns:
        A `ShiftResult` with the test results, per-class confidence and a plain-words ``verdict``.

    Raises:
        ArgumentError: ``target`` inputs of another shape or channel count than the model takes,
            target labels outside the source's label set, labels that are not class ids, or a bad option.
        DataError: NaN or infinite inputs (or features), or fewer than 2 examples in a domain.
    """
    if method not in METHODS:
        raise ArgumentError("method", method, "must be one of " + ", ".join(repr(m) for m in METHODS))
    alpha = check_float("alpha", alpha, low=0.0, high=1.0, low_open=True, high_open=True)
    permutations = check_int("permutations", permutations, low=1, high=MAX_PERMUTATIONS)
    names = ("classifier", "mmd") if method == "both" else (method,)
    needed = int(np.ceil(len(names) / alpha))  # the smallest combined p-value is len(names) / (1 + permutations)
    if needed > MAX_PERMUTATIONS:  # no permitted permutation count reaches below it
        raise ArgumentError("alpha", alpha, f"must be >= {len(names) / MAX_PERMUTATIONS:g} for method={method!r}: at "
                            f"most {MAX_PERMUTATIONS} permutations are drawn, and the smallest combined p-value is "
                            f"{len(names)} / (1 + permutations)")
    batch_size = check_int("batch_size", batch_size, low=1)
    if model_or_backbone is not None:  # refuse bad data before any work (datasets are checked as they are read)
        if not isinstance(target, tf.data.Dataset):
            x_target, y_target = split_data(target, name="target")
            check_inputs(model_or_backbone, x_target, name="target")
            if not isinstance(source, tf.data.Dataset):
                source_labels = split_data(source, name="source")[1]
                check_labels(model_or_backbone, source_labels, name="source")
                check_labels(model_or_backbone, y_target, name="target", source_labels=source_labels)
    src = domain_features(model_or_backbone, source, name="source", batch_size=batch_size)
    tgt = domain_features(model_or_backbone, target, name="target", batch_size=batch_size)
    if model_or_backbone is not None:
        check_labels(model_or_backbone, src.labels, name="source")
        check_labels(model_or_backbone, tgt.labels, name="target", source_labels=src.labels)
    if permutations < needed:
        raise ArgumentError("permutations", permutations, f"must be >= {needed} for method={method!r} and "
                            f"alpha={alpha:g}: with fewer, no p-value can fall below alpha")
    tests = []
    for name in names:
        run = classifier_test if name == "classifier" else mmd_test
        tests.append(run(src.features, tgt.features, permutations=permutations, max_samples=max_samples, seed=seed))
    p_value = min(1.0, min(t.p_value for t in tests) * len(tests))
    result = ShiftResult(shifted=p_value < alpha, p_value=p_value, alpha=alpha, tests=tests,
                         n_source=len(src.features), n_target=len(tgt.features),
                         feature_dim=int(np.asarray(src.features).reshape(len(src.features), -1).shape[1]))
    if len(tests) > 1:
        result.notes.append(f"p_value is the smallest of {len(tests)} test p-values times {len(tests)} (Bonferroni)")
    if src.probabilities is not None and tgt.probabilities is not None:
        result.per_class = _per_class(src.probabilities, tgt.probabilities)
        result.source_confidence = float(src.probabilities.max(axis=1).mean())
        result.target_confidence = float(tgt.probabilities.max(axis=1).mean())
        if src.labels is not None:
            result.source_accuracy = float(np.mean(src.probabilities.argmax(axis=1) == sparse_labels(src.labels)))
            result.expected_target_accuracy = atc_estimate(src.probabilities, src.labels, tgt.probabilities)
        else:
            result.notes.append("no source labels: the expected target accuracy (ATC) needs labelled source data")
        if tgt.labels is not None:
            result.target_accuracy = float(np.mean(tgt.probabilities.argmax(axis=1) == sparse_labels(tgt.labels)))
    elif model_or_backbone is not None:
        result.notes.append("no classifier head: per-class confidence and expected accuracy are not available")
    result.verdict = _verdict(result)
    return result
