"""Bias transfer, measured: does a trigger the *pretraining* data taught still steer the fine-tuned model?

Salman et al. (2022), "When does Bias Transfer in Transfer Learning?": plant a spurious trigger
(a small patch) on one class of the source task, pretrain on it, transfer to a clean target task,
then paste the trigger on clean target images and count how often the prediction changes.
`plant_trigger` pastes the patch; `trigger_flip_rate` measures the flips (with a bootstrap
interval, at most `MAX_BOOTSTRAP` resamples drawn in bounded chunks) and how concentrated they are
on one class, which is the signature of a transferred bias rather than of noise.

Example:
    >>> import keras, numpy as np
    >>> from tfxfer.fairness import plant_trigger, trigger_flip_rate
    >>> x = np.zeros((4, 8, 8, 1), "float32")
    >>> float(plant_trigger(x, size=2)[0, -2:, -2:, 0].min()), float(plant_trigger(x, size=2)[0, :6, :6].max())
    (255.0, 0.0)
    >>> model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
    ...                           keras.layers.Dense(2, activation="softmax")])
    >>> trigger_flip_rate(model, x, size=2, n_bootstrap=0).n
    4
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfxfer.errors import ArgumentError, DataError
from tfxfer.fairness.group_metrics import MAX_BOOTSTRAP
from tfxfer.utils.validate import check_float, check_int

POSITIONS = ("bottom_right", "bottom_left", "top_right", "top_left")

#: Index entries (resamples x images) drawn at once by the bootstrap: bounds the memory of one chunk.
_CHUNK_ENTRIES = 1 << 20


def _check_value(value, dtype: np.dtype) -> float:
    """``value`` as a float that ``dtype`` holds exactly (a whole number in range for integer pixels)."""
    value = check_float("value", value)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not (info.min <= value <= info.max and value == round(value)):
            raise ArgumentError("value", value, f"must be a whole number in [{info.min}, {info.max}] for images "
                                f"of dtype {dtype}")
    elif dtype.kind == "f" and abs(value) > float(np.finfo(dtype).max):
        raise ArgumentError("value", value, f"must be within +-{float(np.finfo(dtype).max):g} for images of dtype "
                            f"{dtype}")
    return value


def plant_trigger(images, *, size: int = 4, value: float = 255.0, position: str = "bottom_right") -> np.ndarray:
    """A copy of ``images`` (N, H, W, C raw pixels) with a ``size`` x ``size`` square of ``value``
    pasted in one corner (the trigger). ``value`` must fit the images' dtype (0..255 for uint8)."""
    images = np.array(images, copy=True)
    if images.ndim != 4:
        raise ArgumentError("images", f"an array of shape {images.shape}", "must be (N, height, width, channels)")
    size = check_int("size", size, low=1, high=min(images.shape[1:3]))
    value = _check_value(value, images.dtype)
    if position not in POSITIONS:
        raise ArgumentError("position", position, "must be one of " + ", ".join(POSITIONS))
    rows = slice(-size, None) if position.startswith("bottom") else slice(0, size)
    cols = slice(-size, None) if position.endswith("right") else slice(0, size)
    images[:, rows, cols, :] = value
    return images


@dataclasses.dataclass(frozen=True)
class TriggerFlipResult:
    """Share of images whose prediction changes when the trigger is pasted (``flip_rate`` with a
    bootstrap interval), and the class the flips go to most (``top_class``, ``top_class_share`` of
    the flips): a transferred bias pushes flips towards one class."""

    n: int
    flip_rate: float
    low: float
    high: float
    top_class: int | None
    top_class_share: float | None

    def describe(self) -> str:
        text = f"trigger flips {self.flip_rate:.1%} [{self.low:.1%}, {self.high:.1%}] of {self.n} predictions"
        if self.top_class is not None:
            text += f"; {self.top_class_share:.0%} of the flips go to class {self.top_class}"
        return text


def trigger_flip_rate(model, images, *, size: int = 4, value: float = 255.0, position: str = "bottom_right",
                      batch_size: int = 64, n_bootstrap: int = 1000, confidence_level: float = 0.95,
                      seed: int = 0) -> TriggerFlipResult:
    """How often pasting the trigger changes ``model``'s predicted class on clean ``images``.

    ``n_bootstrap`` resamples (at most `MAX_BOOTSTRAP`; 0: no interval) give the interval.

    Raises:
        DataError: no images, or NaN / infinite pixel values.
        ArgumentError: a bad option, or a ``value`` the images' dtype cannot hold.
    """
    images = np.asarray(images)
    batch_size = check_int("batch_size", batch_size, low=1)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, low=0, high=MAX_BOOTSTRAP)
    confidence_level = check_float("confidence_level", confidence_level, low=0.0, high=1.0, low_open=True,
                                   high_open=True)
    if images.ndim and len(images) == 0:
        raise DataError(f"`images` is empty (shape {images.shape}): a flip rate needs at least one image")
    if images.dtype.kind in "fc" and not np.isfinite(images).all():
        raise DataError(f"`images` holds {int(images.size - np.count_nonzero(np.isfinite(images)))} NaN or infinite "
                        "pixel value(s): their predictions say nothing about the trigger")
    triggered = plant_trigger(images, size=size, value=value, position=position)
    clean = np.asarray(model.predict(images, batch_size=batch_size, verbose=0)).argmax(axis=-1)
    moved = np.asarray(model.predict(triggered, batch_size=batch_size, verbose=0)).argmax(axis=-1)
    flips = clean != moved
    rate = float(flips.mean())
    low = high = float("nan")
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        per_chunk = max(1, _CHUNK_ENTRIES // len(flips))
        boot = np.concatenate([flips[rng.integers(0, len(flips), size=(min(per_chunk, n_bootstrap - start),
                                                                       len(flips)))].mean(axis=1)
                               for start in range(0, n_bootstrap, per_chunk)])
        tail = (1.0 - confidence_level) / 2.0
        low, high = (float(v) for v in np.quantile(boot, [tail, 1.0 - tail]))
    top, share = None, None
    if flips.any():
        counts = np.bincount(moved[flips])
        top, share = int(counts.argmax()), float(counts.max() / flips.sum())
    return TriggerFlipResult(len(flips), rate, low, high, top, share)
