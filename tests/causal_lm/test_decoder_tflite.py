"""TFLite decoder (one file, prefill + decode signatures, builtin ops, explicit KV cache) of a tiny random
Llama: agreement with Keras, weights stored once, the gate."""

import numpy as np
import pytest

from tfxfer.export.decoder_tflite import TFLiteDecoder, convert_decoder_tflite, decoder_agreement, decoder_gate
from tfxfer.errors import ArgumentError

IDS = [3, 40, 71, 260, 3, 261, 90, 33, 5, 9, 44, 120]


def _analysis(blob):
    import contextlib
    import io

    import tensorflow as tf

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tf.lite.experimental.Analyzer.analyze(model_content=blob)
    return out.getvalue().splitlines()


def _ops(blob):
    return {line.split("Op#")[1].split()[1].split("(")[0] for line in _analysis(blob) if "Op#" in line}


@pytest.fixture(scope="module")
def blob(tiny_lm):
    return convert_decoder_tflite(tiny_lm, cache_length=32, prefill_tokens=4)


def test_one_file_two_signatures_matches_keras(tiny_lm, blob):
    decoder = TFLiteDecoder(blob)
    assert decoder.prefill_tokens == 4 and decoder.cache_length == 32
    report = decoder_agreement(tiny_lm, blob, IDS)  # 3 prefill chunks
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff"] < 1e-4, report
    decoder.reset()
    steps = np.concatenate([decoder.feed(IDS[:6]), decoder.feed(IDS[6:7]), decoder.feed(IDS[7:])])  # mixed
    x = np.asarray([IDS], dtype="int32")
    keras = np.asarray(tiny_lm.model({"token_ids": x, "padding_mask": np.ones_like(x, bool)}))[0]
    np.testing.assert_allclose(steps, keras, atol=1e-4)
    ops = _ops(blob)
    assert "DYNAMIC_UPDATE_SLICE" in ops and "FULLY_CONNECTED" in ops
    assert not any(op.startswith("Flex") for op in ops) and "READ_VARIABLE" not in ops, ops


def test_tied_embedding_stored_once(tiny_lm, blob):
    vocab, hidden = tiny_lm.tokenizer.vocabulary_size, tiny_lm.backbone.hidden_dim
    tables = {line.split("buffer:")[1].split(",")[0] for line in _analysis(blob)
              if f"shape:[{vocab}, {hidden}]" in line and " RO " in line}
    assert len(tables) == 1, tables  # gather and projection, in both signatures, share one buffer


@pytest.mark.parametrize("quantization,prefill", [("dynamic_int8", 4), ("float16", None)])
def test_quantized_variants_and_gate(tiny_lm, quantization, prefill):
    blob = convert_decoder_tflite(tiny_lm, cache_length=32, prefill_tokens=prefill, quantization=quantization)
    assert TFLiteDecoder(blob).prefill_tokens == prefill  # None: a decode-only file
    report = decoder_gate(tiny_lm, blob, [IDS, IDS[:7]], variant=quantization, min_top1_agreement=0.5,
                          max_perplexity_change=0.5)
    assert report.positions == len(IDS) + 7 and report.max_abs_diff < 0.5, report
    assert report.passed and report.failures == [] and "PASS" in str(report)
    strict = decoder_gate(tiny_lm, blob, [IDS], min_top1_agreement=1.0, max_perplexity_change=1e-9)
    assert not strict.passed and "perplexity change" in strict.failures[-1] and "FAIL" in str(strict), strict


def test_gate_default_limits(tiny_lm, blob):
    report = decoder_gate(tiny_lm, blob, [IDS], variant="float32")
    assert report.passed and report.top1_agreement == 1.0 and abs(report.perplexity_change) < 1e-4
    assert report.to_dict()["thresholds"] == {"min_top1_agreement": 0.99, "max_perplexity_change": 0.02}


def test_errors(tiny_lm, blob):
    with pytest.raises(ArgumentError, match="`quantization` must be one of"):
        convert_decoder_tflite(tiny_lm, cache_length=32, quantization="int4")
    with pytest.raises(ArgumentError, match="`cache_length` must be an int in \\[1, 64\\]"):
        convert_decoder_tflite(tiny_lm, cache_length=100)
    with pytest.raises(ArgumentError, match="`prefill_tokens` must be an int in \\[2, 32\\]"):
        convert_decoder_tflite(tiny_lm, cache_length=32, prefill_tokens=40)
    with pytest.raises(ArgumentError, match="`texts` must be a non-empty list"):
        decoder_gate(tiny_lm, blob, "one string")
    with pytest.raises(ArgumentError, match="`min_top1_agreement`"):
        decoder_gate(tiny_lm, blob, [IDS], min_top1_agreement=2)
    decoder = TFLiteDecoder(blob)
    with pytest.raises(ArgumentError, match="at least one id"):
        decoder.feed([])
    decoder.feed([1] * 32)
    with pytest.raises(ArgumentError, match="would pass the cache length 32"):
        decoder.feed([1])
