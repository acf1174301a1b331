"""AdaBN: re-estimate every BatchNormalization layer's moving statistics on target data.

Li et al. (2016), "Revisiting Batch Normalization For Practical Domain Adaptation": the learned
weights stay; only the per-channel means and variances BatchNorm normalises with are replaced by
the target domain's. No labels, no gradient step, nothing added to the model: the exported
inference graph is the same graph with other statistics.

How: each BatchNorm layer runs in training mode over the target batches with its momentum set so
that the moving statistics become the running average of the batch statistics, weighted by batch
size (the cumulative average PyTorch uses with ``momentum=None``). Afterwards every layer gets its
``trainable`` flag and momentum back, so a frozen BatchNorm stays in inference mode. Nothing else
changes: kernels, biases, BN scale/offset and the optimizer are untouched.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt import adapt_batchnorm
    >>> from tfxfer.models import build_model
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> target = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    >>> report = adapt_batchnorm(model, target, batch_size=8)
    >>> report.layers, report.examples
    (52, 16)
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tfxfer.adapt.domain_data import check_inputs, split_data
from tfxfer.errors import ArgumentTypeError, DataError, ModelError
from tfxfer.utils.validate import check_int


@dataclasses.dataclass(frozen=True)
class BatchNormAdaptation:
    """What `adapt_batchnorm` did: BN ``layers`` updated, target ``examples`` seen, and the mean
    absolute change of the moving means and variances (how far the statistics moved)."""

    layers: int
    examples: int
    mean_change: float
    variance_change: float


def batchnorm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of ``model``: nested models and custom layers' sublayers too."""
    # Keras has no public recursive walk over sublayers of custom layers; _flatten_layers is it.
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization)]


def adapt_batchnorm(model: keras.Model, target, *, batch_size: int = 64, max_examples: int | None = None,
                    seed: int = 0) -> BatchNormAdaptation:
    """Replace ``model``'s BatchNorm moving statistics with those of ``target`` (in place).

    Args:
        model: a ``keras.Model`` with BatchNormalization layers (any tfxfer image model).
        target: unlabelled target inputs (``x``, ``(x, y)`` with ``y`` ignored, or a batched dataset).
        batch_size: examples per pass; larger batches give steadier statistics (>= 16 advised).
        max_examples: use at most this many target examples (a seeded random subset, >= 2).
        seed: seeds that subset.

    Returns:
        A `BatchNormAdaptation` report.

    Raises:
        ModelError: the model has no BatchNormalization layer (text encoders use LayerNorm).
        ArgumentError: target inputs of another shape or channel count than the model takes.
        DataError: fewer than 2 target examples (one example has no variance: a BatchNorm layer whose
            feature map is 1x1 would get a moving variance of 0), NaN or infinite target inputs, or
            target inputs that drive a BatchNorm statistic to NaN or infinity (the model's
            statistics are put back first).
    """
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model")
    batch_size = check_int("batch_size", batch_size, low=2)
    max_examples = check_int("max_examples", max_examples, low=2, allow_none=True)
    layers = batchnorm_layers(model)
    if not layers:
        raise ModelError(f"Model {model.name!r} has no BatchNormalization layer: AdaBN has nothing to adapt "
                         "(text encoders normalise with LayerNorm; use DeepCORAL, DANN or self_train)")
    x, _ = split_data(target, name="target")
    check_inputs(model, x, name="target")
    if len(x) < 2:
        raise DataError(f"`target` has {len(x)} example; AdaBN needs at least 2 target examples (one example has "
                        "no variance: every BatchNorm layer with a 1x1 feature map would get a moving variance of 0)")
    if max_examples is not None and len(x) > max_examples:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), size=max_examples, replace=False))]
    before = _statistics(layers)
    saved = [(bn.trainable, bn.momentum) for bn in layers]
    # Start from statistics no pass can leave as they are (the first batch replaces them, momentum
    # 0): a layer still holding them afterwards never ran in training mode. Comparing with the old
    # statistics cannot tell that from a model already adapted to this very target (a re-run).
    sentinel = [(m + 1.0, v + 1.0) for m, v in before]
    _assign(layers, sentinel)
    seen, finished = 0, False
    try:
        for bn in layers:
            bn.trainable = True  # a frozen BatchNorm ignores training=True in Keras 3
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            # A BatchNorm channel averages over batch x height x width values: a one-example batch
            # gives 1x1 feature maps one value, whose variance is 0. Batches of >= 2 examples give
            # every channel >= 2 values; only a trailing single example can be shorter (the first
            # batch holds min(batch_size, len(x)) >= 2 examples), and it is skipped.
            if len(batch) < 2:
                break
            for bn in layers:
                bn.momentum = seen / (seen + len(batch))  # running average weighted by batch size
            model(keras.ops.convert_to_tensor(batch), training=True)
            seen += len(batch)
        finished = True
    finally:
        for bn, (trainable, momentum) in zip(layers, saved):
            bn.trainable = trainable
            bn.momentum = momentum
        if not finished:  # an error (or Ctrl-C) mid-pass: the model keeps its own statistics
            _assign(layers, before)
    after = _statistics(layers)
    untouched = [i for i, ((m, v), (sm, sv)) in enumerate(zip(after, sentinel))
                 if np.array_equal(m, sm) and np.array_equal(v, sv)]
    for i in untouched:  # not on the forward path, or fixed in inference mode: its own statistics back
        _assign([layers[i]], [before[i]])
        after[i] = before[i]
    if seen and len(untouched) == len(layers):
        raise ModelError(f"AdaBN ran {seen} target examples through {model.name!r} but no BatchNorm statistic "
                         "moved: the model calls its BatchNorm layers with training=False fixed in the graph. "
                         "Build it with tfxfer.build_model (BatchNorm frozen by flag, not by call argument)")
    bad = next((bn.name for bn, (m, v) in zip(layers, after) if not (np.isfinite(m).all() and np.isfinite(v).all())),
               None)
    if bad is not None:  # finite but extreme inputs can still overflow a statistic: leave the model as it was
        for bn, (m, v) in zip(layers, before):
            bn.moving_mean.assign(m)
            bn.moving_variance.assign(v)
        raise DataError(f"`target` drove the moving statistics of BatchNorm layer {bad!r} to NaN or infinity; "
                        "the model's statistics were put back. Preprocess the target like the source data")
    mean_change = np.mean([np.abs(m1 - m0).mean() for (m1, _), (m0, _) in zip(after, before)])
    var_change = np.mean([np.abs(v1 - v0).mean() for (_, v1), (_, v0) in zip(after, before)])
    return BatchNormAdaptation(len(layers), seen, float(mean_change), float(var_change))


def _statistics(layers) -> list:
    return [(keras.ops.convert_to_numpy(bn.moving_mean), keras.ops.convert_to_numpy(bn.moving_variance))
            for bn in layers]


def _assign(layers, statistics) -> None:
    for bn, (mean, variance) in zip(layers, statistics):
        bn.moving_mean.assign(mean)
        bn.moving_variance.assign(variance)
