"""`TFLiteDecoder` on what is not a decoder file: a typed error naming `model_content`, never LiteRT's
raw ValueError or a StopIteration."""

import pytest

from tfxfer.errors import ArgumentTypeError, ModelError
from tfxfer.export.decoder_runner import TFLiteDecoder


def test_bytes_that_are_not_a_tflite_file_are_a_model_error_naming_their_size():
    with pytest.raises(ModelError, match=r"^`model_content` is not a loadable \.tflite file \(truncated or "
                                         r"corrupt\?\): .*Flatbuffer.*Received: model_content=<14 bytes>$"):
        TFLiteDecoder(b"notaflatbuffer")
    with pytest.raises(ArgumentTypeError, match="`model_content` must be the bytes of a .tflite file"):
        TFLiteDecoder("model.tflite")


def test_a_tflite_file_that_is_not_a_decoder_is_a_model_error():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
    def double(x):
        return x * 2

    blob = tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()], double).convert()
    with pytest.raises(ModelError, match=r"`model_content` is a \.tflite file but not a decoder: it has no input "
                                         r"named 'token_ids'"):
        TFLiteDecoder(blob)
