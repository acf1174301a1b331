"""Rank candidate backbones by transferability and edge cost before fine-tuning any of them.

`rank_backbones` extracts pooled features once per candidate, scores them (LogME, H-score and,
for backbones with an ImageNet head, LEEP and NCE), measures each candidate's parameter count,
full-int8 TFLite size and LiteRT latency at its input size, drops what is over budget, and marks
the Pareto front of score against cost. The scores are advisory (see `ADVISORY`).

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer import rank_backbones
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(0, 255, (24, 32, 32, 3)).astype("float32"); y = np.arange(24) % 2
    >>> result = rank_backbones((x, y), ["mobilenet_v2:random"], input_size=(32, 32),
    ...                         scores=("logme",), latency_runs=3, verbose=0)
    >>> row = result.to_rows()[0]
    >>> row["candidate"], row["rank"], row["pareto"], row["int8_size_mib"] > 0
    ('mobilenet_v2:random', 1, True, True)
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tfxfer.errors import ArgumentError, DataError
from tfxfer.transfer._data import as_image_arrays, single_labels
from tfxfer.transfer.candidates import Budget, Candidate, as_candidate
from tfxfer.transfer.edge_cost import measure_edge_cost
from tfxfer.transfer.features import candidate_features
from tfxfer.transfer.logme import logme
from tfxfer.transfer.scores import hscore, leep, nce

SCORE_NAMES = ("logme", "hscore", "leep", "nce")
COST_AXES = ("latency_ms", "int8_size_mib", "params")
TASKS = ("classification", "regression")

ADVISORY = (
    "Scores are advisory: they estimate, from one pass over the data with frozen weights, how well a "
    "head on each backbone's features will do. They often but not always order backbones as "
    "fine-tuning would; confirm the top one or two with a short fine-tune before committing."
)


def pareto_flags(scores, costs) -> list[bool]:
    """True where no other point has a score >= and a cost <= with one of them strict.

    ``None`` entries (unscored or unmeasured) are never on the front and dominate nothing.

    Example:
        >>> pareto_flags([0.9, 0.8, 0.7, 0.95], [5.0, 2.0, 3.0, 9.0])
        [True, True, False, True]
    """
    points = list(zip(scores, costs))
    flags = []
    for i, (s, c) in enumerate(points):
        if s is None or c is None:
            flags.append(False)
            continue
        dominated = any(
            j != i and t is not None and d is not None and t >= s and d <= c and (t > s or d < c)
            for j, (t, d) in enumerate(points)
        )
        flags.append(not dominated)
    return flags


@dataclasses.dataclass
class RankingResult:
    """Rows sorted best first (in-budget scored candidates, then the rest) and run facts.

    ``features`` maps candidate label -> (features, source_probs or None, labels) when
    `rank_backbones` ran with ``keep_features=True`` (e.g. to train a head or run
    `tfxfer.transfer.probe_features` without a second pass).
    """

    rows: list[dict]
    primary: str
    cost_axis: str
    budget: Budget
    num_samples: int
    num_classes: int | None
    timings: dict
    advisory: str = ADVISORY
    features: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def best(self) -> dict | None:
        """The in-budget candidate with the highest primary score (None if there is none)."""
        return next((r for r in self.rows if r["rank"] == 1), None)

    def to_rows(self) -> list[dict]:
        return [dict(r) for r in self.rows]

    def to_dict(self) -> dict:
        return {"rows": self.to_rows(), "primary": self.primary, "cost_axis": self.cost_axis,
                "budget": dataclasses.asdict(self.budget), "num_samples": self.num_samples,
                "num_classes": self.num_classes, "timings": dict(self.timings), "advisory": self.advisory}

    def to_markdown(self) -> str:
        def num(v, fmt):
            return "-" if v is None else format(v, fmt)

        lines = [
            "| rank | candidate | input | params (M) | int8 MiB | latency ms | " + " | ".join(SCORE_NAMES)
            + " | Pareto | budget |",
            "|---:|---|---|---:|---:|---:|" + "---:|" * len(SCORE_NAMES) + ":---:|---|",
        ]
        for r in self.rows:
            scores = " | ".join(num(r[name], ".4f") for name in SCORE_NAMES)
            params = None if r["params"] is None else r["params"] / 1e6
            budget = "ok" if r["within_budget"] else r["over_budget"]
            lines.append(
                f"| {num(r['rank'], 'd')} | {r['candidate']} | {r['input_size']} | {num(params, '.2f')} | "
                f"{num(r['int8_size_mib'], '.2f')} | {num(r['latency_ms'], '.2f')} | {scores} | "
                f"{'yes' if r['pareto'] else ''} | {budget} |"
            )
        best = self.best
        lines += [
            "",
            f"Ranked by {self.primary} on {self.num_samples} samples; Pareto front of {self.primary} vs "
            f"{self.cost_axis} among in-budget candidates; budget: {self.budget.describe()}; "
            f"ranking took {self.timings.get('wall_s', 0.0):.1f} s.",
            f"Suggested start: {best['candidate'] if best else 'none within budget'}.",
            "",
            f"_{self.advisory}_",
        ]
        notes = [f"- {r['candidate']}: {r['note']}" for r in self.rows if r["note"]]
        if notes:
            lines += ["", "Notes:", *notes]
        return "\n".join(lines)


def _check_options(scores, primary, cost_axis, task, max_samples, batch_size):
    scores = tuple(scores)
    unknown = [s for s in scores if s not in SCORE_NAMES]
    if not scores or unknown:
        raise ArgumentError("scores", scores, "must be a non-empty subset of " + ", ".join(SCORE_NAMES))
    if primary is None:
        primary = "logme" if "logme" in scores else scores[0]
    if primary not in scores:
        raise ArgumentError("primary", primary, f"must be one of the requested scores {scores}")
    if cost_axis not in COST_AXES:
        raise ArgumentError("cost_axis", cost_axis, "must be one of " + ", ".join(COST_AXES))
    if task not in TASKS:
        raise ArgumentError("task", task, "must be one of " + ", ".join(TASKS))
    if task == "regression" and set(scores) - {"logme"}:
        raise ArgumentError("scores", scores, "must be ('logme',) for task='regression' (the others need classes)")
    for name, value in (("max_samples", max_samples), ("batch_size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 2):
            raise ArgumentError(name, value, "must be None or an int >= 2" if name == "max_samples" else "must be an int >= 2")
    return scores, primary


def _score(name, feats, labels, task):
    if name == "logme":
        return logme(feats.features, labels, task=task)
    if name == "hscore":
        return hscore(feats.features, labels)
    if feats.source_probs is None:
        return None
    return leep(feats.source_probs, labels) if name == "leep" else nce(feats.source_probs, labels)


def rank_backbones(
    data,
    candidates,
    *,
    budget=None,
    input_size: tuple[int, int] | None = None,
    scores=SCORE_NAMES,
    primary: str | None = None,
    cost_axis: str = "latency_ms",
    task: str = "classification",
    measure_cost: bool = True,
    score_over_budget: bool = False,
    max_samples: int | None = None,
    batch_size: int = 32,
    threads: int = 1,
    latency_runs: int = 20,
    num_calibration: int = 32,
    seed: int = 0,
    keep_features: bool = False,
    verbose: int = 1,
) -> RankingResult:
    """Score every candidate backbone on ``data`` and put the scores beside its edge cost.

    Args:
        data: ``(images, labels)`` with images (N, H, W, C) raw 0-255 pixels (C = 1 or 3) and
            integer or one-hot labels (real targets for ``task="regression"``), or a
            ``tf.data.Dataset`` of such batches (e.g. ``tfxfer.data`` loaders' ``train``). A few hundred to a few thousand labelled examples are plenty.
        candidates: `Candidate` objects, catalog names, or strings ``"name[:weights][@size]"``
            (``"efficientnet_lite0"``, ``"efficientnet_lite0:random@96"``, ``"resnet50:/w.h5"``).
        budget: `Budget`, a dict (``{"max_size_mib": 5, "max_latency_ms": 20}``) or None.
            Candidates over budget are listed with the reason, get no rank, and (unless
            ``score_over_budget``) are not scored, which saves their feature extraction.
        input_size: (height, width) for candidates that do not set their own; None uses each
            backbone's native size. Images are resized (bilinear) to it.
        scores: which of "logme", "hscore", "leep", "nce" to compute. LEEP and NCE need the
            backbone's ImageNet head and are left empty where it is unavailable.
        primary: the score that orders the table and defines the Pareto front; default "logme"
            if requested, else the first of ``scores``.
        cost_axis: "latency_ms", "int8_size_mib" or "params": the cost side of the Pareto front.
        task: "classification" or "regression" (LogME only).
        measure_cost: convert and time each architecture (int8 TFLite + LiteRT); False skips it
            (no size, latency or Pareto flag, and a budget on size/latency cannot be checked).
        score_over_budget: also extract features for candidates over budget.
        max_samples: use a seeded random subset of at most this many examples.
        batch_size: feature-extraction batch size.
        threads: LiteRT threads for the latency measurement.
        latency_runs: timed LiteRT invocations per architecture (median reported).
        num_calibration: images used to calibrate each int8 conversion.
        seed: seed of the subset.
        keep_features: keep each candidate's features in ``RankingResult.features``.
        verbose: 1 prints one progress line per candidate, 0 is silent.

    Returns:
        A `RankingResult`: ``to_rows()`` (one dict per candidate: scores, params, int8_size_mib,
        latency_ms, pareto, within_budget, rank, timings, note), ``to_markdown()``, ``best``.

    Raises:
        ArgumentError / ArgumentTypeError: bad options or candidates (unknown backbone names
            raise `UnknownNameError` with close matches).
        DataError: images of the wrong shape, length mismatch, a single class.
    """
    wall = time.perf_counter()
    scores, primary = _check_options(scores, primary, cost_axis, task, max_samples, batch_size)
    budget = Budget.coerce(budget)
    if not measure_cost and (budget.max_size_mib is not None or budget.max_latency_ms is not None):
        raise ArgumentError("measure_cost", False, "must be True when the budget limits size or latency")
    if isinstance(candidates, (str, Candidate)):
        candidates = [candidates]
    candidates = [as_candidate(c) for c in candidates]
    if not candidates:
        raise ArgumentError("candidates", candidates, "must name at least one backbone")
    labels_seen = [c.label for c in candidates]
    if len(set(labels_seen)) != len(labels_seen):
        raise ArgumentError("candidates", labels_seen, "must not repeat a candidate (give each a distinct label)")
    images, labels = as_image_arrays(data, max_samples=max_samples, seed=seed)
    if task == "classification":
        labels = single_labels(labels)
        classes = np.unique(labels)
        if classes.size < 2:
            raise DataError(f"`data` has a single class ({classes.tolist()}); ranking needs at least 2")
        num_outputs, head_task = int(classes.size), "multiclass"
    else:
        num_outputs, head_task = 1 if labels.ndim == 1 else int(labels.shape[1]), "regression"
    channels = int(images.shape[-1])
    calibration = images[np.random.default_rng(seed).permutation(len(images))[:num_calibration]]

    rows, cost_cache, kept = [], {}, {}
    for index, candidate in enumerate(candidates, 1):
        spec = candidate.spec
        size = tuple(candidate.input_size or input_size or spec.input_size)
        spec.check_input_shape((*size, 3))
        row = {"candidate": candidate.label, "backbone": spec.name,
               "weights": "random" if candidate.weights is None else str(candidate.weights),
               "input_size": f"{size[0]}x{size[1]}", "params": None, "int8_size_mib": None,
               "latency_ms": None, **{name: None for name in SCORE_NAMES}, "pareto": False,
               "within_budget": True, "over_budget": "", "rank": None,
               "cost_s": 0.0, "extract_s": 0.0, "score_s": 0.0, "note": ""}
        if measure_cost:
            key = (spec.name, size, channels)
            if key not in cost_cache:
                cost_cache[key] = measure_edge_cost(
                    spec, input_size=size, channels=channels, num_classes=num_outputs, task=head_task,
                    representative=calibration, threads=threads, runs=latency_runs,
                    num_calibration=num_calibration)
                row["cost_s"] = cost_cache[key]["cost_s"]
            row.update({k: cost_cache[key][k] for k in ("params", "int8_size_mib", "latency_ms")})
        reasons = budget.violations(row)
        row["within_budget"], row["over_budget"] = not reasons, "; ".join(reasons)
        if row["within_budget"] or score_over_budget:
            start = time.perf_counter()
            feats = candidate_features(candidate, images, input_size=size, batch_size=batch_size,
                                       source_head=bool({"leep", "nce"} & set(scores)))
            row["extract_s"] = time.perf_counter() - start
            row["note"] = feats.note
            if keep_features:
                kept[candidate.label] = (feats.features, feats.source_probs, labels)
            start = time.perf_counter()
            try:
                for name in scores:
                    row[name] = _score(name, feats, labels, task)
            except DataError as exc:  # e.g. random weights whose activations overflow to inf
                row["note"] = (row["note"] + "; " if row["note"] else "") + f"not scored: {exc}"
                row.update({name: None for name in scores})
            row["score_s"] = time.perf_counter() - start
        rows.append(row)
        if verbose:
            cost = (f"{row['int8_size_mib']:.2f} MiB int8, {row['latency_ms']:.2f} ms"
                    if row["latency_ms"] is not None else "cost not measured")
            score = row[primary]
            print(f"[{index}/{len(candidates)}] {candidate.label} @ {row['input_size']}: {cost}; "
                  + (f"{primary} {score:.4f} (features {row['extract_s']:.1f} s)" if score is not None
                     else (f"over budget ({row['over_budget']})" if not row["within_budget"] else "not scored")),
                  flush=True)

    eligible = [r["within_budget"] and r[primary] is not None for r in rows]
    flags = pareto_flags([r[primary] if ok else None for r, ok in zip(rows, eligible)],
                         [r[cost_axis] if ok else None for r, ok in zip(rows, eligible)])
    for row, flag in zip(rows, flags):
        row["pareto"] = bool(flag) if measure_cost else False
    ranked = sorted((r for r, ok in zip(rows, eligible) if ok), key=lambda r: -r[primary])
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    rest = [r for r, ok in zip(rows, eligible) if not ok]
    timings = {"wall_s": time.perf_counter() - wall,
               "extract_s": sum(r["extract_s"] for r in rows), "cost_s": sum(r["cost_s"] for r in rows),
               "score_s": sum(r["score_s"] for r in rows)}
    return RankingResult(rows=ranked + rest, primary=primary, cost_axis=cost_axis, budget=budget,
                         num_samples=len(images), num_classes=num_outputs if task == "classification" else None,
                         timings=timings, features=kept)
