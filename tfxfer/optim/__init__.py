"""Learning rates: warmup schedules, discriminative (per-group) rates, the learning-rate finder."""

from tfxfer.optim.discriminative import (
    DiscriminativeAdam,
    DiscriminativeAdamW,
    DiscriminativeSGD,
    discriminative,
    group_multipliers,
    layerwise_decay,
)
from tfxfer.optim.lr_finder import LRFinderResult, lr_find
from tfxfer.optim.schedules import WarmupSchedule

__all__ = [
    "DiscriminativeAdam", "DiscriminativeAdamW", "DiscriminativeSGD", "LRFinderResult", "WarmupSchedule",
    "discriminative", "group_multipliers", "layerwise_decay", "lr_find",
]
