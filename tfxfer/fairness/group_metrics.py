"""Per-group metrics with bootstrap confidence intervals and the worst-group gap.

`group_metrics` splits predictions by any group column (cell type, domain, a demographic
attribute) and reports, for every group and overall: accuracy, recall of each class, the false
positive and false negative rates of a positive class, and the expected calibration error (15
bins, as `tfxfer.metrics`). Each value carries a percentile bootstrap interval (examples resampled
within each group, so group sizes stay fixed), and each metric a worst-group gap (best group minus
worst group) with its own interval from the same resamples. `audit_model` runs a model first.
The result, a `GroupReport` (`tfxfer.fairness.group_report`), renders rows, markdown or a summary.

Intervals are percentile intervals, honest about small groups (wide). The ECE and the gaps are
biased upwards (a sum of absolute values; a maximum minus a minimum of noisy values), and their
resamples more so: their percentile interval is shifted down by the bootstrap's estimate of that
bias (mean of the resamples minus the value, where that is positive; never up), so it brackets the
value printed. Every metric is a rate, and so is every gap: intervals are clipped to [0, 1]. A
gap's resamples are those in which at least two groups have the metric defined (a resample that
draws no example of a class from a group has no recall of that class there); the others are left
out, never scored as a gap of 0. Resamples are drawn in chunks of bounded size, so memory stays
bounded for any group size; ``n_bootstrap`` is at most `MAX_BOOTSTRAP`.

Example:
    >>> import numpy as np
    >>> from tfxfer.fairness import group_metrics
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 2, 400)
    >>> groups = np.where(np.arange(400) < 200, "mono", "poly")
    >>> flip = rng.random(400) < np.where(groups == "mono", 0.1, 0.3)  # poly gets 3x the errors
    >>> report = group_metrics(labels, np.where(flip, 1 - labels, labels), groups, n_bootstrap=200)
    >>> report.gap("accuracy").worst_group
    'poly'
    >>> round(report.value("poly", "accuracy").value, 2)
    0.72
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tfxfer.errors import ArgumentError, DataError, bounded_repr
from tfxfer.fairness.group_report import GroupGap, GroupReport, MetricValue  # re-exported: they lived here
from tfxfer.fairness.groups import MISSING_GROUP, encode_groups
from tfxfer.metrics import ECE_BINS, check_probabilities, class_ids, expected_calibration_error
from tfxfer.utils.validate import check_float, check_int

#: Metrics where a lower value is better (the worst group has the highest value).
LOWER_IS_BETTER = ("fpr", "fnr", "ece")

#: The most bootstrap resamples `group_metrics` draws per group (the intervals' percentiles are
#: stable long before; the bound keeps the run time and the resampled values' memory finite).
MAX_BOOTSTRAP = 100_000

#: Index entries (resamples x group size) drawn at once: bounds the memory of one chunk.
_CHUNK_ENTRIES = 1 << 20


def _metric_samples(y, pred, conf, bin_index, index, metrics, positive, num_classes, bins):
    """{metric: values (rows of ``index``)} for the examples each row of ``index`` selects."""
    yy, pp = y[index], pred[index]
    correct = yy == pp
    out = {"accuracy": correct.mean(axis=1)}
    with np.errstate(invalid="ignore", divide="ignore"):
        for c in range(num_classes):
            name = f"recall[{c}]"
            if name in metrics:
                is_c = yy == c
                out[name] = (correct & is_c).sum(axis=1) / is_c.sum(axis=1)
        if positive is not None:
            pos = yy == positive
            out["fpr"] = ((pp == positive) & ~pos).sum(axis=1) / (~pos).sum(axis=1)
            out["fnr"] = ((pp != positive) & pos).sum(axis=1) / pos.sum(axis=1)
    if conf is not None:
        gap = correct - conf[index]
        bi = bin_index[index]
        total = np.zeros(len(index))
        for b in range(bins):
            total += np.abs(np.where(bi == b, gap, 0.0).sum(axis=1))
        out["ece"] = total / index.shape[1]
    return out


def _bootstrap(y, pred, conf, bin_index, rows, n_bootstrap, rng, metrics, positive, num_classes, bins):
    """{metric: ``n_bootstrap`` resampled values} of the examples ``rows`` (resampled with replacement),
    drawn in chunks of at most `_CHUNK_ENTRIES` index entries."""
    per_chunk = max(1, _CHUNK_ENTRIES // len(rows))
    parts = []
    for start in range(0, n_bootstrap, per_chunk):
        index = rows[rng.integers(0, len(rows), size=(min(per_chunk, n_bootstrap - start), len(rows)))]
        parts.append(_metric_samples(y, pred, conf, bin_index, index, metrics, positive, num_classes, bins))
    return {m: np.concatenate([part[m] for part in parts]) for m in parts[0]}


def _interval(boot, point: float, tail: float, *, debias: bool) -> tuple[float, float]:
    """The percentile interval of the finite resamples ``boot`` of a rate, within [0, 1]; with
    ``debias`` (an estimator biased upwards) shifted down by the bootstrap's bias estimate (never up)."""
    finite = boot[np.isfinite(boot)]
    if not len(finite):
        return math.nan, math.nan
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    if debias and math.isfinite(point):
        bias = max(0.0, float(finite.mean()) - point)
        low, high = low - bias, high - bias
    return float(np.clip(low, 0.0, 1.0)), float(np.clip(high, 0.0, 1.0))


def _predictions(predictions, class_names):
    """``(pred, conf, probs, num_classes)`` from probabilities ``(n, k)``, P(class 1) ``(n, 1)`` floats
    or class ids ``(n,)``; ``conf`` / ``probs`` None and ``num_classes`` 0 (decided later) for ids."""
    predictions = np.asarray(predictions)
    if predictions.dtype.kind not in "iufb":
        raise DataError(f"`predictions` must be class probabilities or class ids; got dtype {predictions.dtype}")
    if predictions.ndim == 2 and predictions.shape[1] == 1 and predictions.dtype.kind == "f":
        p = predictions[:, 0].astype(np.float64)  # a sigmoid output: P(class 1) of two classes
        bad = ~(np.isfinite(p) & (p >= 0.0) & (p <= 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"`predictions` of shape (n, 1) are read as P(class 1) (a sigmoid output) and must be "
                            f"in [0, 1]; row {i} is {p[i]}. Pass class ids as a 1-D int array")
        predictions = np.stack([1.0 - p, p], axis=1)
    if predictions.ndim == 2 and predictions.shape[1] >= 2:
        probs = check_probabilities(predictions, name="predictions")
        return probs.argmax(axis=1), probs.max(axis=1), probs, probs.shape[1]
    if predictions.ndim == 1 or (predictions.ndim == 2 and predictions.shape[1] == 1):
        return class_ids(predictions.reshape(-1), name="predictions"), None, None, 0
    raise ArgumentError("predictions", f"an array of shape {predictions.shape}",
                        "must be probabilities (n, classes), P(class 1) (n, 1) or class ids (n,)")


def _label_ids(labels, class_names):
    """Class ids of ``labels``: ids, one-hot rows, or names mapped through ``class_names``."""
    array = np.asarray(labels)
    names = None if class_names is None else list(class_names)
    if array.ndim == 1 and array.dtype.kind in "USO" and names is not None and any(
            isinstance(v, str) for v in array.tolist()):
        index = {str(n): i for i, n in enumerate(names)}
        unknown = [v for v in array.tolist() if str(v) not in index]
        if unknown:
            raise DataError(f"`labels` holds {bounded_repr(unknown[0])}, which is not one of `class_names` "
                            f"{bounded_repr(names)}")
        return np.array([index[str(v)] for v in array.tolist()], dtype=np.int64)
    return class_ids(array, name="labels")


def _check_label_width(labels, y, num_classes: int) -> None:
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] != num_classes:
        raise DataError(f"`labels` are one-hot rows of {array.shape[1]} classes but `predictions` have "
                        f"{num_classes}")
    if len(y) and y.max() >= num_classes:
        raise DataError(f"`labels` holds class {int(y.max())} but `predictions` cover {num_classes} classes "
                        f"(0..{num_classes - 1})")


def group_metrics(labels, predictions, groups, *, positive_class: int | None = None, class_names=None,
                  n_bootstrap: int = 1000, confidence_level: float = 0.95, seed: int = 0) -> GroupReport:
    """Accuracy, recall per class, FPR/FNR and ECE per group, with bootstrap intervals and gaps.

    Args:
        labels: true class ids (or one-hot rows), length n; class names when ``class_names`` are
            given (mapped through them).
        predictions: class probabilities ``(n, k)`` (gives ECE too; rows must be probabilities, not
            logits), a sigmoid output ``(n, 1)`` of floats (read as P(class 1) of two classes) or
            predicted class ids ``(n,)`` (integers).
        groups: one group value per example (strings or numbers, not both: "mono"/"poly", a domain,
            an attribute). None and NaN are one group, ``"(missing)"`` (`MISSING_GROUP`), reported
            like the others and noted.
        positive_class: the class whose FPR / FNR are reported (default 1 for two classes; for more
            classes FPR / FNR are reported only when it is given).
        class_names: names for the recall columns (``recall[defective]``); default class ids.
        n_bootstrap: resamples per group, at most `MAX_BOOTSTRAP` (0: point estimates only,
            intervals are NaN).
        confidence_level: of the percentile intervals, in (0, 1).
        seed: seeds the resampling.

    Returns:
        A `GroupReport`.

    Raises:
        ArgumentError / DataError: lengths that differ, fewer than two groups, bad options;
            predictions that are not probabilities (logits, NaN, rows not summing to 1) or not
            integer class ids; labels that are not class ids (NaN, < 0, names without
            ``class_names``) or name a class the predictions do not cover.
        ArgumentTypeError: group values mixing numbers and strings.
    """
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, low=0, high=MAX_BOOTSTRAP)
    confidence_level = check_float("confidence_level", confidence_level, low=0.0, high=1.0, low_open=True,
                                   high_open=True)
    pred, conf, probs, num_classes = _predictions(predictions, class_names)
    y = _label_ids(labels, class_names)
    if y.ndim == 0 or pred.ndim == 0:
        raise ArgumentError("labels" if y.ndim == 0 else "predictions", labels if y.ndim == 0 else predictions,
                            "must hold one entry per example")
    groups_size = len(groups) if hasattr(groups, "__len__") and not isinstance(groups, (str, bytes)) else None
    if not (len(y) == len(pred) == groups_size):
        raise DataError(f"`labels`, `predictions` and `groups` must have one entry per example; got "
                        f"{len(y)}, {len(pred)} and {groups_size}")
    if len(y) == 0:
        raise DataError("`labels` is empty")
    codes, group_values = encode_groups(groups)
    if probs is None:  # class ids on both sides: as many classes as the ids (or the names) say
        num_classes = max(int(max(y.max(initial=0), pred.max(initial=0)) + 1),
                          len(class_names) if class_names is not None else 0)
    _check_label_width(labels, y, num_classes)
    names = list(range(num_classes)) if class_names is None else list(class_names)
    if len(names) != num_classes:
        raise ArgumentError("class_names", class_names, f"must have {num_classes} names")
    if positive_class is None and num_classes == 2:
        positive_class = 1
    if positive_class is not None:
        positive_class = check_int("positive_class", positive_class, low=0, high=num_classes - 1)
    if len(group_values) < 2:
        raise DataError(f"`groups` has {len(group_values)} distinct value(s) {group_values[:2]}; a group audit "
                        "needs at least 2")
    metrics = ["accuracy", *[f"recall[{c}]" for c in range(num_classes)]]
    if positive_class is not None:
        metrics += ["fpr", "fnr"]
    if probs is not None:
        metrics.append("ece")
    bins = ECE_BINS
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_index = None if conf is None else np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)

    rng = np.random.default_rng(seed)
    tail = (1.0 - confidence_level) / 2.0
    values, sizes, samples = {}, {}, {}
    members = {g: np.flatnonzero(codes == i) for i, g in enumerate(group_values)}
    members[None] = np.arange(len(y))  # None: overall (a missing group value is MISSING_GROUP)
    for group in [*group_values, None]:
        rows = members[group]
        sizes[group] = int(len(rows))
        point = _metric_samples(y, pred, conf, bin_index, rows[None, :], metrics, positive_class, num_classes, bins)
        if n_bootstrap:
            boot = _bootstrap(y, pred, conf, bin_index, rows, n_bootstrap, rng, metrics, positive_class, num_classes,
                              bins)
        else:
            boot = {m: np.full(1, np.nan) for m in metrics}
        samples[group] = boot
        values[group] = {}
        for m in metrics:
            low, high = _interval(boot[m], float(point[m][0]), tail, debias=m == "ece")
            values[group][m] = MetricValue(float(point[m][0]), float(low), float(high))
    if probs is not None:  # the point ECE is tfxfer.metrics' own number
        for group in [*group_values, None]:
            rows = members[group]
            ece = expected_calibration_error(probs[rows], y[rows])
            v = values[group]["ece"]
            values[group]["ece"] = MetricValue(ece, v.low, v.high)

    gaps, notes = {}, []
    shown = {f"recall[{c}]": f"recall[{names[c]}]" for c in range(num_classes)}  # the names users read
    for m in metrics:
        points = {g: values[g][m].value for g in group_values if not math.isnan(values[g][m].value)}
        if len(points) < 2:
            gaps[m] = GroupGap(m, math.nan, math.nan, math.nan, None, None)
            notes.append(f"{shown.get(m, m)}: defined in fewer than two groups (a group without examples of that class)")
            continue
        lower_better = m in LOWER_IS_BETTER
        worst = (max if lower_better else min)(points, key=points.get)
        best = (min if lower_better else max)(points, key=points.get)
        if n_bootstrap:
            stacked = np.stack([samples[g][m] for g in points])
            # A gap needs the metric in two groups: a resample defined in one group only has no gap
            # (scoring it 0 dragged the bootstrap mean down and the "debiased" interval up, above 1).
            stacked = stacked[:, np.isfinite(stacked).sum(axis=0) >= 2]
            boot_gap = np.nanmax(stacked, axis=0) - np.nanmin(stacked, axis=0) if stacked.size else stacked[0]
            low, high = _interval(boot_gap, abs(points[best] - points[worst]), tail, debias=True)
        else:
            low = high = math.nan
        gaps[m] = GroupGap(m, float(abs(points[best] - points[worst])), float(low), float(high), worst, best)
    if MISSING_GROUP in group_values:
        notes.append(f"{MISSING_GROUP}: {sizes[MISSING_GROUP]} examples whose group value is None or NaN, "
                     "reported as a group of their own")
    small = [g for g in group_values if sizes[g] < 30]
    if small:
        notes.append(f"groups with fewer than 30 examples ({', '.join(map(str, small[:5]))}): wide intervals")
    renamed = shown
    metrics = [renamed.get(m, m) for m in metrics]
    values = {g: {renamed.get(m, m): v for m, v in row.items()} for g, row in values.items()}
    gaps = {renamed.get(m, m): dataclasses.replace(g, metric=renamed.get(m, m)) for m, g in gaps.items()}
    return GroupReport(metrics, group_values, sizes, values, gaps, confidence_level, n_bootstrap, positive_class,
                       notes)


def audit_model(model, x, labels, groups, *, batch_size: int = 32, positive_class: int | None = None,
                class_names=None, n_bootstrap: int = 1000, confidence_level: float = 0.95,
                seed: int = 0) -> GroupReport:
    """`group_metrics` of ``model``'s class probabilities on ``x`` (images or texts).

    Example:
        >>> from tfxfer.fairness import audit_model
        >>> report = audit_model(model, x_test, y_test, cell_types)  # doctest: +SKIP
        >>> print(report.to_markdown())  # doctest: +SKIP
    """
    probs = np.asarray(model.predict(x, batch_size=check_int("batch_size", batch_size, low=1), verbose=0))
    return group_metrics(labels, probs, groups, positive_class=positive_class, class_names=class_names,
                         n_bootstrap=n_bootstrap, confidence_level=confidence_level, seed=seed)
