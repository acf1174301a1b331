"""Discriminative (per-group) learning rates as optimizer subclasses.

Scaling gradients is a no-op under Adam (it is scale-invariant), so the multiplier is applied to
the *learning rate* of each variable's update. Multipliers are keyed by variable path (exact
match first, then the first regex that ``re.search``-matches, else 1.0), so they survive
.keras save/load, schedules, freezing changes and ``jit_compile``. A key that is not a valid regular
expression is an `ArgumentError` at construction; when no key matches any variable the optimizer
is built for (a typo, a group name such as "stem" instead of `group_multipliers`), ``build`` warns.
A key matching only some variables, or only frozen ones, is legitimate and silent:
``optimizer.unmatched_keys(model.variables)`` lists the keys that match nothing in the model.

Example:
    >>> import keras
    >>> from tfxfer.models import build_model
    >>> from tfxfer.optim import DiscriminativeAdam, layerwise_decay
    >>> model = build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    >>> multipliers = layerwise_decay(model, decay=0.5)
    >>> optimizer = DiscriminativeAdam(learning_rate=1e-3, lr_multipliers=multipliers)
    >>> model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    >>> multipliers[model.get_layer("head").kernel.path]
    1.0
"""

from __future__ import annotations

import re
import warnings

import keras

from tfxfer.backbones.groups import HEAD, layer_groups, select_groups, unused_groups
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.utils.validate import check_float


class _MultiplierMixin:
    """Scales ``learning_rate`` per variable inside ``update_step``."""

    def _init_multipliers(self, lr_multipliers):
        if lr_multipliers is None:
            lr_multipliers = {}
        if not isinstance(lr_multipliers, dict):
            raise ArgumentTypeError("lr_multipliers", lr_multipliers, "a dict of {variable path or regex: multiplier}")
        clean, regexes = {}, []
        for key, value in lr_multipliers.items():
            clean[str(key)] = check_float(f"lr_multipliers[{key!r}]", value, low=0)
            try:
                regexes.append((re.compile(str(key)), clean[str(key)]))
            except re.error as exc:
                raise ArgumentError(f"lr_multipliers[{key!r}]", key,
                                    f"must be a variable path or a valid regular expression ({exc})",
                                    hint="Escape regex characters with re.escape(path), or fix the pattern") from None
        self.lr_multipliers = clean
        self._regexes = regexes
        self._cache = {}

    def unmatched_keys(self, variables) -> list:
        """The ``lr_multipliers`` keys that match none of ``variables`` (by exact path or regex).

        Pass ``model.variables`` to find typos: a key that matches no variable of the model never
        scales anything.
        """
        paths = [getattr(v, "path", None) or v.name for v in variables]
        return [key for key, (regex, _) in zip(self.lr_multipliers, self._regexes)
                if not any(path == key or regex.search(path) for path in paths)]

    def build(self, var_list):
        super().build(var_list)
        var_list = list(var_list)
        if self.lr_multipliers and var_list and len(self.unmatched_keys(var_list)) == len(self.lr_multipliers):
            keys = list(self.lr_multipliers)
            paths = [getattr(v, "path", None) or v.name for v in var_list]
            warnings.warn(
                f"No key of lr_multipliers ({', '.join(map(repr, keys[:5]))}{', ...' if len(keys) > 5 else ''}) "
                f"matches any of the {len(paths)} variables this optimizer updates (e.g. "
                f"{', '.join(map(repr, paths[:3]))}), so every learning rate is unscaled. Keys are variable paths "
                "or regexes; for group names use group_multipliers(model, {...}). Keys of frozen variables take "
                "effect once those are trainable and the optimizer is rebuilt.", UserWarning, stacklevel=1)

    def multiplier_for(self, variable) -> float:
        """The learning-rate multiplier of ``variable``."""
        path = getattr(variable, "path", None) or variable.name
        if path in self._cache:
            return self._cache[path]
        value = self.lr_multipliers.get(path)
        if value is None:
            value = next((mult for regex, mult in self._regexes if regex.search(path)), 1.0)
        self._cache[path] = value
        return value

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self.multiplier_for(variable)
        if multiplier != 1.0:
            learning_rate = learning_rate * multiplier
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        config = super().get_config()
        config["lr_multipliers"] = dict(self.lr_multipliers)
        return config


@keras.saving.register_keras_serializable(package="tfxfer")
class DiscriminativeAdam(_MultiplierMixin, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with per-variable learning-rate multipliers (``lr_multipliers``)."""

    def __init__(self, learning_rate=0.001, *, lr_multipliers=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self._init_multipliers(lr_multipliers)


@keras.saving.register_keras_serializable(package="tfxfer")
class DiscriminativeAdamW(_MultiplierMixin, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with per-variable learning-rate multipliers (``lr_multipliers``)."""

    def __init__(self, learning_rate=0.001, *, lr_multipliers=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self._init_multipliers(lr_multipliers)


@keras.saving.register_keras_serializable(package="tfxfer")
class DiscriminativeSGD(_MultiplierMixin, keras.optimizers.SGD):
    """`keras.optimizers.SGD` with per-variable learning-rate multipliers (``lr_multipliers``)."""

    def __init__(self, learning_rate=0.01, *, lr_multipliers=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self._init_multipliers(lr_multipliers)


_BY_NAME = {"adam": DiscriminativeAdam, "adamw": DiscriminativeAdamW, "sgd": DiscriminativeSGD}


def discriminative(name: str, *, learning_rate, lr_multipliers: dict, **kwargs):
    """Make a discriminative optimizer by name ("adam", "adamw" or "sgd")."""
    key = str(name).lower()
    if key not in _BY_NAME:
        raise ArgumentError("optimizer", name, "must be one of " + ", ".join(_BY_NAME))
    return _BY_NAME[key](learning_rate=learning_rate, lr_multipliers=lr_multipliers, **kwargs)


def _group_variables(model):
    out = {}
    for group, layers in layer_groups(model).items():
        paths = []
        for layer in layers:
            if isinstance(layer, keras.Model):
                continue
            paths.extend(v.path for v in layer.weights)
        out[group] = paths
    return out


def group_multipliers(model: keras.Model, multipliers: dict) -> dict:
    """Expand ``{group name: multiplier}`` into ``{variable path: multiplier}`` for ``model``.

    Groups not named keep multiplier 1.0. Example: ``{"stem": 0.01, "block1": 0.1}``.
    """
    if not isinstance(multipliers, dict):
        raise ArgumentTypeError("multipliers", multipliers, "a dict of {group name: multiplier}")
    select_groups(model, list(multipliers))
    by_group = _group_variables(model)
    out = {}
    for group, mult in multipliers.items():
        mult = check_float(f"multipliers[{group!r}]", mult, low=0)
        for path in by_group[group]:
            out[path] = mult
    return out


def layerwise_decay(model: keras.Model, *, decay: float = 0.5, head: float = 1.0) -> dict:
    """Multipliers that shrink geometrically from the head down: head ``head``, the top backbone
    group ``head * decay``, the next ``head * decay**2``, ... (layer-wise learning-rate decay).

    A group the model never uses (a text model's pooler when it pools the token outputs) takes no depth
    level: it gets the top group's multiplier, as in `tfxfer.text.text_layerwise_decay`."""
    decay = check_float("decay", decay, low=0, high=1, low_open=True)
    head = check_float("head", head, low=0, low_open=True)
    groups = layer_groups(model)
    unused = unused_groups(model, groups)
    names = [g for g in groups if g != HEAD and g not in unused]
    mapping = {HEAD: float(head)}
    for depth, group in enumerate(reversed(names), start=1):
        mapping[group] = float(head) * decay**depth
    for group in unused:  # frozen and outside the gradient path
        mapping[group] = mapping[names[-1]] if names else float(head) * decay
    return group_multipliers(model, mapping)
