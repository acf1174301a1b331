"""Layer groups of keras-hub text encoders as a `BackboneSpec`, for freezing and learning rates.

A text encoder splits into "embeddings" (every layer before the first transformer layer),
"layer_0" ... "layer_{n-1}" (one group per transformer layer, in order), and "pooler" (whatever
follows the last transformer layer, e.g. BERT's ``pooled_dense``; absent when there is none).
Transformer layers are the layers named ``..._layer_<i>`` (``transformer_layer_3``,
``disentangled_attention_encoder_layer_3``, ALBERT's shared ``group_0_inner_layer_0``), so BERT,
RoBERTa, DistilBERT, DeBERTa-v3, ALBERT, ELECTRA and XLM-RoBERTa all resolve. The spec plugs into
`tfxfer.backbones.layer_groups(model, spec=...)` like a vision catalog entry, and importing this
module registers `keras_hub_spec` with `tfxfer.backbones.register_spec_resolver`, so
``layer_groups(model)`` finds the groups of any keras-hub encoder inside a model on its own, and
`unused_pooler` with `tfxfer.backbones.groups.register_unused_groups`, so `tfxfer.freezing.unfreeze`
and `tfxfer.optim.layerwise_decay` keep a pooler the model does not use frozen, without a depth level.

Example:
    >>> from tfxfer.text import build_bert_encoder, text_spec
    >>> encoder = build_bert_encoder(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"], num_layers=2,
    ...                              hidden_dim=8, intermediate_dim=16, num_heads=2, sequence_length=8)
    >>> text_spec(encoder.backbone).group_names
    ('embeddings', 'layer_0', 'layer_1', 'pooler')
"""

from __future__ import annotations

import re

import keras

from tfxfer.backbones.catalog import register_spec_resolver
from tfxfer.backbones.groups import register_unused_groups
from tfxfer.backbones.spec import BackboneSpec
from tfxfer.errors import ArgumentTypeError, ModelError
from tfxfer.text.layers import SequencePooling

EMBEDDINGS = "embeddings"
POOLER = "pooler"
_LAYER_RE = re.compile(r"(?:^|_)layer_(\d+)$")


def transformer_layer_names(backbone: keras.Model) -> list[str]:
    """Names of the transformer layers of ``backbone``, bottom to top."""
    if not isinstance(backbone, keras.Model):
        raise ArgumentTypeError("backbone", backbone, "a keras-hub backbone (keras.Model)")
    names = [layer.name for layer in backbone.layers if _LAYER_RE.search(layer.name)
             and not isinstance(layer, keras.layers.InputLayer)]
    if not names:
        raise ModelError(
            f"Backbone {backbone.name!r} has no layer named '..._layer_<i>'; it does not look like a "
            f"keras-hub transformer encoder (layers: {[l.name for l in backbone.layers][:8]}...)"
        )
    return names


def _unsupported_builder(input_shape, weights):
    raise ModelError("Text encoders are built with tfxfer.text.load_encoder, not BackboneSpec.build")


def text_spec(backbone: keras.Model, *, sequence_length: int | None = None) -> BackboneSpec:
    """A `BackboneSpec` whose groups are the encoder's embeddings, each transformer layer, the pooler.

    Args:
        backbone: a keras-hub text backbone (``BertBackbone``, ``RobertaBackbone``, ...).
        sequence_length: recorded as the spec's ``input_size`` (``(sequence_length,)``).
    """
    layers = transformer_layer_names(backbone)
    all_names = [layer.name for layer in backbone.layers]
    first = all_names.index(layers[0])
    if first == 0:
        raise ModelError(f"Backbone {backbone.name!r} has no embedding layers before {layers[0]!r}")
    groups = [(EMBEDDINGS, "^" + re.escape(all_names[first - 1]) + "$")]
    groups += [(f"layer_{i}", "^" + re.escape(name) + "$") for i, name in enumerate(layers)]
    if all_names.index(layers[-1]) < len(all_names) - 1:
        groups.append((POOLER, None))
    length = sequence_length or int(getattr(backbone, "max_sequence_length", 0) or 0)
    return BackboneSpec(
        name=backbone.name,
        family=type(backbone).__name__.replace("Backbone", "").lower() or "text",
        builder=_unsupported_builder,
        input_size=(length,),
        preprocessing="none",
        groups=tuple(groups),
        min_input_size=1,
        params=int(backbone.count_params()),
        source="keras-hub",
    )


def keras_hub_spec(backbone: keras.Model) -> BackboneSpec | None:
    """`text_spec` of a keras-hub backbone, None for any other model (the resolver registered with
    `tfxfer.backbones`)."""
    if type(backbone).__module__.startswith("keras_hub."):
        return text_spec(backbone)
    return None


def unused_pooler(model) -> tuple[str, ...]:
    """``("pooler",)`` when ``model`` is a tfxfer text model that pools without the encoder's pretrained
    pooler ("mean", "cls", "tokens"): the pooler then gets no gradient. ``()`` otherwise."""
    layers = getattr(model, "layers", ())
    pool = next((layer for layer in layers if isinstance(layer, SequencePooling)), None)
    return (POOLER,) if pool is not None and pool.mode != "pooled" else ()


register_spec_resolver(keras_hub_spec)
register_unused_groups(unused_pooler)
