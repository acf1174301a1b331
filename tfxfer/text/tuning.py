"""Layer groups of text models, freezing the encoder, layer-wise learning-rate decay.

The groups come from `tfxfer.text.text_spec` (embeddings, each transformer layer, pooler) and are
resolved by `tfxfer.backbones.layer_groups`, so the head group and the group rule are the vision
side's. Training goes through the one core, `tfxfer.train.fine_tune` (texts in, same arguments as
images); these helpers are for hand-written loops.

Example:
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=2, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> model = build_text_classifier(encoder, 2)
    >>> list(text_layer_groups(model)), pooler_unused(model)
    (['embeddings', 'layer_0', 'layer_1', 'pooler', 'head'], True)
"""

from __future__ import annotations

import keras

from tfxfer.backbones.groups import HEAD, layer_groups
from tfxfer.errors import ArgumentTypeError
from tfxfer.text.layers import SequencePooling
from tfxfer.text.specs import POOLER, text_spec, unused_pooler
from tfxfer.utils.validate import check_float, check_int


def _backbone(model: keras.Model) -> keras.Model:
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ArgumentTypeError("model", model, "a tfxfer text model with one nested encoder")
    return nested[0]


def pooler_unused(model: keras.Model) -> bool:
    """Whether ``model`` pools without the encoder's pretrained pooler ("mean", "cls", "tokens"):
    the pooler then gets no gradient and stays frozen (`tfxfer.text.specs.unused_pooler`)."""
    return bool(unused_pooler(model))


def reloaded_trainable_variables(model: keras.Model) -> list:
    """``model.trainable_variables`` as a fresh ``keras.saving.load_model`` of it will list them.

    A keras-hub encoder saves its constructor arguments, not the ``trainable`` flag of each inner
    layer: an encoder that is trainable as a whole comes back with *every* inner layer trainable
    (a frozen unused pooler, or the lower layers of a partial unfreeze, included). An optimizer
    built on this list (in this order) saves variables that load back one-to-one; the layers
    frozen here stay frozen here (the optimizer just holds zero state for them).

    Example:
        >>> from tfxfer.text import build_bert_encoder, build_text_classifier
        >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
        >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
        ...                              num_heads=2, sequence_length=8)
        >>> model = build_text_classifier(encoder, 2)
        >>> _ = unfreeze_encoder(model)  # the whole encoder, but the unused pooler stays frozen
        >>> len(reloaded_trainable_variables(model)) - len(model.trainable_variables)  # its kernel, bias
        2
    """
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1 or _pooling(model) is None or not nested[0].trainable:  # not a text model / all frozen
        return list(model.trainable_variables)
    flags = [(layer, layer.trainable) for layer in nested[0]._flatten_layers(include_self=False)]
    try:
        for layer, trainable in flags:
            if not trainable:
                layer.trainable = True
        return list(model.trainable_variables)
    finally:
        for layer, trainable in flags:  # parents first: a child's own flag is put back after its parent's
            layer.trainable = trainable


def _pooling(model: keras.Model):
    """The model's `tfxfer.text.SequencePooling` layer (None: not a tfxfer text model)."""
    return next((layer for layer in model.layers if isinstance(layer, SequencePooling)), None)


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
    top_groups = check_int("top_groups", top_groups, low=0, high=len(encoder_groups))
    chosen = set(encoder_groups[len(encoder_groups) - top_groups:])
    if pooler_unused(model):
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
    decay = check_float("decay", decay, low=0, low_open=True, high=1)
    groups = text_layer_groups(model)
    unused_pooler = pooler_unused(model) and POOLER in groups
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
