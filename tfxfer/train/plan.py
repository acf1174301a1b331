"""The defaults `fine_tune` picks when an argument is left at None: the rule, from the data size and the model.

=====================  =======================================  =====================================
setting                images (CNN backbones)                    text encoders
=====================  =======================================  =====================================
head_epochs            30 on cached features (the best val       30 on cached embeddings, same rule
                       epoch is kept and the step stops after
                       5 epochs without improvement); 3 when
                       the backbone runs every epoch
epochs (unfreezing)    ``clamp(round(8000 / n), 2, 5)``: about   ``clamp(round(16000 / n), 2, 4)``
                       8,000 example-passes, 2 to 5 epochs
stages                 one stage: the top ``depth`` groups       one stage: the whole encoder
                       together (warmup, then cosine decay)       (warmup, then linear decay)
depth                  2 groups below 1,000 examples, 3 below    every group
                       20,000, else 4 (more data, more layers
                       can move without over-fitting)
base_lr                1e-3 (head, Adam)                         1e-3 (head, Adam)
unfreeze_lr_factor     0.1 (peak 1e-4: the Keras guide's rate);   0.1 (peak 1e-4: measured above 5e-5
                       0.2 for small inputs (side <= 64 px)      for MiniLM on the movie snippets)
layer_decay            0.8 per group below the head; 1.0 (no     0.9 per layer below the head
                       decay) for small inputs (side <= 64 px)
warmup                 10 % of each stage, then decay to 0       10 % of each stage, then decay to 0
=====================  =======================================  =====================================

``n`` is the number of training examples (for a ``tf.data`` input, counted once). A value passed
explicitly always wins; `FineTuneResult.settings` records what was used.

Small inputs: ImageNet features are learned at ~224 px; at 64 px or less (digits, sketches, thumbnails)
the frozen features are weak (Animal-MNIST at 32 px: 0.72 validation accuracy head-only, 0.84 after
fine-tuning), so the unfrozen blocks must move more: a twice higher peak and the same rate in every
unfrozen group. Measured in ``benchmarks/results/vs_hand_written.json`` ("experiments" and the 32 px rows).

Example:
    >>> from tfxfer.train.plan import auto_plan
    >>> auto_plan(n=1890, text=False, groups=8, cached=True)["epochs"]
    4
    >>> auto_plan(n=1000, text=False, groups=8, cached=True, image_size=32)["layer_decay"]
    1.0
"""

from __future__ import annotations

HEAD_PATIENCE = 5

#: Inputs whose shorter side is at most this many pixels count as small (see above).
SMALL_INPUT = 64


def _clamp(value: float, low: int, high: int) -> int:
    return int(min(high, max(low, round(value))))


def auto_plan(*, n: int | None, text: bool, groups: int, cached: bool, image_size: int | None = None) -> dict:
    """The defaults of the table above for ``n`` training examples, ``groups`` backbone groups and
    images whose shorter side is ``image_size`` pixels (None: not small)."""
    n = int(n) if n else 2000
    if text:
        return {"head_epochs": 30 if cached else 3, "epochs": _clamp(16000 / n, 2, 4), "stages": {0: groups},
                "base_lr": 1e-3, "unfreeze_lr_factor": 0.1, "layer_decay": 0.9, "warmup_share": 0.1}
    depth = min(groups, 2 if n < 1000 else 3 if n < 20000 else 4)
    small = image_size is not None and image_size <= SMALL_INPUT
    return {"head_epochs": 30 if cached else 3, "epochs": _clamp(8000 / n, 2, 5), "stages": {0: depth},
            "base_lr": 1e-3, "unfreeze_lr_factor": 0.2 if small else 0.1, "layer_decay": 1.0 if small else 0.8,
            "warmup_share": 0.1}
