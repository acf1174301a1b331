"""What a group audit holds: `GroupReport`, its `MetricValue` cells and `GroupGap` per metric.

`tfxfer.fairness.group_metrics` computes a `GroupReport`; this module only holds and renders it.
A `MetricValue` is one point estimate with its bootstrap interval (NaN where undefined, shown as
"n/a"); a `GroupGap` is the best group minus the worst group for one metric; a `GroupReport` holds
both for every group and overall (group None) and renders them as rows (``to_rows``, for JSON or a
CSV), a markdown table (``to_markdown``) or one sentence (``summary``).

Example:
    >>> from tfxfer.fairness import MetricValue, group_metrics
    >>> MetricValue(0.8, 0.7, 0.9).describe(digits=2), MetricValue(float("nan"), 0.0, 1.0).describe()
    ('0.80 [0.70, 0.90]', 'n/a')
    >>> report = group_metrics([0, 1, 1, 0], [0, 1, 0, 0], ["a", "a", "b", "b"], n_bootstrap=0)
    >>> [(row["group"], row["n"], row["accuracy"]) for row in report.to_rows()]
    [('a', 2, 1.0), ('b', 2, 0.5), ('overall', 4, 0.75)]
    >>> report.value("b", "accuracy").describe()  # n_bootstrap=0: no interval
    '0.500 [nan, nan]'
    >>> report.value("b", "accuracy").value, report.worst_group_gap.worst_group
    (0.5, 'b')
    >>> print(report.summary())
    Accuracy ranges from 0.500 (b) to 1.000 (a): a gap of 0.500 [nan, nan] over 2 groups
    >>> print(report.to_markdown().splitlines()[0])
    | group | n | accuracy | recall[0] | recall[1] | fpr | fnr |
"""

from __future__ import annotations

import dataclasses
import math
import re


def _cell(value) -> str:
    """``value`` as one Markdown table cell: ``|`` escaped (as the run report's ``md_table`` does) and
    line breaks made spaces, so a group named ``"a|b"`` or ``"x\\ny"`` keeps the table's columns."""
    return re.sub(r"\r\n|\r|\n", " ", str(value)).replace("|", "\\|")


@dataclasses.dataclass(frozen=True)
class MetricValue:
    """A point estimate and its bootstrap interval (NaN where the metric is undefined)."""

    value: float
    low: float
    high: float

    def describe(self, digits: int = 3) -> str:
        if math.isnan(self.value):
            return "n/a"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclasses.dataclass(frozen=True)
class GroupGap:
    """Best group minus worst group for one metric, with its interval and the groups named."""

    metric: str
    value: float
    low: float
    high: float
    worst_group: object
    best_group: object


@dataclasses.dataclass
class GroupReport:
    """Everything `group_metrics` measured; ``to_rows`` / ``to_markdown`` render it for a report."""

    metrics: list
    groups: list
    sizes: dict
    values: dict  # {group: {metric: MetricValue}}, group None = overall
    gaps: dict  # {metric: GroupGap}
    confidence_level: float
    n_bootstrap: int
    positive_class: int | None
    notes: list = dataclasses.field(default_factory=list)

    def value(self, group, metric: str) -> MetricValue:
        return self.values[group][metric]

    @property
    def overall(self) -> dict:
        return self.values[None]

    def gap(self, metric: str = "accuracy") -> GroupGap:
        return self.gaps[metric]

    @property
    def worst_group_gap(self) -> GroupGap:
        """The accuracy gap (best group minus worst group)."""
        return self.gaps["accuracy"]

    def to_rows(self) -> list[dict]:
        """One row per group (and "overall"): ``group``, ``n``, then ``<metric>``, ``<metric>_low``,
        ``<metric>_high`` for every metric."""
        rows = []
        for group in [*self.groups, None]:
            row = {"group": "overall" if group is None else str(group), "n": self.sizes[group]}
            for metric in self.metrics:
                v = self.values[group][metric]
                row.update({metric: v.value, f"{metric}_low": v.low, f"{metric}_high": v.high})
            rows.append(row)
        return rows

    def to_markdown(self, digits: int = 3) -> str:
        head = "| group | n | " + " | ".join(_cell(m) for m in self.metrics) + " |"  # recall[<class name>]
        lines = [head, "|" + "---|" * (len(self.metrics) + 2)]
        for group in [*self.groups, None]:
            cells = [self.values[group][m].describe(digits) for m in self.metrics]
            name = "**overall**" if group is None else _cell(group)
            lines.append(f"| {name} | {self.sizes[group]} | " + " | ".join(cells) + " |")
        gaps = [f"{_cell(m)}: {g.value:.{digits}f} [{g.low:.{digits}f}, {g.high:.{digits}f}] "
                f"(worst {_cell(g.worst_group)})" for m, g in self.gaps.items() if not math.isnan(g.value)]
        lines.append("")
        lines.append(f"Worst-group gaps ({self.confidence_level:.0%} bootstrap intervals, {self.n_bootstrap} "
                     f"resamples): " + "; ".join(gaps))
        lines.extend(f"Note: {n}" for n in self.notes)
        return "\n".join(lines)

    def summary(self) -> str:
        gap = self.worst_group_gap
        return (f"Accuracy ranges from {self.value(gap.worst_group, 'accuracy').value:.3f} ({gap.worst_group}) to "
                f"{self.value(gap.best_group, 'accuracy').value:.3f} ({gap.best_group}): a gap of {gap.value:.3f} "
                f"[{gap.low:.3f}, {gap.high:.3f}] over {len(self.groups)} groups")
