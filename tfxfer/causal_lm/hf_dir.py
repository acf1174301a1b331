"""A local Hugging Face Llama directory (``config.json``, ``*.safetensors``, ``tokenizer.json``)
as a `LanguageModel`: weights through keras-hub's own converter, tokenizer id for id.

Accepted: ``model_type == "llama"`` without rope scaling or attention / MLP biases (SmolLM,
SmolLM2, TinyLlama-style checkpoints), and a byte-level BPE ``tokenizer.json`` whose
pre-tokenizer is one tfxfer rebuilds (`tfxfer.causal_lm.tokenizer.PRE_TOKENIZERS`): GPT-2's
``ByteLevel`` alone, or SmolLM's ``Sequence[Digits(individual_digits), ByteLevel]``. Anything
else is refused with the reason, as a `tfxfer.errors.ModelError` naming the folder (or file)
and what is missing: no ``model.safetensors``, a ``tokenizer.json`` without ``model.vocab``, an
added token without content, a ``bos_token`` / ``eos_token`` / ``pad_token`` that is not in the
vocabulary (refused rather than loaded without it: a model with no end token would never stop).

Example:
    >>> from tfxfer.causal_lm.hf_dir import load_hf_dir
    >>> lm = load_hf_dir("SmolLM2-135M-Instruct/")              # doctest: +SKIP
"""

from __future__ import annotations

import json
import os

from tfxfer.causal_lm.config import LlamaConfig
from tfxfer.causal_lm.language_model import wrap_backbone
from tfxfer.causal_lm.tokenizer import BPETokenizer
from tfxfer.errors import ModelError


#: The weights of a Hugging Face directory: one file, or the index of a sharded set.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def is_hf_dir(path) -> bool:
    """True for a directory holding a ``config.json`` (a Hugging Face model directory)."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


def _read(path, name, required=True):
    """``name`` inside ``path`` as a JSON object; a damaged file (not UTF-8 JSON, not an object) is
    a `ModelError` naming it."""
    from tfxfer.errors import DataError
    from tfxfer.utils.jsonfile import read_json

    file = os.path.join(path, name)
    if not os.path.isfile(file):
        if required:
            raise ModelError(f"{path!r} has no {name}")
        return {}
    try:
        return read_json(file, what="Hugging Face file")
    except DataError as exc:
        raise ModelError(str(exc)) from None


def hf_config(path) -> LlamaConfig:
    """The `LlamaConfig` of a Hugging Face ``config.json``, refusing variants tfxfer does not rebuild."""
    config = _read(path, "config.json")
    if config.get("model_type") != "llama":
        raise ModelError(f"{path!r}: model_type {config.get('model_type')!r} is not supported; "
                         "tfxfer rebuilds 'llama' checkpoints only")
    for key in ("rope_scaling", "attention_bias", "mlp_bias"):
        if config.get(key):
            raise ModelError(f"{path!r}: {key}={config[key]!r} is a variant tfxfer does not rebuild exactly")
    missing = [k for k in ("vocab_size", "num_hidden_layers", "num_attention_heads", "hidden_size",
                           "intermediate_size") if k not in config]
    if missing:
        raise ModelError(f"{os.path.join(path, 'config.json')!r} has no {', '.join(missing)}")
    rope = config.get("rope_theta", (config.get("rope_parameters") or {}).get("rope_theta", 10000.0))
    heads = config["num_attention_heads"]
    return LlamaConfig(
        vocabulary_size=config["vocab_size"], num_layers=config["num_hidden_layers"],
        num_query_heads=heads, num_key_value_heads=config.get("num_key_value_heads", heads),
        hidden_dim=config["hidden_size"], intermediate_dim=config["intermediate_size"],
        rope_max_wavelength=float(rope), layer_norm_epsilon=float(config.get("rms_norm_eps", 1e-6)),
        context_length=config.get("max_position_embeddings", 2048),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)))


def _pre(spec, path) -> str:
    def byte_level(step):
        return (step.get("type") == "ByteLevel" and step.get("use_regex", True)
                and not step.get("add_prefix_space", False))

    if spec and byte_level(spec):
        return "gpt-2"
    if spec and spec.get("type") == "Sequence":
        steps = spec.get("pretokenizers", [])
        if (len(steps) == 2 and steps[0].get("type") == "Digits" and steps[0].get("individual_digits")
                and byte_level(steps[1])):
            return "smollm"
    raise ModelError(f"{path!r}: tokenizer.json pre-tokenizer {json.dumps(spec)[:200]} is not one tfxfer "
                     "rebuilds (ByteLevel, or Digits(individual_digits) + ByteLevel)")


def _vocabulary(path, spec) -> dict:
    """token -> id of ``tokenizer.json`` (``model.vocab`` and ``added_tokens``), checked."""
    where = f"{os.path.join(path, 'tokenizer.json')!r}"
    vocab = spec["model"].get("vocab")
    if not isinstance(vocab, dict) or not vocab:
        raise ModelError(f"{where} has no model.vocab (a non-empty object of token -> id); "
                         f"found {type(vocab).__name__}")
    added = spec.get("added_tokens", [])
    if not isinstance(added, list):
        raise ModelError(f"{where}: added_tokens must be a list, not {type(added).__name__}")
    vocab = dict(vocab)
    for i, token in enumerate(added):
        if not (isinstance(token, dict) and isinstance(token.get("content"), str)):
            raise ModelError(f"{where}: added_tokens[{i}] has no content (the token's text): {str(token)[:100]}")
        vocab[token["content"]] = token.get("id")
    bad = next(((t, i) for t, i in vocab.items() if not (isinstance(i, int) and not isinstance(i, bool) and i >= 0)),
               None)
    if bad:
        raise ModelError(f"{where}: token {bad[0]!r} has id {bad[1]!r}, not an int >= 0")
    return vocab


def _special_id(path, settings, key, vocab):
    """The id of the ``key`` token (``bos_token``, ...) ``tokenizer_config.json`` names, or None when
    it names none; a token the vocabulary lacks is a `ModelError` (an eos_token_id of None would
    let generation run to max_new_tokens, a bos of None drop the start token)."""
    value = settings.get(key)
    if isinstance(value, dict):
        value = value.get("content")
    if value is None:
        return None
    if not isinstance(value, str) or value not in vocab:
        raise ModelError(f"{os.path.join(path, 'tokenizer_config.json')!r}: {key} {value!r} is not a token of "
                         "tokenizer.json's vocabulary")
    return vocab[value]


def hf_tokenizer(path) -> BPETokenizer:
    """The `BPETokenizer` of a byte-level BPE ``tokenizer.json`` (plus ``tokenizer_config.json``).

    A damaged ``tokenizer.json`` (no ``model.vocab``, an added token without content) or a
    ``bos_token`` / ``eos_token`` / ``pad_token`` in ``tokenizer_config.json`` that the vocabulary
    lacks is a `ModelError` naming the file and the missing piece."""
    spec = _read(path, "tokenizer.json")
    model = spec.get("model") or {}
    if not isinstance(model, dict) or model.get("type") != "BPE" or spec.get("normalizer"):
        raise ModelError(f"{path!r}: tokenizer.json is not a plain byte-level BPE (model "
                         f"{(model.get('type') if isinstance(model, dict) else model)!r}, normalizer "
                         f"{bool(spec.get('normalizer'))})")
    vocab = _vocabulary(path, spec)
    tokens = [None] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        tokens[i] = token
    if any(t is None for t in tokens):
        raise ModelError(f"{path!r}: tokenizer.json leaves token ids unassigned")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    specials = [a["content"] for a in spec.get("added_tokens", []) if a.get("special")]
    settings = _read(path, "tokenizer_config.json", required=False)
    ids = {key: _special_id(path, settings, key, vocab) for key in ("bos_token", "eos_token", "pad_token")}
    return BPETokenizer(tokens=tokens, merges=merges, pre=_pre(spec.get("pre_tokenizer"), path),
                        special_tokens=specials, bos_token_id=ids["bos_token"],
                        eos_token_id=ids["eos_token"], pad_token_id=ids["pad_token"],
                        add_bos_token=bool(settings.get("add_bos_token", False)))


def load_hf_dir(path, *, weights: str | None = "pretrained", dtype: str = "float32"):
    """A `LanguageModel` from a local Hugging Face Llama directory (offline)."""
    import keras_hub

    from tfxfer.causal_lm.config import build_backbone

    path = os.fspath(path)
    config = hf_config(path)
    tokenizer = hf_tokenizer(path)
    if tokenizer.vocabulary_size > config.vocabulary_size:
        raise ModelError(f"{path!r}: the tokenizer has {tokenizer.vocabulary_size} tokens, the model "
                         f"{config.vocabulary_size}")
    if weights is None:
        backbone = build_backbone(config, dtype=dtype)
    else:
        if not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES):
            raise ModelError(f"{path!r} has no model.safetensors (nor a sharded model.safetensors.index.json): "
                             "the weights are missing (weights=None builds the model with random ones)")
        # keras-hub's converter does not read ``rms_norm_eps`` (it keeps its 1e-6 default; SmolLM2
        # uses 1e-5): pass the file's value.
        try:
            backbone = keras_hub.models.Llama3Backbone.from_preset(
                path, dtype=dtype, layer_norm_epsilon=config.layer_norm_epsilon)
        except FileNotFoundError as exc:  # a shard the index names is missing
            raise ModelError(f"{path!r}: a weight file is missing ({exc})") from None
    if tokenizer.vocabulary_size < config.vocabulary_size:  # padded embedding rows: unused ids
        tokenizer = BPETokenizer(**{**tokenizer.get_config(), "tokens": list(tokenizer.tokens) + [
            f"<|unused_{i}|>" for i in range(tokenizer.vocabulary_size, config.vocabulary_size)]})
    return wrap_backbone(backbone, tokenizer, context_length=config.context_length,
                         name=os.path.basename(os.path.normpath(path)))
