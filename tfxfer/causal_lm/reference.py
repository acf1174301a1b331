"""A numpy forward pass of a GGUF Llama, written from llama.cpp's semantics: the parity reference.

It reads the tensors straight from the `GGUFCheckpoint` (dequantized by the ``gguf`` package), in
llama.cpp's layout, and rotates *adjacent* pairs of each query/key head (llama.cpp's "normal"
rope for ``llama``) — none of `tfxfer.causal_lm.weights`' rearrangements are reused, so agreement
with the Keras model proves the port (tensor mapping, rotary order, grouped KV heads, RMSNorm,
SwiGLU, tied output) rather than repeating it. Computed in float64.

Example:
    >>> from tfxfer.causal_lm.reference import reference_logits, logit_parity
    >>> logits = reference_logits(ckpt, ids)                    # doctest: +SKIP
    >>> logit_parity(lm.model, ckpt, ids)                       # doctest: +SKIP
    {'max_abs_diff': 0.0001..., 'max_rel_diff': 3.0...e-06, 'argmax_agreement': 1.0, 'positions': 21}
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError


def _rms_norm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _rope_interleaved(x, positions, base):
    """Rotate adjacent pairs (2j, 2j+1) of the last axis: x is (tokens, heads, head_dim)."""
    head_dim = x.shape[-1]
    inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    angles = positions[:, None].astype(np.float64) * inv_freq[None, :]  # (tokens, head_dim/2)
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


def reference_logits(checkpoint, token_ids) -> np.ndarray:
    """Next-token logits ``(len(token_ids), vocabulary_size)`` for one causal sequence."""
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    config = checkpoint.config
    if ids.size == 0 or ids.min() < 0 or ids.max() >= config.vocabulary_size:
        raise ArgumentError("token_ids", token_ids,
                            f"must be a non-empty sequence of ids in [0, {config.vocabulary_size})")

    def w(name):
        return checkpoint.tensor(name).astype(np.float64)

    eps, heads, kv_heads, head_dim = (config.layer_norm_epsilon, config.num_query_heads,
                                      config.num_key_value_heads, config.head_dim)
    n = ids.size
    positions = np.arange(n)
    embeddings = w("token_embd.weight")
    x = embeddings[ids]
    causal = np.triu(np.full((n, n), -np.inf), k=1)
    for i in range(config.num_layers):
        p = f"blk.{i}."
        h = _rms_norm(x, w(p + "attn_norm.weight"), eps)
        q = (h @ w(p + "attn_q.weight").T).reshape(n, heads, head_dim)
        k = (h @ w(p + "attn_k.weight").T).reshape(n, kv_heads, head_dim)
        v = (h @ w(p + "attn_v.weight").T).reshape(n, kv_heads, head_dim)
        q = _rope_interleaved(q, positions, config.rope_max_wavelength)
        k = _rope_interleaved(k, positions, config.rope_max_wavelength)
        group = heads // kv_heads
        attended = np.empty((n, heads, head_dim))
        for head in range(heads):
            kv = head // group  # llama.cpp: query head h reads KV head h // (heads / kv_heads)
            scores = q[:, head] @ k[:, kv].T / np.sqrt(head_dim) + causal
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            attended[:, head] = (scores / scores.sum(axis=-1, keepdims=True)) @ v[:, kv]
        x = x + attended.reshape(n, heads * head_dim) @ w(p + "attn_output.weight").T
        h = _rms_norm(x, w(p + "ffn_norm.weight"), eps)
        gate = h @ w(p + "ffn_gate.weight").T
        up = h @ w(p + "ffn_up.weight").T
        x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w(p + "ffn_down.weight").T
    x = _rms_norm(x, w("output_norm.weight"), eps)
    output = embeddings if "output.weight" not in checkpoint.tensor_types else w("output.weight")
    return x @ output.T


def keras_logits(model, token_ids) -> np.ndarray:
    """Logits of a keras-hub causal LM (or its backbone's tokens) for one sequence, as float64."""
    ids = np.asarray(token_ids, dtype="int32").reshape(1, -1)
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids, dtype=bool)}
    return np.asarray(model(inputs, training=False), dtype=np.float64)[0]


def logit_parity(model, checkpoint, token_ids) -> dict:
    """Compare the Keras model with `reference_logits` on ``token_ids``.

    Returns ``max_abs_diff`` (largest absolute logit difference), ``max_rel_diff`` (that divided
    by the largest absolute reference logit), ``argmax_agreement`` (fraction of positions whose
    top token is the same) and ``positions``.
    """
    expected = reference_logits(checkpoint, token_ids)
    got = keras_logits(model, token_ids)
    diff = float(np.max(np.abs(got - expected)))
    return {
        "max_abs_diff": diff,
        "max_rel_diff": diff / float(np.max(np.abs(expected))),
        "argmax_agreement": float(np.mean(got.argmax(-1) == expected.argmax(-1))),
        "positions": int(expected.shape[0]),
    }
