"""Freezing: layer groups, freeze/unfreeze, BatchNorm policy, staged unfreezing during fit."""

from tfxfer.freezing.freeze import (
    BN_POLICIES,
    TrainableSummary,
    freeze_backbone,
    trainable_summary,
    unfreeze,
    unfreeze_all,
)
from tfxfer.freezing.gradual import GradualUnfreezing
from tfxfer.freezing.groups import HEAD, group_names, layer_groups

__all__ = [
    "BN_POLICIES", "HEAD", "GradualUnfreezing", "TrainableSummary", "freeze_backbone", "group_names",
    "layer_groups", "trainable_summary", "unfreeze", "unfreeze_all",
]
