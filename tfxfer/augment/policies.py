"""Named augmentation policies and explicit augmentations, built on Keras 3 core layers.

Every function returns fresh Keras layers that expect batched float images in 0-255 (what tfxfer
loaders produce). Apply them with `tfxfer.augment.augment_dataset` in the tf.data training
pipeline, never inside the model you export.

Policies (`list_policies()`):

- ``none``: nothing (digits, text, anything whose label a flip would change).
- ``flips``: horizontal and vertical flips only (images with no up/down or left/right: cells, tiles,
  micrographs, aerial views).
- ``light``: horizontal flip, rotation up to +-0.03 turns (~11 degrees), zoom +-10 %.
- ``medium``: light, plus translation +-10 %, brightness/contrast/saturation jitter and random
  erasing (p = 0.25).
- ``heavy``: horizontal flip, RandAugment (2 ops, magnitude 0.5), random erasing (p = 0.25) and
  CutMix. CutMix mixes labels: the training labels become soft (one-hot mixtures), so compile with
  ``categorical_crossentropy``.

Example:
    >>> from tfxfer import augment
    >>> augment.list_policies()
    ['none', 'flips', 'light', 'medium', 'heavy']
    >>> [type(layer).__name__ for layer in augment.policy("light", seed=0)]
    ['RandomFlip', 'RandomRotation', 'RandomZoom']
"""

from __future__ import annotations

import keras

from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError
from tfxfer.utils.validate import check_float, check_int

_VALUE_RANGE = (0, 255)


def _prob(name, value):
    return check_float(name, value, low=0, high=1)


def _positive(name, value, upper=None):
    return check_float(name, value, low=0, high=upper)


def flip(mode: str = "horizontal", *, seed: int | None = None) -> keras.layers.Layer:
    """Random flips: "horizontal", "vertical" or "horizontal_and_vertical"."""
    modes = ("horizontal", "vertical", "horizontal_and_vertical")
    if mode not in modes:
        raise ArgumentError("mode", mode, "must be one of " + ", ".join(modes))
    return keras.layers.RandomFlip(mode, seed=seed)


def rotation(max_turn: float = 0.05, *, seed: int | None = None) -> keras.layers.Layer:
    """Random rotation by up to ``max_turn`` of a full turn either way (0.05 = 18 degrees)."""
    return keras.layers.RandomRotation(_positive("max_turn", max_turn, 0.5), fill_mode="reflect", seed=seed)


def zoom(max_zoom: float = 0.1, *, seed: int | None = None) -> keras.layers.Layer:
    """Random zoom in or out by up to ``max_zoom`` (0.1 = +-10 %), same factor for both axes."""
    f = _positive("max_zoom", max_zoom, 0.9)
    return keras.layers.RandomZoom((-f, f), width_factor=None, fill_mode="reflect", seed=seed)


def translation(max_shift: float = 0.1, *, seed: int | None = None) -> keras.layers.Layer:
    """Random shift by up to ``max_shift`` of the height and width."""
    f = _positive("max_shift", max_shift, 1.0)
    return keras.layers.RandomTranslation(f, f, fill_mode="reflect", seed=seed)


def color_jitter(*, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
                 hue: float = 0.0, seed: int | None = None) -> keras.layers.Layer:
    """Random brightness/contrast (+-fraction), saturation (+-fraction of neutral) and hue shift.

    Each argument 0 disables that jitter.
    """
    b = _positive("brightness", brightness, 1.0)
    c = _positive("contrast", contrast, 1.0)
    s = _positive("saturation", saturation, 0.5)
    h = _positive("hue", hue, 1.0)
    return keras.layers.RandomColorJitter(
        value_range=_VALUE_RANGE,
        brightness_factor=b or None,
        contrast_factor=c or None,
        saturation_factor=(0.5 - s, 0.5 + s) if s else None,
        hue_factor=h or None,
        seed=seed,
    )


def rand_augment(*, num_ops: int = 2, magnitude: float = 0.5, seed: int | None = None) -> keras.layers.Layer:
    """RandAugment (Cubuk et al. 2020): ``num_ops`` random operations of strength ``magnitude``."""
    num_ops = check_int("num_ops", num_ops, low=1)
    return keras.layers.RandAugment(value_range=_VALUE_RANGE, num_ops=num_ops,
                                    factor=_positive("magnitude", magnitude, 1.0), seed=seed)


def random_erasing(probability: float = 0.25, *, scale: tuple = (0.02, 0.33),
                   seed: int | None = None) -> keras.layers.Layer:
    """Erase a random rectangle (filled with noise) with the given probability (Zhong et al. 2017);
    ``scale`` is the (low, high) share of the image the rectangle covers, 0 < low <= high <= 1."""
    p = _prob("probability", probability)
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        raise ArgumentTypeError("scale", scale, "a (low, high) pair of shares of the image")
    low, high = (check_float("scale", v, low=0, high=1, low_open=True) for v in scale)
    if low > high:
        raise ArgumentError("scale", tuple(scale), "must be (low, high) with low <= high")
    return keras.layers.RandomErasing(factor=(p, p), scale=(low, high), value_range=_VALUE_RANGE, seed=seed)


def mixup(alpha: float = 0.2, *, seed: int | None = None) -> keras.layers.Layer:
    """MixUp (Zhang et al. 2018): blend image pairs and their labels; labels become soft."""
    alpha = check_float("alpha", alpha, low=0, low_open=True)
    return keras.layers.MixUp(alpha=alpha, seed=seed)


def cutmix(alpha: float = 1.0, *, seed: int | None = None) -> keras.layers.Layer:
    """CutMix (Yun et al. 2019): paste a patch from another image; labels mix by patch area."""
    alpha = check_float("alpha", alpha, low=0, low_open=True)
    return keras.layers.CutMix(factor=alpha, seed=seed)


def _seeds(seed, n):
    """Distinct seeds per layer, so that layers do not draw correlated random numbers."""
    if seed is None:
        return [None] * n
    seed = check_int("seed", seed, low=None)
    return [seed + 1000 * i for i in range(n)]


def _light(seed):
    s = _seeds(seed, 3)
    return [flip("horizontal", seed=s[0]), rotation(0.03, seed=s[1]), zoom(0.1, seed=s[2])]


def _medium(seed):
    s = _seeds(seed, 6)
    return [flip("horizontal", seed=s[0]), rotation(0.03, seed=s[1]), zoom(0.1, seed=s[2]),
            translation(0.1, seed=s[3]), color_jitter(seed=s[4]), random_erasing(0.25, seed=s[5])]


def _heavy(seed):
    s = _seeds(seed, 4)
    return [flip("horizontal", seed=s[0]), rand_augment(num_ops=2, magnitude=0.5, seed=s[1]),
            random_erasing(0.25, seed=s[2]), cutmix(1.0, seed=s[3])]


def _flips(seed):
    return [flip("horizontal_and_vertical", seed=seed)]


_POLICIES = {"none": lambda seed: [], "flips": _flips, "light": _light, "medium": _medium, "heavy": _heavy}


def list_policies() -> list[str]:
    """Names of the built-in policies, weakest first."""
    return list(_POLICIES)


def policy(name: str, *, seed: int | None = None) -> list[keras.layers.Layer]:
    """Fresh layers for a named policy (see the module docstring for what each holds)."""
    if not isinstance(name, str):
        raise ArgumentTypeError("name", name, "a policy name (str)")
    key = name.strip().lower()
    if key not in _POLICIES:
        raise UnknownNameError("augmentation policy", name, _POLICIES)
    return _POLICIES[key](seed)
