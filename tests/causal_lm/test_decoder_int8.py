"""Block-wise int8 decoder files (`tfxfer.export.decoder_int8`): int8 blocks with per-block scales and exact
block offsets, float32 arithmetic, builtin ops; exact on GGUF Q8_0 / Q4_1 weight grids; shipped by
`save_decoder` and run by the TensorFlow-free ``export/llm_runner.py``."""

import os
import sys

import numpy as np
import pytest

from tests.causal_lm.helpers import write_tiny_gguf
from tfxfer.errors import ArgumentError
from tfxfer.export.decoder_int8 import int8_block_weights, quantize_blocks
from tfxfer.export.decoder_runner import TFLiteDecoder
from tfxfer.export.decoder_tflite import convert_decoder_tflite, save_decoder
from tfxfer.export.decoder_verification import decoder_agreement
from tfxfer.export.int8_per_row import int8_weights

IDS = [3, 40, 71, 260, 3, 261, 90, 33, 5, 9, 44, 120]
EXPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "export")


def _model(blob):
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(blob))


def _op_names(blob):
    from tensorflow.lite.tools import flatbuffer_utils

    model = _model(blob)
    return [flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in model.subgraphs[0].operators]


def _lm(root, **options):
    from tfxfer.causal_lm import load_causal_lm

    write_tiny_gguf(root / "tiny.gguf", **options)
    return load_causal_lm(str(root / "tiny.gguf"), cache_dir=str(root / "cache"))


@pytest.fixture(scope="module")
def f32_blob(tiny_lm):
    return convert_decoder_tflite(tiny_lm, cache_length=32, prefill_tokens=4)


def test_quantize_blocks_bounds_and_grids():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 64)) + rng.uniform(-2, 2, (6, 1))  # rows off-centre: asymmetric wins
    for asymmetric in (False, True):
        codes, scales, offsets, deq = quantize_blocks(w, 16, asymmetric=asymmetric)
        assert codes.dtype == np.int8 and codes.shape == (24, 16) and scales.shape == (24,)
        step = scales.reshape(6, 4).repeat(16, axis=1)
        assert np.all(np.abs(deq - w) <= step / 2 + 1e-12)
        assert (offsets is None) == (not asymmetric)
    sym = np.linalg.norm(quantize_blocks(w, 16, asymmetric=False)[3] - w)
    asym = np.linalg.norm(quantize_blocks(w, 16, asymmetric=True)[3] - w)
    assert asym < sym
    # a Q4_1-style block (16 levels between a minimum and a maximum) is reproduced exactly
    grid = -0.37 + 0.021 * rng.integers(0, 16, (4, 32)).astype(np.float64)
    grid[:, 0], grid[:, 1] = -0.37, -0.37 + 15 * 0.021
    assert np.abs(quantize_blocks(grid, 32, asymmetric=True)[3] - grid).max() < 1e-7
    assert np.abs(quantize_blocks(grid, 32, asymmetric=False)[3] - grid).max() > 1e-4


def _rounded_float_copy(blob, block, schemes):
    """The float32 file with each matrix replaced by its block rounding (kept float32)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = _model(blob)
    done = set()
    for tensor in model.subgraphs[0].tensors:
        name = tensor.name.decode()
        if name not in schemes or tensor.buffer in done:
            continue
        w = np.frombuffer(model.buffers[tensor.buffer].data.tobytes(), np.float32).reshape(tensor.shape)
        deq = quantize_blocks(w, schemes[name]["block"], asymmetric=schemes[name]["scheme"] == "asymmetric")[3]
        model.buffers[tensor.buffer].data = deq.astype(np.float32).reshape(-1).view(np.uint8)
        done.add(tensor.buffer)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_int8_blocks_in_the_file_and_exact_arithmetic(tiny_lm, f32_blob):
    schemes = {}
    small = int8_block_weights(f32_blob, block=8, min_elements=64, report=schemes)
    model = _model(small)
    graph = model.subgraphs[0]
    int8 = [t for t in graph.tensors if t.type == 9]  # INT8
    assert len(schemes) == 2 * 7 + 1
    for tensor in int8:  # one [rows, 8] int8 matrix per block of 8 inputs, its per-row scales the block scales
        rows, block = (int(d) for d in tensor.shape)
        assert block == 8 and len(tensor.quantization.scale) == rows
        assert len(model.buffers[tensor.buffer].data) == rows * block  # one byte per weight
    assert sum(t.shape[0] * t.shape[1] for t in int8) == sum(np.prod(v["shape"]) for v in schemes.values())
    assert {v["scheme"] for v in schemes.values()} == {"asymmetric"}  # random weights: asymmetric rounds closer
    vocab, hidden = tiny_lm.tokenizer.vocabulary_size, tiny_lm.backbone.hidden_dim
    floats = [[int(d) for d in t.shape] for t in graph.tensors
              if t.type == 0 and model.buffers[t.buffer].data is not None]
    assert [vocab, hidden] not in floats and [vocab, hidden // 8] in floats  # no float table, its block offsets
    ops = _op_names(small)
    assert ops.count("DEQUANTIZE") == len(int8) and "RESHAPE" not in set(ops) - set(_op_names(f32_blob))
    fc = [v for v in schemes.values() if v["shape"][0] != vocab] + [{"shape": [vocab, hidden]}]  # + the tied projection
    blocks = sum(v["shape"][1] // 8 for v in fc)
    # per projection: block products summed (blocks - 1 ADDs) and one ADD of the offsets; one for the gathered rows
    assert ops.count("ADD") == _op_names(f32_blob).count("ADD") + blocks - len(fc) + len(fc) + 1
    assert ops.count("SPLIT") - _op_names(f32_blob).count("SPLIT") == len(fc)
    assert ops.count("GATHER") == hidden // 8 + 1 and ops.count("CONCATENATION") == 1  # rows per block + offsets
    assert not any(op.startswith("FLEX") or op == "CUSTOM" for op in ops)
    # the offset corrections make the file compute exactly (float32) with the rounded weights, both signatures
    got = TFLiteDecoder(small).feed(IDS)  # 3 prefill chunks
    expected = TFLiteDecoder(_rounded_float_copy(f32_blob, 8, schemes)).feed(IDS)
    assert np.abs(got - expected).max() < 1e-4
    report = decoder_agreement(tiny_lm, small, IDS)
    assert report["top1_agreement"] == 1.0 and report["max_abs_diff"] < 0.5, report


def test_symmetric_scheme_needs_no_correction(f32_blob):
    schemes = {}
    small = int8_block_weights(f32_blob, block=8, scheme="symmetric", min_elements=64, report=schemes)
    assert {v["scheme"] for v in schemes.values()} == {"symmetric"}
    graph = _model(small).subgraphs[0]
    assert not [t for t in graph.tensors if t.name.endswith(b"/offsets") or t.name.endswith(b"/block_sums")]
    assert _op_names(small).count("GATHER") == _op_names(f32_blob).count("GATHER") * 2  # hidden 16: 2 blocks of 8
    expected = TFLiteDecoder(_rounded_float_copy(f32_blob, 8, schemes)).feed(IDS)
    assert np.abs(TFLiteDecoder(small).feed(IDS) - expected).max() < 1e-4


@pytest.mark.parametrize("tensor_type", ["Q8_0", "Q4_1"])
def test_exact_on_gguf_grids(tmp_path, tensor_type):
    """A model dequantized from Q8_0 / Q4_1 blocks of 32 is reproduced to float32 rounding (per-row int8 is not)."""
    lm = _lm(tmp_path, tensor_type=tensor_type, hidden=32, heads=4, kv_heads=2, ffn=64)
    f32 = convert_decoder_tflite(lm, cache_length=32, prefill_tokens=None)
    schemes = {}
    small = int8_block_weights(f32, min_elements=64, report=schemes)
    assert len(schemes) == 2 * 7 + 1 and all(v["block"] == 32 for v in schemes.values())
    exact = decoder_agreement(lm, small, IDS)
    per_row = decoder_agreement(lm, int8_weights(f32, min_elements=64), IDS)
    assert exact["top1_agreement"] == 1.0 and per_row["max_abs_diff"] > 1e-3, (exact, per_row)
    assert max(v["relative_error"] for v in schemes.values()) < 1e-6 and exact["max_abs_diff"] < 1e-4
    expected = "symmetric" if tensor_type == "Q8_0" else "asymmetric"  # the grid's own kind of block
    assert {v["scheme"] for v in schemes.values()} == {expected}, schemes


def test_save_decoder_int8_block_runs_without_tensorflow(tmp_path):
    import json

    sys.path.insert(0, EXPORT)
    import llm_runner

    from tfxfer.causal_lm import generate_ids

    lm = _lm(tmp_path, tensor_type="Q8_0", hidden=32, heads=4, kv_heads=2, ffn=64)
    paths = save_decoder(lm, str(tmp_path / "out"), cache_length=32, prefill_tokens=4, quantization="int8_block",
                         gate_texts=[IDS, "the and then on"])
    assert paths["quantization"] == "int8_block" and paths["gate"].passed and paths["rejected"] == []
    assert json.loads(open(paths["sidecar"]).read())["quantization"] == "int8_block"
    runner = llm_runner.LLMRunner(paths["sidecar"])
    ids = lm.tokenizer.encode("the and then on")
    expected = generate_ids(lm, [ids], max_new_tokens=8, stop_token_ids=(lm.tokenizer.eos_token_id,))[0]
    assert runner.generate("the and then on", max_new_tokens=8)["token_ids"] == [int(i) for i in expected]


def test_errors(f32_blob):
    with pytest.raises(ArgumentError, match="`block` must be an int"):
        int8_block_weights(f32_blob, block=1)
    with pytest.raises(ArgumentError, match="`scheme` must be one of"):
        int8_block_weights(f32_blob, scheme="asymmetric-only")
    with pytest.raises(ArgumentError, match="`min_elements` must be an int"):
        int8_block_weights(f32_blob, min_elements=0)
