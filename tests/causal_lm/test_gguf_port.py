"""GGUF -> keras-hub Llama: metadata, refusals, rotary permutation, logit parity on tiny files."""

import numpy as np
import pytest

from tfxfer.causal_lm import build_backbone, logit_parity, read_gguf
from tfxfer.causal_lm.weights import assign_gguf_weights, permute_rotary, unpermute_rotary
from tfxfer.errors import ArgumentError, ModelError
from tests.causal_lm.helpers import MERGES, SPECIALS, llama_cpp_permute, tiny_tokens

IDS = [1, 40, 71, 260, 3, 261, 90, 2, 100, 33]


def _keras_model(checkpoint):
    import keras_hub

    backbone = build_backbone(checkpoint.config)
    assign_gguf_weights(backbone, checkpoint)
    return keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)


def test_reads_config_and_vocabulary(tiny_gguf):
    ckpt = read_gguf(tiny_gguf(num_layers=3, hidden=16, heads=4, kv_heads=2, ffn=24))
    c = ckpt.config
    assert (c.num_layers, c.hidden_dim, c.num_query_heads, c.num_key_value_heads, c.intermediate_dim) == (
        3, 16, 4, 2, 24)
    assert (c.vocabulary_size, c.context_length, c.tie_word_embeddings) == (len(tiny_tokens()), 64, True)
    assert ckpt.vocab.pre == "smollm" and ckpt.vocab.merges == tuple(MERGES)
    assert ckpt.vocab.special_tokens == tuple(SPECIALS)
    assert (ckpt.vocab.bos_token_id, ckpt.vocab.eos_token_id) == (1, 2)


def test_permutation_is_llama_cpp_inverse():
    w = np.random.default_rng(0).standard_normal((3 * 8, 5))
    np.testing.assert_array_equal(unpermute_rotary(llama_cpp_permute(w, 3), num_heads=3), w)
    np.testing.assert_array_equal(permute_rotary(w, num_heads=3), llama_cpp_permute(w, 3))


@pytest.mark.parametrize("options", [
    {},                                       # F32, tied embeddings, grouped KV heads
    {"tied": False, "kv_heads": 4},           # separate output.weight, plain multi-head attention
    {"kv_heads": 1, "num_layers": 1},         # multi-query attention
])
def test_logit_parity_float(tiny_gguf, options):
    ckpt = read_gguf(tiny_gguf(**options))
    report = logit_parity(_keras_model(ckpt), ckpt, IDS)
    assert report["max_abs_diff"] < 1e-4, report
    assert report["argmax_agreement"] == 1.0


@pytest.mark.parametrize("tensor_type", ["Q8_0", "Q4_1"])
def test_logit_parity_quantized(tiny_gguf, tensor_type):
    # Blocks of 32 values: the input size (hidden) must be a multiple of 32.
    ckpt = read_gguf(tiny_gguf(hidden=32, heads=4, kv_heads=2, ffn=64, tensor_type=tensor_type))
    assert ckpt.tensor_types["blk.0.attn_q.weight"] == tensor_type
    report = logit_parity(_keras_model(ckpt), ckpt, IDS)
    assert report["max_abs_diff"] < 1e-4 and report["argmax_agreement"] == 1.0, report


def test_parity_detects_a_missing_unpermutation(tiny_gguf, monkeypatch):
    """Without undoing llama.cpp's row order, the port is wrong and the check says so."""
    ckpt = read_gguf(tiny_gguf(scale=1.0))
    monkeypatch.setattr("tfxfer.causal_lm.weights.unpermute_rotary", lambda w, num_heads: w)
    report = logit_parity(_keras_model(ckpt), ckpt, IDS)
    assert report["max_abs_diff"] > 1e-2, report


@pytest.mark.parametrize("options, match", [
    ({"arch": "gemma"}, "architecture 'gemma'"),
    ({"extra": {"llama.rope.scaling.type": "linear"}}, "rope scaling"),
    ({"extra": {"llama.expert_count": 4}}, "mixture-of-experts"),
    ({"tokenizer_model": "llama"}, "'llama' vocabulary"),
    ({"pre": "qwen2"}, "pre-tokenizer 'qwen2'"),
])
def test_refuses_what_it_cannot_rebuild(tiny_gguf, options, match):
    with pytest.raises(ModelError, match=match):
        read_gguf(tiny_gguf(**options))


def test_refuses_unsupported_tensor_type(tiny_gguf):
    raw = np.zeros((4, 18), dtype=np.uint8)  # 4 rows of one IQ4_NL block (32 values, 18 bytes)
    path = tiny_gguf(extra_tensors={"blk.0.attn_q.extra": (raw, "IQ4_NL")})
    with pytest.raises(ModelError, match=r"blk\.0\.attn_q\.extra=IQ4_NL.*supported: F32"):
        read_gguf(path)


def test_refuses_attention_bias_and_leftover_tensors(tiny_gguf):
    bias = np.zeros(16, dtype=np.float32)
    with pytest.raises(ModelError, match=r"blk\.0\.attn_q\.bias"):
        read_gguf(tiny_gguf(extra_tensors={"blk.0.attn_q.bias": (bias, None)}))
    ckpt = read_gguf(tiny_gguf(extra_tensors={"blk.0.mystery.weight": (bias, None)}))
    with pytest.raises(ModelError, match="does not map: blk.0.mystery.weight"):
        assign_gguf_weights(build_backbone(ckpt.config), ckpt)


def test_bad_paths(tmp_path):
    with pytest.raises(ArgumentError, match="path"):
        read_gguf(tmp_path / "missing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(ModelError, match="not a readable GGUF"):
        read_gguf(junk)


def test_a_file_without_token_embeddings_names_the_tensor(tmp_path):
    """Llama metadata and no token_embd.weight raised a bare StopIteration (an empty message)."""
    import gguf

    path = str(tmp_path / "notensors.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(1)
    writer.add_context_length(16)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(["a", "b"])
    writer.add_token_merges([])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match=r"notensors.gguf' has no token_embd.weight tensor"):
        read_gguf(path)
