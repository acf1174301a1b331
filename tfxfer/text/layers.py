"""Serializable layers of tfxfer text models: raw strings to token tensors, and sequence pooling.

`TextTokenizer` puts a keras-hub preprocessor inside the model graph, so a text model takes raw
strings (``fit``, ``predict``, the SavedModel signature) and its tokenizer vocabulary is saved with
it. `SequencePooling` turns the encoder's outputs into what the head sees: the pretrained pooler
output, the first ([CLS]) token, the masked mean of the tokens, or every token (for tagging).

Example:
    >>> import numpy as np
    >>> from tfxfer.text.layers import SequencePooling
    >>> sequence = np.array([[[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]], dtype="float32")
    >>> mask = np.array([[1, 1, 0]], dtype="int32")
    >>> SequencePooling(mode="mean")(sequence, mask).numpy().tolist()
    [[2.0, 3.0]]
"""

from __future__ import annotations

import keras
from keras import ops

from tfxfer.errors import ArgumentError

#: Pooling modes of `SequencePooling`.
POOLING_MODES = {
    "pooled": "the encoder's pretrained pooler output (BERT-style [CLS] dense + tanh)",
    "cls": "the first token's output ([CLS] / <s>)",
    "mean": "the mean of the token outputs under the padding mask (sentence-embedding style)",
    "tokens": "every token output, unchanged (token classification)",
}

#: The token tensors a text model can take, in the order exported files list them.
TOKEN_KEYS = ("token_ids", "padding_mask", "segment_ids")


def replace_nul(strings):
    """String tensor ``strings`` with every NUL character (U+0000) replaced by a space.

    keras-hub's tokenizers cut a string at its first NUL in graph mode (``fit``, ``predict``, the
    SavedModel) but not eagerly, and the device tokenizers (``export/wordpiece_tokenizer.py``) keep the rest
    of the text; a WordPiece tokenizer splits words at NUL as at a space, so a space keeps every path alike.
    """
    import tensorflow as tf

    return tf.strings.regex_replace(strings, r"\x00", " ")


@keras.saving.register_keras_serializable(package="tfxfer")
class TextTokenizer(keras.layers.Layer):
    """Raw strings ``[batch]`` -> ``{key: int32 [batch, sequence_length]}`` with a keras-hub preprocessor.

    Args:
        preprocessor: a keras-hub text preprocessor (e.g. ``BertTextClassifierPreprocessor``) with a
            fixed ``sequence_length``; its tokenizer's vocabulary is saved as a model asset.
        keys: the token tensors to output (a subset of the preprocessor's outputs, e.g. the inputs
            of the backbone).
    """

    def __init__(self, preprocessor, keys=TOKEN_KEYS[:2], **kwargs):
        super().__init__(**kwargs)
        if isinstance(preprocessor, dict):
            preprocessor = keras.layers.deserialize(preprocessor)
        length = getattr(preprocessor, "sequence_length", None)
        if isinstance(length, bool) or not isinstance(length, int) or length < 2:
            raise ArgumentError("preprocessor.sequence_length", length, "must be an int >= 2")
        keys = tuple(keys)
        unknown = [k for k in keys if k not in TOKEN_KEYS]
        if not keys or unknown:
            raise ArgumentError("keys", keys, "must be a non-empty subset of " + ", ".join(TOKEN_KEYS))
        self.preprocessor = preprocessor
        self.keys = keys

    @property
    def sequence_length(self) -> int:
        return int(self.preprocessor.sequence_length)

    @property
    def tokenizer(self):
        return self.preprocessor.tokenizer

    def build(self, input_shape=None):
        self.built = True

    def call(self, inputs):
        import tensorflow as tf

        outputs = self.preprocessor(replace_nul(inputs))
        return {k: tf.cast(outputs[k], "int32") for k in self.keys}

    def tokenize(self, texts) -> dict:
        """Numpy token tensors for a list of strings, through the in-graph (tf-text) path."""
        import tensorflow as tf

        function = self.__dict__.get("_traced_tokenize")
        if function is None:  # traced once per layer; set untracked (not a Keras attribute)
            function = tf.function(self.call, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
            object.__setattr__(self, "_traced_tokenize", function)
        return {k: v.numpy() for k, v in function(tf.constant(list(texts), dtype=tf.string)).items()}

    def compute_output_spec(self, inputs):
        shape = (inputs.shape[0], self.sequence_length)
        return {k: keras.KerasTensor(shape, dtype="int32") for k in self.keys}

    def get_config(self):
        config = super().get_config()
        config.update({"preprocessor": keras.layers.serialize(self.preprocessor), "keys": list(self.keys)})
        return config


@keras.saving.register_keras_serializable(package="tfxfer")
class SequencePooling(keras.layers.Layer):
    """Pool encoder outputs: ``call(features, padding_mask)`` (see `POOLING_MODES`).

    ``features`` is the sequence output ``[batch, tokens, dim]`` for "cls", "mean" and "tokens",
    and the pooled output ``[batch, dim]`` for "pooled" (passed through).

    Args:
        mode: "pooled", "cls", "mean" or "tokens".
    """

    def __init__(self, mode: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if mode not in POOLING_MODES:
            raise ArgumentError("mode", mode, "must be one of " + ", ".join(POOLING_MODES))
        self.mode = mode

    def build(self, features_shape=None, padding_mask_shape=None):
        self.built = True

    def call(self, features, padding_mask=None):
        if self.mode in ("pooled", "tokens"):
            return features
        if self.mode == "cls":
            return features[:, 0, :]
        if padding_mask is None:
            return ops.mean(features, axis=1)
        mask = ops.expand_dims(ops.cast(padding_mask, features.dtype), -1)
        total = ops.sum(features * mask, axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1), 1.0)

    def compute_output_shape(self, features_shape, padding_mask_shape=None):
        if self.mode in ("pooled", "tokens"):
            return tuple(features_shape)
        return (features_shape[0], features_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
