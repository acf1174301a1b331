"""Fine-tuning text models: layer groups, freezing, layer-wise learning-rate decay, the recipe.

The groups come from `tfxfer.text.text_spec` (embeddings, each transformer layer, pooler) and are
resolved by `tfxfer.freezing.layer_groups`, so the head group and the group rule are the vision
side's. `fine_tune_text` is the standard encoder recipe: AdamW with linear warmup and linear
decay, optional layer-wise decay (each group below the head gets ``layer_decay`` times the rate of
the group above), optional frozen encoder (head only).

Example:
    >>> import numpy as np
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier, fine_tune_text
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=2, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> model = build_text_classifier(encoder, 2)
    >>> texts = np.array(["good film", "bad film"] * 4, dtype=object); labels = np.array([1, 0] * 4)
    >>> history = fine_tune_text(model, texts, labels, epochs=1, batch_size=4, layer_decay=0.8, verbose=0)
    >>> list(text_layer_groups(model))
    ['embeddings', 'layer_0', 'layer_1', 'pooler', 'head']
"""

from __future__ import annotations

import math

import keras
import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.freezing.groups import HEAD, layer_groups
from tfxfer.optim.discriminative import DiscriminativeAdamW
from tfxfer.optim.schedules import WarmupSchedule
from tfxfer.text.layers import SequencePooling
from tfxfer.text.specs import POOLER, text_spec


def _backbone(model: keras.Model) -> keras.Model:
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ArgumentTypeError("model", model, "a tfxfer text model with one nested encoder")
    return nested[0]


def _pooler_unused(model: keras.Model) -> bool:
    pool = next((l for l in model.layers if isinstance(l, SequencePooling)), None)
    return pool is not None and pool.mode != "pooled"


def text_layer_groups(model: keras.Model):
    """``{group: [layers]}`` bottom to top: embeddings (with the tokenizer/inputs), layer_i, pooler, head."""
    return layer_groups(model, spec=text_spec(_backbone(model)))


def freeze_encoder(model: keras.Model) -> list[str]:
    """Freeze the whole encoder; the head trains. Returns the trainable group names (["head"])."""
    return unfreeze_encoder(model, top_groups=0)


def unfreeze_encoder(model: keras.Model, *, top_groups: int | None = None) -> list[str]:
    """Make the top ``top_groups`` encoder groups and the head trainable (None: the whole encoder).

    Returns:
        The trainable group names, bottom to top. Recompile (or use a fresh optimizer) afterwards.
    """
    groups = text_layer_groups(model)
    encoder_groups = [g for g in groups if g != HEAD]
    if top_groups is None:
        top_groups = len(encoder_groups)
    if isinstance(top_groups, bool) or not isinstance(top_groups, int) or not 0 <= top_groups <= len(encoder_groups):
        raise ArgumentError("top_groups", top_groups, f"must be None or an int in [0, {len(encoder_groups)}]")
    chosen = set(encoder_groups[len(encoder_groups) - top_groups:])
    if _pooler_unused(model):
        chosen.discard(POOLER)  # an unused pooler gets no gradients; keep it frozen
    backbone = _backbone(model)
    model.trainable = True
    backbone.trainable = bool(chosen)
    for group, layers in groups.items():
        for layer in layers:
            if layer is not backbone:
                layer.trainable = group == HEAD or group in chosen
    return [g for g in groups if g == HEAD or g in chosen]


def text_layerwise_decay(model: keras.Model, *, decay: float, head: float = 1.0) -> dict:
    """``{variable path: multiplier}``: head ``head``, the top encoder group ``head*decay``, ..."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 < decay <= 1:
        raise ArgumentError("decay", decay, "must be in (0, 1]")
    groups = text_layer_groups(model)
    unused_pooler = _pooler_unused(model) and POOLER in groups
    names = [g for g in groups if g != HEAD and not (unused_pooler and g == POOLER)]
    factors = {HEAD: float(head)}
    for depth, group in enumerate(reversed(names), start=1):
        factors[group] = float(head) * float(decay) ** depth
    if unused_pooler:  # frozen and outside the gradient path: it takes no depth level
        factors[POOLER] = factors[names[-1]]
    out = {}
    for group, layers in groups.items():
        for layer in layers:
            if isinstance(layer, keras.Model):
                continue
            for variable in layer.weights:
                out[variable.path] = factors[group]
    return out


def _default_loss(model, y):
    activation = getattr(model.layers[-1], "activation", None)
    if getattr(activation, "__name__", "") == "sigmoid":
        return "binary_crossentropy", ["binary_accuracy"]
    if y.ndim >= 2 and y.shape[-1] > 1 and y.ndim == len(model.outputs[0].shape):
        return "categorical_crossentropy", ["accuracy"]
    return "sparse_categorical_crossentropy", ["accuracy"]


def _num_examples(x) -> int:
    if isinstance(x, dict):
        return len(next(iter(x.values())))
    return len(x)


def fine_tune_text(
    model: keras.Model,
    x,
    y,
    *,
    validation_data=None,
    epochs: int = 3,
    batch_size: int = 16,
    learning_rate: float = 5e-5,
    warmup_fraction: float = 0.1,
    weight_decay: float = 0.01,
    layer_decay: float | None = None,
    head_lr_multiplier: float = 1.0,
    top_groups: int | None = None,
    class_weight=None,
    sample_weight=None,
    loss=None,
    metrics=None,
    callbacks=(),
    verbose: int = 1,
):
    """Compile ``model`` with AdamW + warmup + linear decay (+ layer-wise decay) and ``fit`` it.

    Args:
        model: a tfxfer text model, or its `token_model`.
        x: raw texts (for a string-input model) or ``{key: int32 array}`` token tensors.
        y: class ids, one-hot / multi-hot rows, or per-token tag ids.
        validation_data: passed to ``fit``.
        epochs, batch_size: as in ``fit``.
        learning_rate: peak rate (2e-5 .. 1e-4 is usual for a full fine-tune; 1e-3 for head only).
        warmup_fraction: share of the steps spent warming up linearly.
        weight_decay: AdamW decoupled weight decay.
        layer_decay: if set, layer-wise rate decay (e.g. 0.8); None trains all groups at one rate.
        head_lr_multiplier: extra multiplier on the head group's rate.
        top_groups: train the top N encoder groups and the head (0: head only, the encoder
            frozen as loaded; None: the whole encoder). See `unfreeze_encoder`.
        class_weight: ``{class: weight}`` (single-label; see `text_class_weights`).
        sample_weight: per-example or per-token weights (token classification masks).
        loss, metrics: default from the head (softmax: sparse/categorical CE; sigmoid: BCE).

    Returns:
        The Keras ``History``.
    """
    for arg, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(arg, value, "must be an int >= 1")
    if not learning_rate > 0:
        raise ArgumentError("learning_rate", learning_rate, "must be > 0")
    if not 0 <= warmup_fraction < 1:
        raise ArgumentError("warmup_fraction", warmup_fraction, "must be in [0, 1)")
    n = _num_examples(x)
    y = np.asarray(y)
    if n == 0 or len(y) != n:
        raise DataError(f"`x` has {n} examples but `y` has {len(y)}")
    unfreeze_encoder(model, top_groups=top_groups)
    multipliers = (text_layerwise_decay(model, decay=layer_decay, head=head_lr_multiplier)
                   if layer_decay is not None else
                   {v.path: float(head_lr_multiplier) for l in text_layer_groups(model)[HEAD] for v in l.weights})
    steps = epochs * math.ceil(n / batch_size)
    warmup = int(round(steps * warmup_fraction))
    schedule = WarmupSchedule(learning_rate, warmup, max(steps - warmup, 1), decay="linear")
    default_loss, default_metrics = _default_loss(model, y)
    model.compile(optimizer=DiscriminativeAdamW(schedule, weight_decay=weight_decay, lr_multipliers=multipliers),
                  loss=loss or default_loss, metrics=default_metrics if metrics is None else metrics)
    return model.fit(x, y, validation_data=validation_data, epochs=epochs, batch_size=batch_size, shuffle=True,
                     class_weight=class_weight, sample_weight=sample_weight, callbacks=list(callbacks),
                     verbose=verbose)
