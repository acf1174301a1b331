"""Freeze and unfreeze a transfer model by group, name, regex or fraction; BatchNorm policy.

The default BatchNorm policy is "frozen": every BatchNormalization layer stays non-trainable, and a
non-trainable BatchNormalization runs in inference mode in Keras 3, so its moving statistics never
change while the convolutions around it fine-tune (the pattern ``base(x, training=False)`` from
the Keras guide does not survive unfreezing; see DESIGN.md point 5).

Example:
    >>> from tfxfer.models import build_model
    >>> from tfxfer.freezing import unfreeze
    >>> model = build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    >>> summary = unfreeze(model, top_groups=2)
    >>> summary.trainable_groups
    ['block13_16', 'top', 'head']
"""

from __future__ import annotations

import dataclasses
import re

import keras

from tfxfer.backbones.groups import HEAD, get_backbone, layer_groups, select_groups, unused_groups
from tfxfer.errors import ArgumentError, UnknownNameError
from tfxfer.utils.validate import check_float, check_int

BN_POLICIES = ("frozen", "train")


def _is_batchnorm(layer) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _check_bn_policy(bn_policy: str) -> None:
    if bn_policy not in BN_POLICIES:
        raise ArgumentError("bn_policy", bn_policy, "must be 'frozen' or 'train'")


def _count(weights) -> int:
    return int(sum(int(w.numpy().size) if hasattr(w, "numpy") else 0 for w in weights))


@dataclasses.dataclass
class TrainableSummary:
    """What is trainable, per group. ``str(summary)`` prints a table."""

    rows: list[dict]

    @property
    def trainable_groups(self) -> list[str]:
        return [r["group"] for r in self.rows if r["trainable_params"] > 0]

    @property
    def trainable_params(self) -> int:
        return sum(r["trainable_params"] for r in self.rows)

    @property
    def frozen_params(self) -> int:
        return sum(r["frozen_params"] for r in self.rows)

    def __str__(self) -> str:
        lines = [f"{'group':<16}{'layers':>8}{'trainable':>14}{'frozen':>14}"]
        for r in self.rows:
            lines.append(f"{r['group']:<16}{r['layers']:>8}{r['trainable_params']:>14,}{r['frozen_params']:>14,}")
        lines.append(f"{'total':<16}{'':>8}{self.trainable_params:>14,}{self.frozen_params:>14,}")
        return "\n".join(lines)


def trainable_summary(model: keras.Model) -> TrainableSummary:
    """Per-group counts of trainable and frozen parameters (BN moving statistics count as frozen)."""
    rows = []
    for group, layers in layer_groups(model).items():
        trainable = frozen = 0
        for layer in layers:
            if isinstance(layer, keras.Model):
                continue
            effective = layer.trainable and _ancestors_trainable(model, layer)
            for v in layer.weights:
                n = int(v.numpy().size)
                if effective and v.trainable:
                    trainable += n
                else:
                    frozen += n
        rows.append({"group": group, "layers": len(layers), "trainable_params": trainable, "frozen_params": frozen})
    return TrainableSummary(rows)


def _ancestors_trainable(model, layer) -> bool:
    backbone = get_backbone(model)
    if any(layer is l for l in backbone.layers):
        return backbone.trainable and model.trainable
    return model.trainable


def _apply(model: keras.Model, selected: set, bn_policy: str) -> TrainableSummary:
    """Make exactly the backbone layers in ``selected`` (by id) plus the head trainable; a group the
    model never uses (`tfxfer.backbones.groups.unused_groups`: a text model's unused pooler) stays frozen."""
    _check_bn_policy(bn_policy)
    backbone = get_backbone(model)
    model.trainable = True
    for layer in model.layers:  # Functional models do not always propagate `trainable` to nested models
        layer.trainable = True
    groups = layer_groups(model)
    selected = selected - {id(layer) for g in unused_groups(model, groups) for layer in groups[g]}
    if not selected:
        backbone.trainable = False
    else:
        for group, layers in groups.items():
            if group == HEAD:
                continue
            for layer in layers:
                if layer is backbone:
                    continue
                layer.trainable = id(layer) in selected
    if bn_policy == "frozen":
        for layer in backbone.layers:
            if _is_batchnorm(layer):
                layer.trainable = False
    for layer in groups[HEAD]:
        layer.trainable = True
    return trainable_summary(model)


def freeze_backbone(model: keras.Model, *, bn_policy: str = "frozen") -> TrainableSummary:
    """Freeze every backbone layer; only the head trains (feature extraction)."""
    return _apply(model, set(), bn_policy)


def unfreeze(
    model: keras.Model,
    *,
    top_groups: int | None = None,
    groups=None,
    names=None,
    pattern: str | None = None,
    fraction: float | None = None,
    bn_policy: str = "frozen",
) -> TrainableSummary:
    """Set which backbone layers train (the head always does). Give exactly one selector.

    A group the model never uses (a text model's pooler when it pools the token outputs) stays frozen
    whichever selector names it: it would get no gradient.

    Args:
        top_groups: unfreeze the top N backbone groups (0 = head only; an unused group counts but stays frozen).
        groups: group names to unfreeze (see `tfxfer.freezing.group_names`).
        names: backbone layer names to unfreeze.
        pattern: regex; backbone layers whose name matches (``re.search``) are unfrozen.
        fraction: unfreeze the top fraction (0..1] of backbone layers, by layer count.
        bn_policy: "frozen" keeps BatchNorm in inference mode (default); "train" lets unfrozen
            BatchNorm layers update their statistics.

    Returns:
        A `TrainableSummary` of the new state. The change takes effect in an already-compiled
        model only after the train function is rebuilt: use `GradualUnfreezing` during ``fit``,
        or recompile with a fresh optimizer between fits.
    """
    given = {k: v for k, v in dict(top_groups=top_groups, groups=groups, names=names, pattern=pattern,
                                   fraction=fraction).items() if v is not None}
    if len(given) != 1:
        raise ArgumentError(
            "top_groups/groups/names/pattern/fraction", sorted(given), "must be given exactly one at a time"
        )
    all_groups = layer_groups(model)
    backbone_groups = [g for g in all_groups if g != HEAD]
    backbone = get_backbone(model)
    backbone_layers = [l for g in backbone_groups for l in all_groups[g] if any(l is b for b in backbone.layers)]
    if top_groups is not None:
        top_groups = check_int("top_groups", top_groups, low=0, high=len(backbone_groups))
        chosen = backbone_groups[len(backbone_groups) - top_groups :] if top_groups else []
        selected = {id(l) for g in chosen for l in all_groups[g]}
    elif groups is not None:
        if isinstance(groups, str):
            groups = [groups]
        chosen = [g for g in select_groups(model, groups) if g != HEAD]
        selected = {id(l) for g in chosen for l in all_groups[g]}
    elif names is not None:
        if isinstance(names, str):
            names = [names]
        known = {l.name: l for l in backbone_layers}
        for n in names:
            if n not in known:
                raise UnknownNameError("backbone layer", n, known)
        selected = {id(known[n]) for n in names}
    elif pattern is not None:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ArgumentError("pattern", pattern, f"must be a valid regular expression ({exc})") from exc
        selected = {id(l) for l in backbone_layers if regex.search(l.name)}
        if not selected:
            raise ArgumentError("pattern", pattern, "matches no backbone layer")
    else:
        fraction = check_float("fraction", fraction, low=0, high=1, low_open=True)
        n = max(1, round(len(backbone_layers) * fraction))
        selected = {id(l) for l in backbone_layers[len(backbone_layers) - n :]}
    return _apply(model, selected, bn_policy)


def unfreeze_all(model: keras.Model, *, bn_policy: str = "frozen") -> TrainableSummary:
    """Unfreeze the whole backbone (BatchNorm per ``bn_policy``)."""
    return unfreeze(model, fraction=1.0, bn_policy=bn_policy)
