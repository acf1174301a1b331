"""The anatomy every tfxfer text model shares, and its token-id twin for TFLite.

A text model is ``text (string) -> "tokenize" (TextTokenizer) -> <encoder backbone> -> "pool"
(SequencePooling) -> head layers, one after another``. `token_model` rebuilds the same model from
the token tensors on (sharing every weight): that is what TFLite holds, since tf-text tokenizer
ops cannot be converted, and what a batch of pre-tokenized ids feeds.

Example:
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier
    >>> from tfxfer.text.graph import token_model
    >>> encoder = build_bert_encoder(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ok"], num_layers=1,
    ...                              hidden_dim=8, intermediate_dim=8, num_heads=2, sequence_length=8)
    >>> model = build_text_classifier(encoder, 2)
    >>> [t.name for t in token_model(model).inputs]  # a dict of inputs: Keras orders it by key
    ['padding_mask', 'segment_ids', 'token_ids']
"""

from __future__ import annotations

import dataclasses

import keras

from tfxfer.errors import ArgumentTypeError, ModelError
from tfxfer.text.layers import TOKEN_KEYS, SequencePooling, TextTokenizer


@dataclasses.dataclass
class TextModelParts:
    """The layers of a text model: ``tokenizer``, ``backbone``, ``pool``, then ``head`` (in order)."""

    tokenizer: TextTokenizer
    backbone: keras.Model
    pool: SequencePooling
    head: list

    @property
    def sequence_length(self) -> int:
        return self.tokenizer.sequence_length

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.tokenizer.keys)


def text_parts(model) -> TextModelParts:
    """Split a tfxfer text model into its parts; raises `ModelError` for any other model."""
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model built by tfxfer.text")
    layers = list(model.layers)
    tokenizers = [l for l in layers if isinstance(l, TextTokenizer)]
    backbones = [l for l in layers if isinstance(l, keras.Model)]
    pools = [i for i, l in enumerate(layers) if isinstance(l, SequencePooling)]
    if len(tokenizers) != 1 or len(backbones) != 1 or len(pools) != 1:
        raise ModelError(
            f"Model {model.name!r} is not a tfxfer text model (it needs one TextTokenizer, one nested "
            f"encoder model and one SequencePooling layer; found {len(tokenizers)}, {len(backbones)}, "
            f"{len(pools)}). Build it with tfxfer.text.build_text_classifier / build_token_classifier."
        )
    return TextModelParts(tokenizer=tokenizers[0], backbone=backbones[0], pool=layers[pools[0]],
                          head=layers[pools[0] + 1:])


def apply_head(parts: TextModelParts, token_inputs: dict, *, head: bool = True):
    """Run backbone, pool and (if ``head``) head layers of ``parts`` on token tensors."""
    backbone = parts.backbone
    wanted = backbone.input if isinstance(backbone.input, dict) else {}
    outputs = backbone({k: v for k, v in token_inputs.items() if k in wanted})
    if isinstance(outputs, dict):
        features = outputs["pooled_output" if parts.pool.mode == "pooled" else "sequence_output"]
    else:
        features = outputs
    x = parts.pool(features, token_inputs["padding_mask"])
    for layer in parts.head if head else ():
        x = layer(x)
    return x


def token_inputs(keys, sequence_length: int, *, batch_size: int | None = None) -> dict:
    """``{key: keras.Input((sequence_length,), int32)}`` for ``keys`` (in `TOKEN_KEYS` order)."""
    return {k: keras.Input(shape=(sequence_length,), batch_size=batch_size, dtype="int32", name=k)
            for k in TOKEN_KEYS if k in keys}


def token_model(model, *, batch_size: int | None = None) -> keras.Model:
    """The same model from ``token_ids`` / ``padding_mask`` / ``segment_ids`` (int32) on, weights shared.

    Inputs are the model's tokenizer keys (always ``token_ids`` and ``padding_mask``; ``segment_ids``
    when the encoder takes them), each ``[batch, sequence_length]``.
    """
    parts = text_parts(model)
    inputs = token_inputs(parts.keys, parts.sequence_length, batch_size=batch_size)
    return keras.Model(inputs, apply_head(parts, inputs), name=f"{model.name}_tokens")


def token_features(model, *, batch_size: int | None = None) -> keras.Model:
    """Token tensors -> the pooled encoder output the head sees (the feature-caching point)."""
    parts = text_parts(model)
    inputs = token_inputs(parts.keys, parts.sequence_length, batch_size=batch_size)
    return keras.Model(inputs, apply_head(parts, inputs, head=False), name=f"{model.name}_features")
