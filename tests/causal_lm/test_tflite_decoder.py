"""TFLite decoder (builtin ops, explicit KV cache) of a tiny random Llama: agreement with Keras."""

import numpy as np
import pytest

from tfxfer.causal_lm.tflite_decoder import TFLiteDecoder, convert_decoder_tflite, decoder_agreement
from tfxfer.errors import ArgumentError

IDS = [3, 40, 71, 260, 3, 261, 90, 33, 5, 9, 44, 120]


def _ops(blob):
    import contextlib
    import io

    import tensorflow as tf

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tf.lite.experimental.Analyzer.analyze(model_content=blob)
    return {line.split("Op#")[1].split()[1].split("(")[0] for line in out.getvalue().splitlines() if "Op#" in line}


@pytest.fixture(scope="module")
def decode_blob(tiny_lm):
    return convert_decoder_tflite(tiny_lm, cache_length=32)


def test_decode_step_matches_keras(tiny_lm, decode_blob):
    report = decoder_agreement(tiny_lm, decode_blob, IDS)
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff"] < 1e-4, report
    ops = _ops(decode_blob)
    assert "DYNAMIC_UPDATE_SLICE" in ops and "FULLY_CONNECTED" in ops
    assert not any(op.startswith("Flex") for op in ops) and "READ_VARIABLE" not in ops, ops


def test_prefill_then_decode(tiny_lm, decode_blob):
    prefill = TFLiteDecoder(convert_decoder_tflite(tiny_lm, cache_length=32, step_tokens=4))
    decode = TFLiteDecoder(decode_blob)
    logits = prefill.step(IDS[:4])
    assert logits.shape == (4, tiny_lm.tokenizer.vocabulary_size)
    decode._cache, decode.position = prefill._cache, prefill.position  # hand the cache over
    last = decode.step([IDS[4]])[0]
    x = np.asarray([IDS[:5]], dtype="int32")
    keras_last = np.asarray(tiny_lm.model({"token_ids": x, "padding_mask": np.ones_like(x, bool)}))[0, -1]
    np.testing.assert_allclose(last, keras_last, atol=1e-4)


@pytest.mark.parametrize("quantization", ["dynamic_int8", "float16"])
def test_quantized_variants_convert_and_run(tiny_lm, decode_blob, quantization):
    blob = convert_decoder_tflite(tiny_lm, cache_length=32, quantization=quantization)
    report = decoder_agreement(tiny_lm, blob, IDS)
    assert report["max_abs_diff"] < 0.5 and report["positions"] == len(IDS), report


def test_errors(tiny_lm, decode_blob):
    with pytest.raises(ArgumentError, match="`quantization` must be one of"):
        convert_decoder_tflite(tiny_lm, cache_length=32, quantization="int4")
    with pytest.raises(ArgumentError, match="`cache_length` must be an int in \\[1, 64\\]"):
        convert_decoder_tflite(tiny_lm, cache_length=100)
    decoder = TFLiteDecoder(decode_blob)
    with pytest.raises(ArgumentError, match="must hold exactly 1 ids"):
        decoder.step([1, 2])
    for _ in range(32):
        decoder.step([1])
    with pytest.raises(ArgumentError, match="would pass the cache length 32"):
        decoder.step([1])
