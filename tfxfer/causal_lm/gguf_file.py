"""Read a GGUF file (llama.cpp's format) into a `GGUFCheckpoint`: hyperparameters, vocabulary, tensors.

Only what tfxfer can rebuild exactly is accepted, and everything else is refused up front with
the reason, before any tensor is converted:

* architecture ``llama`` (Llama 1/2, SmolLM/SmolLM2, TinyLlama-style models) with full rotary
  embeddings, no rope scaling, no mixture of experts and no attention biases;
* tensor types in `SUPPORTED_TENSOR_TYPES` (float, the legacy block quantizations and the k-quants
  that the ``gguf`` package dequantizes in numpy);
* a byte-level BPE vocabulary (``tokenizer.ggml.model == "gpt2"``) with a pre-tokenizer in
  `tfxfer.causal_lm.tokenizer.PRE_TOKENIZERS`.

Tensors are dequantized to float32 on demand with the ``gguf`` package's own numpy code (the
same dequantization llama.cpp's reference uses), in llama.cpp's layout: a projection is
``(out_features, in_features)``; query and key rows are in llama.cpp's rotary order (see
`tfxfer.causal_lm.weights`).

Example:
    >>> from tfxfer.causal_lm.gguf_file import read_gguf
    >>> ckpt = read_gguf(path)                                 # doctest: +SKIP
    >>> ckpt.config.num_layers, ckpt.vocab.pre                 # doctest: +SKIP
    (30, 'smollm')
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfxfer.causal_lm.config import LlamaConfig
from tfxfer.errors import ArgumentError, MissingDependencyError, ModelError

SUPPORTED_ARCHITECTURES = ("llama",)
#: GGML tensor types tfxfer dequantizes (through ``gguf.quants.dequantize``).
SUPPORTED_TENSOR_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                          "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
#: Metadata keys whose presence means a variant tfxfer would not rebuild exactly.
_REFUSED_KEYS = {
    "llama.expert_count": "mixture-of-experts layers",
    "llama.rope.scaling.type": "rope scaling",
    "llama.rope.scaling.factor": "rope scaling",
}
INSTALL_GGUF = 'pip install "gguf==0.19.0"'


@dataclasses.dataclass(frozen=True)
class GGUFVocabulary:
    """The tokenizer fields of a GGUF file (``tokenizer.ggml.*``)."""

    model: str
    pre: str
    tokens: tuple
    token_types: tuple
    merges: tuple
    bos_token_id: int | None
    eos_token_id: int | None
    pad_token_id: int | None
    unknown_token_id: int | None
    add_bos_token: bool
    chat_template: str | None = None

    @property
    def special_tokens(self) -> tuple:
        """Control tokens (GGML token type 3) and user-defined ones (type 4), in id order."""
        return tuple(t for t, kind in zip(self.tokens, self.token_types) if kind in (3, 4))


@dataclasses.dataclass(frozen=True, eq=False)
class GGUFCheckpoint:
    """A GGUF file's hyperparameters (`LlamaConfig`), vocabulary and tensors (read lazily)."""

    path: str
    architecture: str
    config: LlamaConfig
    vocab: GGUFVocabulary
    tensor_types: dict
    name: str = ""
    _tensors: dict = dataclasses.field(default_factory=dict, repr=False)  # name -> ReaderTensor

    @property
    def tensor_names(self) -> tuple:
        return tuple(self.tensor_types)

    def tensor(self, name: str) -> np.ndarray:
        """Tensor ``name`` dequantized to float32, in llama.cpp's (out, in) layout."""
        from gguf.quants import dequantize

        if name not in self.tensor_types:
            raise ArgumentError("name", name, f"must be a tensor of {self.path}")
        info = self._tensors[name]
        return np.asarray(dequantize(info.data, info.tensor_type), dtype=np.float32)


def _gguf():
    try:
        import gguf
    except ImportError as e:  # pragma: no cover - gguf is a declared dependency
        raise MissingDependencyError("gguf", INSTALL_GGUF, "reading GGUF checkpoints") from e
    return gguf


def _field(reader, key, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def _required(reader, key, path):
    value = _field(reader, key)
    if value is None:
        raise ModelError(f"GGUF file {path!r} has no {key!r} entry; cannot rebuild the model")
    return value


def read_gguf(path: str | os.PathLike) -> GGUFCheckpoint:
    """Open a GGUF file and check that tfxfer can rebuild it exactly.

    Raises:
        ArgumentError: ``path`` is not a file.
        ModelError: another architecture, an unsupported tensor type, rope scaling, experts,
            attention biases or a non-BPE vocabulary; the message names what was found.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ArgumentError("path", path, "must be an existing .gguf file")
    gguf = _gguf()
    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError, KeyError) as e:
        raise ModelError(f"{path!r} is not a readable GGUF file: {e}") from e
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"GGUF architecture {arch!r} in {path!r} is not supported; tfxfer rebuilds "
            f"{', '.join(SUPPORTED_ARCHITECTURES)} models only")
    for key, what in _REFUSED_KEYS.items():
        value = _field(reader, key)
        if value not in (None, 0, "none"):
            raise ModelError(f"GGUF file {path!r} uses {what} ({key}={value!r}); tfxfer does not "
                             "rebuild it exactly")
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    bad = {n: t for n, t in types.items() if t not in SUPPORTED_TENSOR_TYPES}
    if bad:
        shown = ", ".join(f"{n}={t}" for n, t in list(bad.items())[:4])
        raise ModelError(
            f"GGUF file {path!r} has tensor types tfxfer cannot dequantize ({shown}"
            f"{', ...' if len(bad) > 4 else ''}); supported: {', '.join(SUPPORTED_TENSOR_TYPES)}")
    biases = [n for n in types if n.endswith(".bias")]
    if biases or "rope_freqs.weight" in types:
        extra = biases[:3] or ["rope_freqs.weight"]
        raise ModelError(f"GGUF file {path!r} has tensors a plain Llama does not ({', '.join(extra)}); "
                         "tfxfer does not rebuild that variant")
    config = _config(reader, path)
    return GGUFCheckpoint(path=path, architecture=arch, config=config, vocab=_vocabulary(reader, path),
                          tensor_types=types, name=str(_field(reader, "general.name", "")),
                          _tensors={t.name: t for t in reader.tensors})


def _config(reader, path) -> LlamaConfig:
    embed = next((t for t in reader.tensors if t.name == "token_embd.weight"), None)
    if embed is None:
        raise ModelError(f"GGUF file {path!r} has no token_embd.weight tensor (the token embeddings); "
                         "it is not a complete Llama model")
    embed_shape = [int(d) for d in embed.shape]
    if len(embed_shape) != 2:
        raise ModelError(f"GGUF file {path!r}: token_embd.weight has shape {embed_shape}, not "
                         "[hidden size, vocabulary size]")
    hidden = int(_required(reader, "llama.embedding_length", path))
    heads = int(_required(reader, "llama.attention.head_count", path))
    head_dim = hidden // heads
    rope_dims = int(_field(reader, "llama.rope.dimension_count", head_dim))
    key_length = int(_field(reader, "llama.attention.key_length", head_dim))
    if rope_dims != head_dim or key_length != head_dim or hidden % heads:
        raise ModelError(
            f"GGUF file {path!r}: rotary dimension {rope_dims} / key length {key_length} differ from "
            f"the head size {hidden}/{heads}; partial rotary embeddings are not supported")
    vocab_size = int(_field(reader, "llama.vocab_size", embed_shape[1]))
    tied = not any(t.name == "output.weight" for t in reader.tensors)
    return LlamaConfig(
        vocabulary_size=vocab_size,
        num_layers=int(_required(reader, "llama.block_count", path)),
        num_query_heads=heads,
        num_key_value_heads=int(_field(reader, "llama.attention.head_count_kv", heads)),
        hidden_dim=hidden,
        intermediate_dim=int(_required(reader, "llama.feed_forward_length", path)),
        rope_max_wavelength=float(_field(reader, "llama.rope.freq_base", 10000.0)),
        layer_norm_epsilon=float(_required(reader, "llama.attention.layer_norm_rms_epsilon", path)),
        context_length=int(_required(reader, "llama.context_length", path)),
        tie_word_embeddings=tied,
    )


def _vocabulary(reader, path) -> GGUFVocabulary:
    from tfxfer.causal_lm.tokenizer import PRE_TOKENIZERS

    model = _field(reader, "tokenizer.ggml.model")
    pre = _field(reader, "tokenizer.ggml.pre", "default")
    if model != "gpt2":
        raise ModelError(f"GGUF file {path!r} has a {model!r} vocabulary; tfxfer reads byte-level BPE "
                         "('gpt2') vocabularies only")
    if pre not in PRE_TOKENIZERS:
        raise ModelError(f"GGUF file {path!r} uses the pre-tokenizer {pre!r}; supported: "
                         f"{', '.join(sorted(PRE_TOKENIZERS))}")

    def token_id(key):
        value = _field(reader, f"tokenizer.ggml.{key}")
        return None if value is None else int(value)

    return GGUFVocabulary(
        model=model, pre=pre,
        tokens=tuple(_required(reader, "tokenizer.ggml.tokens", path)),
        token_types=tuple(int(t) for t in _field(reader, "tokenizer.ggml.token_type", [])),
        merges=tuple(_required(reader, "tokenizer.ggml.merges", path)),
        bos_token_id=token_id("bos_token_id"), eos_token_id=token_id("eos_token_id"),
        pad_token_id=token_id("padding_token_id"), unknown_token_id=token_id("unknown_token_id"),
        add_bos_token=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
        chat_template=_field(reader, "tokenizer.chat_template"),
    )
