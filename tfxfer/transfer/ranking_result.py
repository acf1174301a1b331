"""What `rank_backbones` returns (`RankingResult`), the Pareto test, and the advisory wording.

Example:
    >>> from tfxfer.transfer.ranking_result import pareto_flags
    >>> pareto_flags([0.9, 0.5], [1.0, 2.0])
    [True, False]
"""

from __future__ import annotations

import dataclasses

from tfxfer.transfer.candidates import Budget

SCORE_NAMES = ("logme", "hscore", "knn", "leep", "nce")
COST_AXES = ("latency_ms", "int8_size_mib", "params", "float32_size_mib")
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
    `tfxfer.transfer.probe_features` without a second pass). ``sample`` says which examples
    were scored (image data): ``indices`` into the data, ``count``, ``of``, ``per_class``,
    ``max_samples``, ``max_per_class``, ``seed``, ``stratified``.
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
    sample: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def best(self) -> dict | None:
        """The in-budget candidate with the highest primary score (None if there is none)."""
        return next((r for r in self.rows if r["rank"] == 1), None)

    def to_rows(self) -> list[dict]:
        return [dict(r) for r in self.rows]

    def to_dict(self) -> dict:
        return {"rows": self.to_rows(), "primary": self.primary, "cost_axis": self.cost_axis,
                "budget": dataclasses.asdict(self.budget), "num_samples": self.num_samples,
                "num_classes": self.num_classes, "timings": dict(self.timings), "advisory": self.advisory,
                "sample": dict(self.sample)}

    def _sample_text(self) -> str:
        s = self.sample
        if not s or s.get("count") == s.get("of"):
            return ""
        how = "stratified" if s.get("stratified") else "random"
        cap = f", at most {s['max_per_class']} per class" if s.get("max_per_class") else ""
        return f" ({how} subset of {s['of']}{cap}, seed {s.get('seed')})"

    def to_markdown(self) -> str:
        def num(v, fmt):
            return "-" if v is None else format(v, fmt)

        lines = [
            "| rank | candidate | input | params (M) | f32 MiB | int8 MiB | latency ms | " + " | ".join(SCORE_NAMES)
            + " | Pareto | budget |",
            "|---:|---|---|---:|---:|---:|---:|" + "---:|" * len(SCORE_NAMES) + ":---:|---|",
        ]
        for r in self.rows:
            scores = " | ".join(num(r[name], ".4f") for name in SCORE_NAMES)
            params = None if r["params"] is None else r["params"] / 1e6
            budget = "ok" if r["within_budget"] else r["over_budget"]
            lines.append(
                f"| {num(r['rank'], 'd')} | {r['candidate']} | {r['input_size']} | {num(params, '.2f')} | "
                f"{num(r.get('float32_size_mib'), '.2f')} | {num(r['int8_size_mib'], '.2f')} | {num(r['latency_ms'], '.2f')} | {scores} | "
                f"{'yes' if r['pareto'] else ''} | {budget} |"
            )
        best = self.best
        lines += [
            "",
            f"Ranked by {self.primary} on {self.num_samples} samples{self._sample_text()}; Pareto front of {self.primary} vs "
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
