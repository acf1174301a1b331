"""`LlamaConfig`: the hyperparameters of a Llama-family decoder, and the keras-hub backbone they build.

The same numbers come from a GGUF file's ``llama.*`` metadata (`tfxfer.causal_lm.gguf_file`) or are
given by hand for tiny test models. `build_backbone` makes a ``keras_hub.models.Llama3Backbone``
(the class keras-hub itself uses for Hugging Face ``llama`` checkpoints such as SmolLM2), so a
model loaded from GGUF and one loaded from a keras-hub preset are the same Keras object.

Example:
    >>> from tfxfer.causal_lm.config import LlamaConfig, build_backbone
    >>> config = LlamaConfig(vocabulary_size=300, num_layers=2, num_query_heads=4,
    ...                      num_key_value_heads=2, hidden_dim=16, intermediate_dim=32)
    >>> build_backbone(config).count_params()
    9488
"""

from __future__ import annotations

import dataclasses

from tfxfer.errors import ArgumentError
from tfxfer.utils.validate import check_float, check_int


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Hyperparameters of a Llama-family decoder (RMSNorm, rotary attention with grouped KV heads,
    SwiGLU feed-forward).

    ``context_length`` is the longest sequence the model was trained on; ``rope_max_wavelength`` is
    llama.cpp's ``rope.freq_base`` (Hugging Face's ``rope_theta``).
    """

    vocabulary_size: int
    num_layers: int
    num_query_heads: int
    num_key_value_heads: int
    hidden_dim: int
    intermediate_dim: int
    rope_max_wavelength: float = 10000.0
    layer_norm_epsilon: float = 1e-5
    context_length: int = 2048
    tie_word_embeddings: bool = True

    def __post_init__(self):
        for name in ("vocabulary_size", "num_layers", "num_query_heads", "num_key_value_heads",
                     "hidden_dim", "intermediate_dim", "context_length"):
            check_int(name, getattr(self, name), low=1)
        check_float("rope_max_wavelength", self.rope_max_wavelength, low=0, low_open=True)
        check_float("layer_norm_epsilon", self.layer_norm_epsilon, low=0, low_open=True)
        if self.hidden_dim % self.num_query_heads:
            raise ArgumentError("hidden_dim", self.hidden_dim,
                                f"must be divisible by num_query_heads={self.num_query_heads}")
        if self.num_query_heads % self.num_key_value_heads:
            raise ArgumentError("num_key_value_heads", self.num_key_value_heads,
                                f"must divide num_query_heads={self.num_query_heads}")
        if (self.hidden_dim // self.num_query_heads) % 2:
            raise ArgumentError("hidden_dim", self.hidden_dim,
                                "must give an even head size (rotary embeddings rotate pairs)")

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_query_heads

    def backbone_kwargs(self) -> dict:
        """Keyword arguments of ``keras_hub.models.Llama3Backbone`` for these hyperparameters."""
        return {
            "vocabulary_size": self.vocabulary_size,
            "num_layers": self.num_layers,
            "num_query_heads": self.num_query_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "rope_max_wavelength": self.rope_max_wavelength,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "tie_word_embeddings": self.tie_word_embeddings,
        }

    @classmethod
    def from_backbone(cls, backbone, *, context_length: int) -> "LlamaConfig":
        """The hyperparameters of an existing keras-hub Llama backbone."""
        return cls(
            vocabulary_size=backbone.vocabulary_size, num_layers=backbone.num_layers,
            num_query_heads=backbone.num_query_heads, num_key_value_heads=backbone.num_key_value_heads,
            hidden_dim=backbone.hidden_dim, intermediate_dim=backbone.intermediate_dim,
            rope_max_wavelength=float(backbone.rope_max_wavelength),
            layer_norm_epsilon=float(backbone.layer_norm_epsilon), context_length=context_length,
            tie_word_embeddings=bool(backbone.tie_word_embeddings),
        )


def build_backbone(config: LlamaConfig, *, dtype: str = "float32"):
    """A randomly initialised ``keras_hub.models.Llama3Backbone`` with ``config``'s shape."""
    import keras_hub

    return keras_hub.models.Llama3Backbone(**config.backbone_kwargs(), dtype=dtype)
