"""How the weights move: warmup schedules, discriminative (per-group) rates, the learning-rate
finder, and L2-SP (weight decay towards the pretrained weights)."""

from tfxfer.optim.discriminative import (
    DiscriminativeAdam,
    DiscriminativeAdamW,
    DiscriminativeSGD,
    discriminative,
    group_multipliers,
    layerwise_decay,
)
from tfxfer.optim.l2sp import L2SP, attach_l2sp, detach_l2sp, l2sp_drift
from tfxfer.optim.lr_finder import LRFinderResult, lr_find
from tfxfer.optim.schedules import WarmupSchedule

__all__ = [
    "DiscriminativeAdam", "DiscriminativeAdamW", "DiscriminativeSGD", "L2SP", "LRFinderResult", "WarmupSchedule",
    "attach_l2sp", "detach_l2sp", "discriminative", "group_multipliers", "l2sp_drift", "layerwise_decay", "lr_find",
]
