"""`lr_find`: the learning-rate range test (exponential ramp, smoothed loss, a suggestion).

The model's weights and optimizer are restored afterwards, so the test leaves no trace: an optimizer
that was never built is built first, and its slots (Adam's moments) and step count are put back to
their starting values (zero), not left holding the ramp's gradients.

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

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError
from tfxfer.utils.validate import check_float, check_int


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
        min_lr, max_lr: range of the exponential ramp (finite, 0 < min_lr < max_lr).
        steps: number of training steps in the ramp (an int >= 5).
        batch_size: batch size for ``(x, y)`` arrays (an int >= 1).
        smoothing: exponential smoothing of the loss curve, in [0, 1) (0 = none).
        diverge_factor: stop once the loss exceeds this multiple (> 1) of the best loss.

    Returns:
        `LRFinderResult`; ``suggestion`` is the rate at the steepest descent of the smoothed loss.
    """
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ModelError("lr_find needs a compiled model (call model.compile first)")
    if isinstance(model.optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        raise ArgumentError("model.optimizer.learning_rate", model.optimizer._learning_rate,
                            "must be a constant for lr_find, not a schedule")
    min_lr = check_float("min_lr", min_lr, low=0, low_open=True)
    max_lr = check_float("max_lr", max_lr, low=0, low_open=True)
    if min_lr >= max_lr:
        raise ArgumentError("min_lr", min_lr, f"must be < max_lr={max_lr}")
    steps = check_int("steps", steps, low=5)
    batch_size = check_int("batch_size", batch_size, low=1)
    smoothing = check_float("smoothing", smoothing, low=0, high=1, high_open=True)
    diverge_factor = check_float("diverge_factor", diverge_factor, low=1, low_open=True)
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        ds = data.repeat()
    else:
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ArgumentTypeError("data", data, "an (x, y) pair of arrays or a tf.data.Dataset of batches")
        x, y = data
        if len(x) != len(y) or len(y) == 0:
            raise DataError(f"`data` has {len(x)} inputs but {len(y)} targets; lr_find needs one target per input "
                            "and at least one example")
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(y), seed=0).repeat().batch(batch_size)
    lrs = list(np.geomspace(min_lr, max_lr, steps))
    if not model.optimizer.built:  # build it now, so the snapshot holds its (zero) slots and iterations
        model.optimizer.build(model.trainable_variables)
    weights = model.get_weights()
    old_lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    opt_vars = [(v, v.numpy()) for v in model.optimizer.variables]
    ramp = _Ramp(lrs, diverge_factor)
    try:
        model.fit(ds, steps_per_epoch=steps, epochs=1, callbacks=[ramp], verbose=0, shuffle=False)
    finally:
        model.set_weights(weights)
        for var, value in opt_vars:
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
