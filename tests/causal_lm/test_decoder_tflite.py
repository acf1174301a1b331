"""TFLite decoder (one file, prefill + decode signatures, builtin ops, explicit KV cache) of a tiny random
Llama: agreement with Keras, weights stored once, the gate."""

import numpy as np
import pytest

from tfxfer.export.decoder_runner import TFLiteDecoder
from tfxfer.export.decoder_tflite import convert_decoder_tflite, save_decoder
from tfxfer.export.decoder_verification import decoder_agreement, decoder_gate
from tfxfer.export.int8_per_row import int8_weights
from tfxfer.errors import ArgumentError, ArgumentTypeError

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


def _tables(lm, blob):
    vocab, hidden = lm.tokenizer.vocabulary_size, lm.backbone.hidden_dim
    return {line.split("buffer:")[1].split(",")[0] for line in _analysis(blob)
            if f"shape:[{vocab}, {hidden}]" in line and " RO " in line}


def test_tied_embedding_stored_once(tiny_lm, blob):
    tables = _tables(tiny_lm, blob)
    assert len(tables) == 1, tables  # gather and projection, in both signatures, share one buffer


def test_decode_only_file_has_constant_weights_and_matches_keras(tiny_lm):
    """Converted from its one function over the variables (the converter freezes them): no variable op is
    left (LiteRT would never initialise it: every output NaN), the tied table is stored once."""
    blob = convert_decoder_tflite(tiny_lm, cache_length=32, prefill_tokens=None)
    assert TFLiteDecoder(blob).prefill_tokens is None
    report = decoder_agreement(tiny_lm, blob, IDS)
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff"] < 1e-4, report
    ops = _ops(blob)
    assert "FULLY_CONNECTED" in ops and not any(op.startswith("Flex") or "VAR" in op for op in ops), ops
    assert len(_tables(tiny_lm, blob)) == 1


@pytest.mark.parametrize("quantization,prefill", [("dynamic_int8", 4), ("float16", None), ("int8", 4),
                                                  ("int8_hybrid", None)])
def test_quantized_variants_and_gate(tiny_lm, quantization, prefill):
    blob = convert_decoder_tflite(tiny_lm, cache_length=32, prefill_tokens=prefill, quantization=quantization)
    assert TFLiteDecoder(blob).prefill_tokens == prefill  # None: a decode-only file
    report = decoder_gate(tiny_lm, blob, [IDS, IDS[:7]], variant=quantization, min_top1_agreement=0.5,
                          max_perplexity_change=0.5)
    assert report.positions == len(IDS) + 7 and report.max_abs_diff < 0.5, report
    assert report.passed and report.failures == [] and "PASS" in str(report)
    strict = decoder_gate(tiny_lm, blob, [IDS], min_top1_agreement=1.0, max_perplexity_change=1e-9)
    assert not strict.passed and "perplexity change" in strict.failures[-1] and "FAIL" in str(strict), strict


def _weights(blob):
    """``{tensor name: (type name, scales or None, int8/float values)}`` of every constant matrix in the first graph."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    graph, out = model.subgraphs[0], {}
    for tensor in graph.tensors:
        data = model.buffers[tensor.buffer].data
        if data is None or len(tensor.shape) != 2:
            continue
        kind = flatbuffer_utils.type_to_name(tensor.type)
        values = np.frombuffer(data.tobytes(), np.int8 if kind == "INT8" else np.float32).reshape(tensor.shape)
        scales = None if tensor.quantization is None or tensor.quantization.scale is None else \
            np.asarray(tensor.quantization.scale)
        out[tensor.name.decode()] = (kind, scales, values)
    return out


def _consumers(blob, kind):
    """Per op named ``kind`` in the first graph, the type names of its inputs."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    graph = model.subgraphs[0]
    return [[flatbuffer_utils.type_to_name(graph.tensors[i].type) for i in op.inputs if i >= 0]
            for op in graph.operators if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == kind]


@pytest.mark.parametrize("hybrid", ["none", "body", "all"])
def test_int8_weights_per_row_scales(tiny_lm, blob, hybrid):
    small = int8_weights(blob, hybrid=hybrid, min_elements=64)  # every matrix of the tiny model
    before, after = _weights(blob), _weights(small)
    assert before and all(kind == "FLOAT32" for kind, _, _ in before.values())
    quantized = {name[: -len("/int8")]: value for name, value in after.items() if name.endswith("/int8")}
    assert set(quantized) == set(before), set(before) ^ set(quantized)
    for name, (kind, scales, q) in quantized.items():
        w = before[name][2]
        assert kind == "INT8" and scales.shape == (w.shape[0],)  # one scale per output row
        np.testing.assert_allclose(scales, np.abs(w).max(axis=1) / 127, rtol=1e-6)
        assert np.abs(q * scales[:, None] - w).max() <= scales.max() / 2 + 1e-7
        assert np.abs(q).max(axis=1).min() == 127  # each row uses the full range
    assert not [n for n, (kind, _, _) in after.items() if kind == "FLOAT32"]  # no float copy stored
    fc = _consumers(small, "FULLY_CONNECTED")
    hybrid_ops = sum(inputs[1] == "INT8" for inputs in fc)
    expected = {"none": 0, "body": len(fc) - 1, "all": len(fc)}[hybrid]  # body: the output projection stays float
    assert hybrid_ops == expected, fc
    assert len(_consumers(small, "DEQUANTIZE")) == {"none": len(quantized), "body": 1, "all": 1}[hybrid]
    report = decoder_agreement(tiny_lm, small, IDS)
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff"] < 0.5, report
    assert 4 * sum(v.nbytes for _, _, v in after.values()) == sum(v.nbytes for _, _, v in before.values())
    assert len(small) < len(blob)
    if hybrid == "none":  # float32 arithmetic on the rounded weights: the same logits as a float file of them
        got = TFLiteDecoder(small).feed(IDS)
        expected = TFLiteDecoder(_rounded_float_copy(blob)).feed(IDS)
        assert np.abs(got - expected).max() < 1e-4


def _rounded_float_copy(blob):
    """The float32 file with every matrix replaced by its per-row int8 rounding (``q * scale``, kept float32)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(blob))
    done = set()
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            data = model.buffers[tensor.buffer].data
            if data is None or len(tensor.shape) != 2 or tensor.buffer in done:
                continue
            w = np.frombuffer(data.tobytes(), np.float32).reshape(tensor.shape)
            scale = np.abs(w).max(axis=1, keepdims=True) / 127
            model.buffers[tensor.buffer].data = (np.round(w / scale) * scale).astype(np.float32).reshape(-1).view(np.uint8)
            done.add(tensor.buffer)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_int8_weights_can_leave_the_embedding_float(tiny_lm, blob):
    small = int8_weights(blob, embedding=False, min_elements=64)
    vocab = tiny_lm.tokenizer.vocabulary_size
    kinds = {name: (kind, values.shape) for name, (kind, _, values) in _weights(small).items()}
    assert [k for k, shape in kinds.values() if shape[0] == vocab] == ["FLOAT32"]  # gather + projection, once
    assert sum(k == "INT8" for k, _ in kinds.values()) == len(kinds) - 1
    assert decoder_agreement(tiny_lm, small, IDS)["top1_agreement"] == 1.0


def test_int8_weight_only_is_closer_than_hybrid(tiny_lm, blob):
    diffs = {h: decoder_agreement(tiny_lm, int8_weights(blob, hybrid=h, min_elements=64), IDS)["max_abs_diff"]
             for h in ("none", "all")}
    assert diffs["none"] < diffs["all"], diffs


def test_save_decoder_ships_only_a_passing_file(tiny_lm, tmp_path):
    import json

    strict = {"min_top1_agreement": 1.0, "max_perplexity_change": 1e-5}  # int8 rounding moves perplexity more
    with pytest.warns(UserWarning, match=r"int8 failed its gate \(perplexity change .*\); float32 passed and was "
                                         r"written instead"):
        paths = save_decoder(tiny_lm, str(tmp_path / "a"), cache_length=32, prefill_tokens=None, quantization="int8",
                             gate_texts=[IDS], fallback=(None,), **strict)
    sidecar = json.loads(open(paths["sidecar"]).read())
    assert paths["quantization"] is None and paths["gate"].passed
    assert sidecar["quantization"] == "float32" and sidecar["requested"] == "int8"
    assert sidecar["rejected"][0]["variant"] == "int8" and "perplexity change" in sidecar["rejected"][0]["failures"][-1]
    assert sidecar["gate"]["passed"] and sidecar["gate"]["variant"] == "float32"
    none_pass = save_decoder(tiny_lm, str(tmp_path / "b"), cache_length=32, prefill_tokens=None,
                             quantization="int8", gate_texts=[IDS], fallback=(), **strict)
    assert none_pass["quantization"] == "int8" and not none_pass["gate"].passed and none_pass["rejected"] == []
    ungated = save_decoder(tiny_lm, str(tmp_path / "c"), cache_length=32, prefill_tokens=None, quantization="int8")
    assert ungated["gate"] is None and json.loads(open(ungated["sidecar"]).read())["quantization"] == "int8"
    with pytest.raises(ArgumentError, match="`fallback` must hold variants among"):
        save_decoder(tiny_lm, str(tmp_path / "d"), cache_length=32, fallback=("int4",))


def test_gate_default_limits(tiny_lm, blob):
    report = decoder_gate(tiny_lm, blob, [IDS], variant="float32")
    assert report.passed and report.top1_agreement == 1.0 and abs(report.perplexity_change) < 1e-4
    assert report.to_dict()["thresholds"] == {"min_top1_agreement": 0.99, "max_perplexity_change": 0.02}


def test_errors(tiny_lm, blob):
    with pytest.raises(ArgumentError, match="`quantization` must be one of"):
        convert_decoder_tflite(tiny_lm, cache_length=32, quantization="int4")
    with pytest.raises(ArgumentError, match="`hybrid` must be one of"):
        int8_weights(blob, hybrid="some")
    with pytest.raises(ArgumentError, match="`cache_length` must be an int in \\[1, 64\\]"):
        convert_decoder_tflite(tiny_lm, cache_length=100)
    with pytest.raises(ArgumentError, match="`prefill_tokens` must be an int in \\[2, 32\\]"):
        convert_decoder_tflite(tiny_lm, cache_length=32, prefill_tokens=40)
    with pytest.raises(ArgumentError, match="`texts` must be a non-empty list"):
        decoder_gate(tiny_lm, blob, "one string")
    with pytest.raises(ArgumentTypeError, match="`texts` must be a list of held-out strings.*Received: texts=None"):
        decoder_gate(tiny_lm, blob, None)
    # a generator is read once, as a list (len() of it was a raw TypeError)
    assert decoder_gate(tiny_lm, blob, (ids for ids in [IDS])).positions == len(IDS)
    with pytest.raises(ArgumentError, match="`min_top1_agreement`"):
        decoder_gate(tiny_lm, blob, [IDS], min_top1_agreement=2)
    decoder = TFLiteDecoder(blob)
    with pytest.raises(ArgumentError, match="at least one id"):
        decoder.feed([])
    decoder.feed([1] * 32)
    with pytest.raises(ArgumentError, match="would pass the cache length 32"):
        decoder.feed([1])
