"""`lr_find`: the learning-rate range test (exponential ramp, smoothed loss, a suggestion).

The model's weights and optimizer are restored afterwards, so the test leaves no trace.

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.optim import lr_find
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> x = np.random.rand(64, 32, 32, 3) * 255; y = np.arange(64) % 2
    >>> result = lr_find(model, (x, y), steps=20, batch_size=8)
    >>> 1e-7 <= result.suggestion <= 1.0
    True
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from tfxfer.errors import ArgumentError, ModelError


@dataclasses.dataclass
class LRFinderResult:
    """The curve (``learning_rates``, smoothed ``losses``) and the ``suggestion``."""

    learning_rates: list[float]
    losses: list[float]
    suggestion: float

    def plot(self, path: str | None = None):
        """Plot loss vs learning rate (log x); save to ``path`` if given. Returns the figure."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(self.learning_rates, self.losses)
        ax.axvline(self.suggestion, color="tab:red", linestyle="--", label=f"suggestion {self.suggestion:.2e}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (smoothed)")
        ax.legend()
        fig.tight_layout()
        if path:
            fig.savefig(path, dpi=100)
        return fig


class _Ramp(keras.callbacks.Callback):
    def __init__(self, lrs, diverge_factor):
        super().__init__()
        self.lrs = lrs
        self.diverge_factor = diverge_factor
        self.raw = []

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = self.lrs[min(len(self.raw), len(self.lrs) - 1)]

    def on_train_batch_end(self, batch, logs=None):
        loss = float(logs["loss"])
        self.raw.append(loss)
        best = min(self.raw)
        if not math.isfinite(loss) or (len(self.raw) > 5 and loss > self.diverge_factor * best):
            self.model.stop_training = True
        if len(self.raw) >= len(self.lrs):
            self.model.stop_training = True


def lr_find(
    model: keras.Model,
    data,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    steps: int = 100,
    batch_size: int = 32,
    smoothing: float = 0.9,
    diverge_factor: float = 4.0,
) -> LRFinderResult:
    """Run the learning-rate range test on a compiled model.

    Args:
        model: a compiled model whose optimizer uses a constant (not scheduled) learning rate.
        data: ``(x, y)`` arrays or a ``tf.data.Dataset`` of batches (repeated as needed).
        min_lr, max_lr: range of the exponential ramp.
        steps: number of training steps in the ramp.
        smoothing: exponential smoothing of the loss curve (0 = none).
        diverge_factor: stop once the loss exceeds this multiple of the best loss.

    Returns:
        `LRFinderResult`; ``suggestion`` is the rate at the steepest descent of the smoothed loss.
    """
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ModelError("lr_find needs a compiled model (call model.compile first)")
    if isinstance(model.optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        raise ArgumentError("model.optimizer.learning_rate", model.optimizer._learning_rate,
                            "must be a constant for lr_find, not a schedule")
    if not 0 < min_lr < max_lr:
        raise ArgumentError("min_lr", min_lr, f"must be > 0 and < max_lr={max_lr}")
    if int(steps) < 5:
        raise ArgumentError("steps", steps, "must be >= 5")
    if not 0 <= smoothing < 1:
        raise ArgumentError("smoothing", smoothing, "must be in [0, 1)")
    steps = int(steps)
    lrs = list(np.geomspace(min_lr, max_lr, steps))
    weights = model.get_weights()
    old_lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    opt_vars = [v.numpy() for v in model.optimizer.variables]
    ramp = _Ramp(lrs, diverge_factor)
    try:
        import tensorflow as tf

        if isinstance(data, tf.data.Dataset):
            ds = data.repeat()
        else:
            x, y = data
            ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=0).repeat().batch(batch_size)
        model.fit(ds, steps_per_epoch=steps, epochs=1, callbacks=[ramp], verbose=0)
    finally:
        model.set_weights(weights)
        for var, value in zip(model.optimizer.variables, opt_vars):
            if tuple(var.shape) == value.shape:
                var.assign(value)
        model.optimizer.learning_rate = old_lr
    raw = ramp.raw
    smoothed, avg = [], 0.0
    for i, loss in enumerate(raw):
        avg = smoothing * avg + (1 - smoothing) * loss
        smoothed.append(avg / (1 - smoothing ** (i + 1)))
    used = lrs[: len(smoothed)]
    finite = [(lr, l) for lr, l in zip(used, smoothed) if math.isfinite(l)]
    if len(finite) < 3:
        return LRFinderResult(used, smoothed, suggestion=float(min_lr))
    lr_arr = np.log10([f[0] for f in finite])
    loss_arr = np.array([f[1] for f in finite])
    grads = np.gradient(loss_arr, lr_arr)
    cut = max(1, int(np.argmin(loss_arr)))  # steepest descent before the minimum
    suggestion = float(10 ** lr_arr[int(np.argmin(grads[: cut + 1]))])
    return LRFinderResult(used, smoothed, suggestion)
