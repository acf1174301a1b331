"""Bias audit: does the model work equally well for every group?

`group_metrics` (from labels and predictions) and `audit_model` (runs the model first) report
accuracy, recall per class, FPR / FNR and ECE per group with bootstrap confidence intervals and the
worst-group gap (`GroupReport`, with ``to_rows`` / ``to_markdown`` for reports).
`group_balanced_weights` gives every group (or group x class cell) equal weight for ``fit``.
Missing group values (None, NaN) form one group, `MISSING_GROUP` ("(missing)"), in both.
`plant_trigger` / `trigger_flip_rate` measure bias transfer (Salman et al. 2022): how often a
trigger learnt in pretraining still flips the fine-tuned model's predictions.

Example:
    >>> import numpy as np
    >>> from tfxfer.fairness import group_metrics
    >>> report = group_metrics([0, 1, 1, 0], [0, 1, 0, 0], ["a", "a", "b", "b"], n_bootstrap=0)
    >>> report.gap("accuracy").value, report.gap("accuracy").worst_group
    (0.5, 'b')
"""

from tfxfer.fairness.bias_transfer import TriggerFlipResult, plant_trigger, trigger_flip_rate
from tfxfer.fairness.group_metrics import LOWER_IS_BETTER, audit_model, group_metrics
from tfxfer.fairness.group_report import GroupGap, GroupReport, MetricValue
from tfxfer.fairness.groups import MISSING_GROUP
from tfxfer.fairness.reweighting import group_balanced_weights

__all__ = ["LOWER_IS_BETTER", "MISSING_GROUP", "GroupGap", "GroupReport", "MetricValue", "TriggerFlipResult",
           "audit_model", "group_balanced_weights", "group_metrics", "plant_trigger", "trigger_flip_rate"]
