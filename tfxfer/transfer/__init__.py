"""Choose before you train: transferability scores, backbone ranking, a transfer probe and L2-SP.

* Scores from frozen features (numpy/scipy): `logme` (classification and regression),
  `hscore`, `knn` (leave-one-out k-nearest-neighbour accuracy); from a source classifier's
  probabilities: `leep`, `nce`.
* `rank_backbones`: scores beside parameter count, int8 TFLite size and LiteRT latency, a
  budget, and the Pareto front (`Candidate`, `Budget`, `RankingResult`); given ``(texts, labels)``
  it ranks text encoders (`TextCandidate`: a preset directory, ``"all-minilm-l6-v2"``, ``:random``).
* `probe_backbone` / `probe_text` / `probe_features`: is the pretrained backbone better than a
  random-weights (or TF-IDF) control? A verdict with remedies (`ProbeReport`);
  `fine_tune_check_text` is the short fine-tune check `probe_text(..., fine_tune=...)` takes.
* `L2SP` / `attach_l2sp` / `detach_l2sp`: fine-tune with weight decay towards the pretrained
  weights (`tfxfer.train.fine_tune.fine_tune(..., l2sp=0.01)` and the recipe key ``train.l2sp`` do it for you).
  They live in `tfxfer.optim.l2sp` (the training core below this floor uses them); this face
  re-exports them.

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer import logme
    >>> x = np.random.default_rng(0).normal(size=(64, 4))
    >>> logme(x, (x[:, 0] > 0).astype(int)) > -1.0
    True
"""

from tfxfer.optim.l2sp import L2SP, attach_l2sp, detach_l2sp, l2sp_drift
from tfxfer.transfer.candidates import Budget, Candidate
from tfxfer.transfer.logme import logme, logme_per_target
from tfxfer.transfer.probe import (
    ProbeReport,
    fine_tune_check_text,
    linear_probe_accuracy,
    probe_backbone,
    probe_features,
    probe_text,
    tfidf_accuracy,
    verdict_from_accuracies,
)
from tfxfer.transfer.ranking import ADVISORY, RankingResult, pareto_flags, rank_backbones
from tfxfer.transfer.scores import hscore, knn, leep, nce
from tfxfer.transfer.text_candidates import TextCandidate

__all__ = [
    "ADVISORY", "Budget", "Candidate", "L2SP", "ProbeReport", "RankingResult", "attach_l2sp", "detach_l2sp",
    "fine_tune_check_text", "hscore", "knn", "l2sp_drift", "leep", "linear_probe_accuracy", "logme", "logme_per_target",
    "nce", "pareto_flags",
    "probe_backbone", "probe_features", "probe_text", "rank_backbones", "TextCandidate", "tfidf_accuracy",
    "verdict_from_accuracies",
]
