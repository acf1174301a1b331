"""`LanguageModel`: a keras-hub causal LM together with the tokenizer and limits it was trained with.

Everything in `tfxfer.causal_lm` (generation, perplexity, adaptation, export) takes one of these.
``model`` is a plain ``keras_hub.models.Llama3CausalLM`` without a preprocessor (token ids in,
next-token logits out), so ``model.fit``, ``backbone.enable_lora`` and Keras saving work as usual
(``lm.model.save("lm.keras")`` loads back with ``keras.models.load_model``, tied embeddings included;
`tfxfer.causal_lm.save_causal_lm` also keeps the tokenizer and the LoRA rank);
tokenization stays outside the graph in `BPETokenizer` (exact Hugging Face ids).

Example:
    >>> from tfxfer.causal_lm import LlamaConfig, build_language_model
    >>> from tfxfer.causal_lm.tokenizer import BPETokenizer, byte_vocabulary
    >>> tok = BPETokenizer(tokens=byte_vocabulary() + ["<|end|>"], merges=[],
    ...                    special_tokens=["<|end|>"], eos_token_id=256)
    >>> config = LlamaConfig(vocabulary_size=257, num_layers=1, num_query_heads=2,
    ...                      num_key_value_heads=1, hidden_dim=16, intermediate_dim=32,
    ...                      context_length=64)
    >>> lm = build_language_model(config, tok)
    >>> lm.context_length, lm.model.backbone.num_layers
    (64, 1)
"""

from __future__ import annotations

import dataclasses

from tfxfer.causal_lm.config import LlamaConfig, build_backbone
from tfxfer.errors import ArgumentError, ArgumentTypeError


@dataclasses.dataclass(frozen=True, eq=False)
class LanguageModel:
    """A causal LM (``model``), its ``tokenizer``, its ``config`` and where it came from (``name``)."""

    model: object
    tokenizer: object
    config: LlamaConfig
    name: str = ""

    @property
    def context_length(self) -> int:
        """The longest sequence (prompt plus generated tokens) the model was trained on."""
        return self.config.context_length

    @property
    def backbone(self):
        return self.model.backbone


def wrap_backbone(backbone, tokenizer, *, context_length: int, name: str = "") -> LanguageModel:
    """A `LanguageModel` around an existing keras-hub Llama backbone."""
    import keras_hub

    if not isinstance(backbone, keras_hub.models.LlamaBackbone):
        raise ArgumentTypeError("backbone", backbone, "a keras_hub.models.LlamaBackbone (or Llama3Backbone)")
    if tokenizer.vocabulary_size != backbone.vocabulary_size:
        raise ArgumentError("tokenizer", tokenizer,
                            f"must have the backbone's vocabulary size {backbone.vocabulary_size}")
    config = LlamaConfig.from_backbone(backbone, context_length=context_length)
    _config_keeps_tied_embeddings(backbone)
    model = keras_hub.models.Llama3CausalLM(backbone=backbone, preprocessor=None)
    return LanguageModel(model=model, tokenizer=tokenizer, config=config, name=name)


def _config_keeps_tied_embeddings(backbone) -> None:
    """Make ``backbone.get_config()`` record ``tie_word_embeddings``.

    keras-hub's ``LlamaBackbone.get_config`` (0.32) leaves it out, so a ``.keras`` file of a model with
    tied input/output embeddings (SmolLM2, tfxfer's default config) rebuilt an untied backbone and
    failed to load ("expected 2 variables, but received 0"). Only this instance's ``get_config`` is
    wrapped; the file names the plain keras-hub class and loads without tfxfer."""
    if "tie_word_embeddings" in backbone.get_config():
        return  # a keras-hub release that records it itself
    plain = backbone.get_config

    def get_config():
        return {**plain(), "tie_word_embeddings": bool(backbone.tie_word_embeddings)}

    backbone.get_config = get_config


def build_language_model(config: LlamaConfig, tokenizer, *, dtype: str = "float32",
                         name: str = "") -> LanguageModel:
    """A randomly initialised `LanguageModel` of ``config``'s shape (tests, training from scratch)."""
    if not isinstance(config, LlamaConfig):
        raise ArgumentTypeError("config", config, "a LlamaConfig")
    return wrap_backbone(build_backbone(config, dtype=dtype), tokenizer,
                         context_length=config.context_length, name=name)
