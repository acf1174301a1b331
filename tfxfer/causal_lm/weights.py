"""GGUF tensors -> a keras-hub Llama backbone's variables, exactly.

The mapping (llama.cpp tensor -> ``Llama3Backbone`` variable; projections are stored by
llama.cpp as ``(out, in)`` and by Keras as ``(in, ...)``):

==============================  ==========================================================
``token_embd.weight``           ``token_embedding.embeddings`` (also the output projection
                                when the file has no ``output.weight``: tied embeddings)
``output.weight``               ``token_embedding.reverse_embeddings`` (transposed)
``blk.{i}.attn_norm.weight``    ``transformer_layer_{i}`` self-attention RMSNorm scale
``blk.{i}.attn_q/k.weight``     query / key kernels, rows put back in rotate-half order
``blk.{i}.attn_v.weight``       value kernel ``(hidden, kv_heads, head_dim)``
``blk.{i}.attn_output.weight``  output kernel ``(heads, head_dim, hidden)``
``blk.{i}.ffn_norm.weight``     feed-forward RMSNorm scale
``blk.{i}.ffn_gate/up/down``    SwiGLU gate / intermediate / output kernels
``output_norm.weight``          ``sequence_output_layernorm`` scale
==============================  ==========================================================

Rotary order: llama.cpp's converter permutes each head's query/key rows from Hugging Face's
"rotate half" layout (rotated pairs ``(j, j + d/2)``) to Meta's interleaved one (pairs
``(2j, 2j + 1)``) because llama.cpp rotates adjacent pairs for ``llama``. keras-hub rotates
halves, so `unpermute_rotary` undoes that permutation. The numpy reference
(`tfxfer.causal_lm.reference`) keeps llama.cpp's layout and interleaved rotation, so the logit
parity test checks this step rather than assuming it.

Example:
    >>> import numpy as np
    >>> w = np.arange(8.0)[:, None]            # one head of size 8, one input feature
    >>> unpermute_rotary(w, num_heads=1)[:, 0].tolist()
    [0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ModelError


def unpermute_rotary(weight: np.ndarray, *, num_heads: int) -> np.ndarray:
    """Undo llama.cpp's query/key row permutation (interleaved -> rotate-half order per head)."""
    rows = weight.shape[0]
    head_dim = rows // num_heads
    return (weight.reshape(num_heads, head_dim // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def permute_rotary(weight: np.ndarray, *, num_heads: int) -> np.ndarray:
    """llama.cpp's permutation (rotate-half -> interleaved order per head); inverse of the above."""
    rows = weight.shape[0]
    head_dim = rows // num_heads
    return (weight.reshape(num_heads, 2, head_dim // 2, *weight.shape[1:])
            .swapaxes(1, 2).reshape(weight.shape))


def gguf_variables(checkpoint) -> dict:
    """``{keras variable path: float32 array}`` for a backbone built from ``checkpoint.config``.

    Every tensor of the file is used exactly once; a missing or left-over tensor raises
    `ModelError` naming it.
    """
    config = checkpoint.config
    heads, kv_heads, head_dim, hidden = (config.num_query_heads, config.num_key_value_heads,
                                         config.head_dim, config.hidden_dim)
    used = set()

    def take(name):
        if name not in checkpoint.tensor_types:
            raise ModelError(f"GGUF file {checkpoint.path!r} has no tensor {name!r}")
        used.add(name)
        return checkpoint.tensor(name)

    out = {"token_embedding/embeddings": take("token_embd.weight")}
    if not config.tie_word_embeddings:
        out["token_embedding/reverse_embeddings"] = take("output.weight").T
    for i in range(config.num_layers):
        p, layer = f"blk.{i}.", f"transformer_layer_{i}/"
        q = unpermute_rotary(take(p + "attn_q.weight"), num_heads=heads)
        k = unpermute_rotary(take(p + "attn_k.weight"), num_heads=kv_heads)
        out[layer + "self_attention_layernorm/scale"] = take(p + "attn_norm.weight")
        out[layer + "self_attention/query/kernel"] = q.T.reshape(hidden, heads, head_dim)
        out[layer + "self_attention/key/kernel"] = k.T.reshape(hidden, kv_heads, head_dim)
        out[layer + "self_attention/value/kernel"] = (
            take(p + "attn_v.weight").T.reshape(hidden, kv_heads, head_dim))
        out[layer + "self_attention/attention_output/kernel"] = (
            take(p + "attn_output.weight").T.reshape(heads, head_dim, hidden))
        out[layer + "feedforward_layernorm/scale"] = take(p + "ffn_norm.weight")
        out[layer + "feedforward_gate_dense/kernel"] = take(p + "ffn_gate.weight").T
        out[layer + "feedforward_intermediate_dense/kernel"] = take(p + "ffn_up.weight").T
        out[layer + "feedforward_output_dense/kernel"] = take(p + "ffn_down.weight").T
    out["sequence_output_layernorm/scale"] = take("output_norm.weight")
    left = sorted(set(checkpoint.tensor_types) - used)
    if left:
        raise ModelError(f"GGUF file {checkpoint.path!r} has tensors tfxfer does not map: "
                         f"{', '.join(left[:5])}{', ...' if len(left) > 5 else ''}")
    return out


def _backbone_variables(backbone) -> dict:
    """``{path: variable}`` of a Llama backbone, keyed like `gguf_variables`."""
    found = {"token_embedding/embeddings": backbone.token_embedding.embeddings,
             "sequence_output_layernorm/scale": backbone.layer_norm.scale}
    if not backbone.tie_word_embeddings:
        found["token_embedding/reverse_embeddings"] = backbone.token_embedding.reverse_embeddings
    for i, layer in enumerate(backbone.transformer_layers):
        attention, p = layer._self_attention_layer, f"transformer_layer_{i}/"
        found.update({
            p + "self_attention_layernorm/scale": layer._self_attention_layernorm.scale,
            p + "self_attention/query/kernel": attention._query_dense.kernel,
            p + "self_attention/key/kernel": attention._key_dense.kernel,
            p + "self_attention/value/kernel": attention._value_dense.kernel,
            p + "self_attention/attention_output/kernel": attention._output_dense.kernel,
            p + "feedforward_layernorm/scale": layer._feedforward_layernorm.scale,
            p + "feedforward_gate_dense/kernel": layer._feedforward_gate_dense.kernel,
            p + "feedforward_intermediate_dense/kernel": layer._feedforward_intermediate_dense.kernel,
            p + "feedforward_output_dense/kernel": layer._feedforward_output_dense.kernel,
        })
    return found


def assign_gguf_weights(backbone, checkpoint) -> None:
    """Assign every tensor of ``checkpoint`` to ``backbone`` (built from ``checkpoint.config``).

    Raises:
        ModelError: a tensor is missing, left over, or has a shape the backbone does not.
    """
    values = gguf_variables(checkpoint)
    targets = _backbone_variables(backbone)
    if set(values) != set(targets):
        raise ModelError("The backbone does not match the GGUF file: "
                         f"{sorted(set(values) ^ set(targets))[:5]}")
    for key, variable in targets.items():
        value = values[key]
        if tuple(variable.shape) != value.shape:
            raise ModelError(f"{key}: the GGUF tensor has shape {value.shape}, the backbone "
                             f"{tuple(variable.shape)}")
        variable.assign(value.astype(variable.dtype))
