"""Tiny GGUF files written the way llama.cpp's converter writes a Hugging Face Llama.

Weights are drawn in Hugging Face's layout, query/key rows are permuted with llama.cpp's own
formula (written out here, not imported from tfxfer), and the file carries a byte-level BPE
vocabulary: three control tokens, the 256 byte tokens and a few merges.
"""

from __future__ import annotations

import numpy as np

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "Ġa n", "Ġan d", "o n"]


def byte_tokens():
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def tiny_tokens():
    merged = ["".join(m.split(" ")) for m in MERGES]
    return SPECIALS + byte_tokens() + merged


def llama_cpp_permute(weights, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute (Hugging Face rotate-half -> interleaved rows)."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_tiny_gguf(path, *, arch="llama", num_layers=2, hidden=16, heads=4, kv_heads=2, ffn=32,
                    tensor_type="F32", tied=True, pre="smollm", tokenizer_model="gpt2", extra=None,
                    extra_tensors=None, seed=0, context_length=64, scale=0.3, hf_dir=None):
    """Write a random Llama GGUF to ``path`` (and, with ``hf_dir``, the same model as a Hugging
    Face directory); returns the vocabulary size."""
    import gguf
    from gguf.quants import quantize

    rng = np.random.default_rng(seed)
    tokens = tiny_tokens()
    vocab = len(tokens)
    head_dim = hidden // heads
    qtype = gguf.GGMLQuantizationType[tensor_type]

    def rand(*shape):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(num_layers)
    writer.add_context_length(context_length)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model(tokenizer_model)
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(SPECIALS) + [1] * (vocab - len(SPECIALS)))
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_add_bos_token(False)
    for key, value in (extra or {}).items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_uint32(key, value)

    hf = {}

    def add(name, array, *, norm=False, hf_name=None, hf_array=None):
        hf[hf_name] = array if hf_array is None else hf_array
        if norm or tensor_type == "F32":
            writer.add_tensor(name, array.astype(np.float32))
        else:
            writer.add_tensor(name, quantize(array, qtype), raw_dtype=qtype)

    add("token_embd.weight", rand(vocab, hidden), hf_name="model.embed_tokens.weight")
    for i in range(num_layers):
        p, h = f"blk.{i}.", f"model.layers.{i}."
        q, k = rand(heads * head_dim, hidden), rand(kv_heads * head_dim, hidden)
        add(p + "attn_norm.weight", 1.0 + rand(hidden), norm=True, hf_name=h + "input_layernorm.weight")
        add(p + "attn_q.weight", llama_cpp_permute(q, heads), hf_name=h + "self_attn.q_proj.weight", hf_array=q)
        add(p + "attn_k.weight", llama_cpp_permute(k, kv_heads), hf_name=h + "self_attn.k_proj.weight",
            hf_array=k)
        add(p + "attn_v.weight", rand(kv_heads * head_dim, hidden), hf_name=h + "self_attn.v_proj.weight")
        add(p + "attn_output.weight", rand(hidden, heads * head_dim), hf_name=h + "self_attn.o_proj.weight")
        add(p + "ffn_norm.weight", 1.0 + rand(hidden), norm=True, hf_name=h + "post_attention_layernorm.weight")
        add(p + "ffn_gate.weight", rand(ffn, hidden), hf_name=h + "mlp.gate_proj.weight")
        add(p + "ffn_up.weight", rand(ffn, hidden), hf_name=h + "mlp.up_proj.weight")
        add(p + "ffn_down.weight", rand(hidden, ffn), hf_name=h + "mlp.down_proj.weight")
    add("output_norm.weight", 1.0 + rand(hidden), norm=True, hf_name="model.norm.weight")
    if not tied:
        add("output.weight", rand(vocab, hidden), hf_name="lm_head.weight")
    for name, (array, raw_type) in (extra_tensors or {}).items():
        writer.add_tensor(name, array, raw_dtype=gguf.GGMLQuantizationType[raw_type] if raw_type else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if hf_dir is not None:
        _write_hf_dir(hf_dir, hf, tied=tied, vocab=vocab, hidden=hidden, heads=heads, kv_heads=kv_heads,
                      ffn=ffn, num_layers=num_layers, context_length=context_length, pre=pre)
    return vocab


def _write_hf_dir(path, weights, *, tied, vocab, hidden, heads, kv_heads, ffn, num_layers, context_length,
                  pre):
    import json
    import os

    from safetensors.numpy import save_file

    from tfxfer.causal_lm.tokenizer import BPETokenizer

    os.makedirs(path, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, os.path.join(path, "model.safetensors"))
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
              "intermediate_size": ffn, "num_attention_heads": heads, "num_hidden_layers": num_layers,
              "num_key_value_heads": kv_heads, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "vocab_size": vocab, "max_position_embeddings": context_length, "tie_word_embeddings": tied,
              "torch_dtype": "float32", "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    tokenizer = BPETokenizer(tokens=tiny_tokens(), merges=MERGES, pre=pre, special_tokens=SPECIALS)
    with open(os.path.join(path, "tokenizer.json"), "w") as f:
        f.write(tokenizer.to_json())
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
                   "add_bos_token": False}, f)
