"""Freezing: freeze/unfreeze by group, BatchNorm policy, staged unfreezing during fit.

The layer groups themselves belong to the model (`tfxfer.backbones.layer_groups`); this face
re-exports them because freezing is where users reach for them.
"""

from tfxfer.backbones.groups import HEAD, group_names, layer_groups
from tfxfer.freezing.freeze import (
    BN_POLICIES,
    TrainableSummary,
    freeze_backbone,
    trainable_summary,
    unfreeze,
    unfreeze_all,
)
from tfxfer.freezing.gradual import GradualUnfreezing

__all__ = [
    "BN_POLICIES", "HEAD", "GradualUnfreezing", "TrainableSummary", "freeze_backbone", "group_names",
    "layer_groups", "trainable_summary", "unfreeze", "unfreeze_all",
]
