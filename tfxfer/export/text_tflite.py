"""Token-id TFLite files of text models: the converter, the tokenizer files and the sidecar.

TFLite cannot hold tf-text tokenizer ops, so the file takes token ids (float32, float16 or
dynamic-range int8) and the tokenizer ships beside it with a sidecar ``<stem>.json`` (inputs,
classes, tokenizer settings): ``<stem>.vocab.txt`` for WordPiece (BERT family, MiniLM; read by
``export/wordpiece_tokenizer.py``) or ``<stem>.vocab.json`` + ``<stem>.merges.txt`` for byte-level BPE
(RoBERTa; ``export/bpe_tokenizer.py``). The tokenizer files are named after the model file, like its
sidecar, so several models share a folder without sharing (and overwriting) a vocabulary; the sidecar's
``tokenizer`` section names them and records each one's sha256 (``tokenizer.sha256``), which
``export/litert_runner.py`` checks before it tokenizes anything. SentencePiece models (DeBERTa-v3,
ALBERT) get ``"tokenizer": null``: they need their own tokenizer on the device.
`tfxfer.export.export_all` converts, gates and benchmarks these files exactly as it does image files.

Example:
    >>> import os, tempfile
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier
    >>> from tfxfer.export import export_text_tflite
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> out = export_text_tflite(build_text_classifier(encoder, 2), os.path.join(tempfile.mkdtemp(), "m.tflite"))
    >>> sorted(os.listdir(os.path.dirname(out.path)))
    ['m.json', 'm.tflite', 'm.vocab.txt']
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np

from tfxfer.errors import ArgumentError, ExportError
from tfxfer.export.converter import base_converter
from tfxfer.text.graph import text_parts, token_model
from tfxfer.utils.atomic import atomic_path, atomic_write_bytes, atomic_write_json

#: "weight_only": the dynamic file's int8 weights (one scale per row) dequantized once at load, float32
#: arithmetic: ~4x smaller than float32 at float32's speed and fidelity; the export chain's remedy when the
#: dynamic file fails its gate (`tfxfer.export.delivery.REMEDY_OF`).
TEXT_VARIANTS = ("float32", "float16", "dynamic", "weight_only")
SIDECAR_FORMAT = "tfxfer-text-tflite"


#: The tokenizer files of a model file ``<stem>.tflite``, by tokenizer type: ``{sidecar key: file name suffix}``
#: (``<stem><suffix>``, beside the model and its sidecar ``<stem>.json``).
TOKENIZER_FILES = {"wordpiece": {"vocabulary": ".vocab.txt"},
                   "bpe": {"vocabulary": ".vocab.json", "merges": ".merges.txt"}}


def tokenizer_file_names(stem: str) -> list[str]:
    """Every tokenizer file name a text export of ``<stem>.tflite`` can write (any tokenizer type).

    Example:
        >>> tokenizer_file_names("m_float32")
        ['m_float32.merges.txt', 'm_float32.vocab.json', 'm_float32.vocab.txt']
    """
    return sorted({stem + suffix for files in TOKENIZER_FILES.values() for suffix in files.values()})


@dataclasses.dataclass
class TextTFLiteExport:
    """A written text .tflite file, its sidecar and its tokenizer files (``vocab_path``: the vocabulary;
    ``tokenizer_paths``: every tokenizer file, the BPE merges too; empty when the sidecar names no tokenizer)."""

    path: str
    variant: str
    size_bytes: int
    sidecar_path: str
    vocab_path: str | None
    inputs: list
    tokenizer_paths: list = dataclasses.field(default_factory=list)

    def files(self) -> list[str]:
        """The model file, its sidecar and its tokenizer files: what ships, and what to remove together."""
        return [self.path, self.sidecar_path, *self.tokenizer_paths]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tokenizer_config(model, stem: str) -> dict | None:
    """What ``export/wordpiece_tokenizer.py`` or ``export/bpe_tokenizer.py`` needs from the sidecar of
    ``<stem>.tflite`` (file names relative to the sidecar: ``<stem>.vocab.txt``, ...; `TOKENIZER_FILES`).

    WordPiece (BERT family) and byte-level BPE (RoBERTa, GPT-2 style) tokenizers are reproduced by
    the dependency-free tokenizers in ``export/``. Any other (SentencePiece: DeBERTa-v3, ALBERT,
    ...) gives None: the sidecar's ``tokenizer`` is null and the device needs that model's own
    tokenizer (e.g. SentencePiece with its model file) to make the token ids.
    """
    parts = text_parts(model)
    tok = parts.tokenizer.tokenizer
    length = parts.sequence_length
    if hasattr(tok, "suffix_indicator") and hasattr(tok, "get_vocabulary"):
        return {
            "type": "wordpiece", "vocabulary": stem + TOKENIZER_FILES["wordpiece"]["vocabulary"],
            "lowercase": bool(tok.lowercase),
            "strip_accents": bool(tok.strip_accents), "split_on_cjk": bool(getattr(tok, "split_on_cjk", True)),
            "suffix_indicator": tok.suffix_indicator, "oov_token": tok.oov_token, "max_bytes_per_word": 100,
            "cls_token": tok.id_to_token(int(tok.start_token_id)), "sep_token": tok.id_to_token(int(tok.end_token_id)),
            "pad_token": tok.id_to_token(int(tok.pad_token_id)), "sequence_length": length,
        }
    if hasattr(tok, "merges") and hasattr(tok, "unsplittable_tokens") and isinstance(tok.vocabulary, dict):
        return {
            "type": "bpe", "vocabulary": stem + TOKENIZER_FILES["bpe"]["vocabulary"],
            "merges": stem + TOKENIZER_FILES["bpe"]["merges"],
            "add_prefix_space": bool(tok.add_prefix_space), "unsplittable_tokens": list(tok.unsplittable_tokens or []),
            "start_token": tok.id_to_token(int(tok.start_token_id)), "end_token": tok.id_to_token(int(tok.end_token_id)),
            "pad_token": tok.id_to_token(int(tok.pad_token_id)), "sequence_length": length,
        }
    return None


def _tokenizer_texts(config: dict, tokenizer) -> dict:
    """``{sidecar key: file content}`` of the tokenizer files ``config`` names."""
    if config["type"] == "wordpiece":
        return {"vocabulary": "".join(t + "\n" for t in tokenizer.get_vocabulary())}
    vocabulary = {str(k): int(v) for k, v in tokenizer.vocabulary.items()}
    return {"vocabulary": json.dumps(vocabulary, indent=2, sort_keys=True) + "\n",  # as atomic_write_json writes
            "merges": "".join(m + "\n" for m in tokenizer.merges)}


def _write_tokenizer_files(folder: str, config: dict | None, tokenizer) -> list[str]:
    """Write the tokenizer files ``config`` names (vocabulary, BPE merges) beside the .tflite, atomically,
    and record each one's sha256 in ``config["sha256"]`` (``{sidecar key: hex digest}``, checked by
    ``export/litert_runner.py``); returns their paths, the vocabulary first ([] when ``config`` is None)."""
    if config is None:
        return []
    paths, digests = [], {}
    for key, text in _tokenizer_texts(config, tokenizer).items():
        path = os.path.join(folder, config[key])
        data = text.encode("utf-8")
        atomic_write_bytes(path, data)
        digests[key] = hashlib.sha256(data).hexdigest()
        paths.append(path)
    config["sha256"] = digests
    return paths


#: How a "dynamic" text file gets its int8 weights (see `convert_text_tflite`).
DYNAMIC_QUANTIZERS = ("per_row", "converter")


def convert_text_tflite(model, *, variant: str = "float32", quantizer: str = "per_row") -> bytes:
    """The token-id twin of ``model`` as .tflite bytes (TFLite builtins only).

    ``quantizer`` (``variant="dynamic"`` only): "per_row" (default) stores every large matrix as int8 with one
    scale per row, runs the transformer's projections on LiteRT's hybrid kernels with asymmetric input
    quantization and dequantizes the token embedding once at load; "converter" is the TFLite converter's own
    dynamic-range pass, whose token embedding has one scale for the whole table (kept for comparison:
    ``benchmarks/text_dynamic.py``). ``variant="weight_only"``: the same per-row int8 weights, every one
    dequantized once at load (float32 arithmetic: the dynamic file's size, float32's speed).
    """
    import tensorflow as tf

    if variant not in TEXT_VARIANTS:
        raise ArgumentError("variant", variant, "must be one of " + ", ".join(TEXT_VARIANTS))
    if quantizer not in DYNAMIC_QUANTIZERS:
        raise ArgumentError("quantizer", quantizer, "must be one of " + ", ".join(DYNAMIC_QUANTIZERS))
    if quantizer != "per_row" and variant != "dynamic":
        raise ArgumentError("quantizer", quantizer, f"applies to variant='dynamic' only, not {variant!r}")
    per_row = (variant == "dynamic" and quantizer == "per_row") or variant == "weight_only"
    parts = text_parts(model)
    tokens = token_model(model)
    keys = [t.name for t in tokens.inputs]
    specs = [tf.TensorSpec([None, parts.sequence_length], tf.int32, name=k) for k in keys]

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args):
        return {"probabilities": tf.cast(tokens(dict(zip(keys, args)), training=False), tf.float32)}

    # No trackable object here: passing the model keeps VAR_HANDLE / READ_VARIABLE ops whose
    # variables LiteRT never initialises (NaN outputs); without it the weights are frozen in.
    converter = base_converter(serve.get_concrete_function(), "float32" if per_row else variant)
    try:
        content = converter.convert()
    except Exception as exc:  # ConverterError and friends
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ""
        raise ExportError(f"TFLite conversion of {model.name!r} ({variant}) failed: {type(exc).__name__}: {first}") from exc
    if per_row:
        # Not the converter's dynamic-range pass by default: its per-tensor token embedding left the text recipe's
        # MiniLM file under the 0.99 agreement gate (benchmarks/results/text_dynamic.json).
        from tfxfer.export.int8_per_row import int8_weights

        content = int8_weights(content, hybrid="body" if variant == "dynamic" else "none")
    return content


def export_text_tflite(model, path, *, variant: str = "float32", class_names=None) -> TextTFLiteExport:
    """Write the token-id .tflite, ``<stem>.json`` and the tokenizer files (atomically).

    Args:
        model: a tfxfer text model (classifier, token classifier, few-/zero-shot).
        path: the .tflite path.
        variant: "float32", "float16", "dynamic" (int8 weights on LiteRT's hybrid kernels; ~4x smaller, ~3x
            faster on CPU) or "weight_only" (the same int8 weights dequantized at load: ~4x smaller, float32 speed).
        class_names: one name per output class / tag, stored in the sidecar.

    Gate the file with `tfxfer.export.verify` (or convert, gate and benchmark in one call with
    `tfxfer.export.export_all`).
    """
    parts = text_parts(model)
    num_outputs = int(model.outputs[0].shape[-1])
    if class_names is not None and len(class_names) != num_outputs:
        raise ArgumentError("class_names", list(class_names), f"must have {num_outputs} names")
    content = convert_text_tflite(model, variant=variant)
    from tfxfer.export.litert import new_interpreter

    interpreter = new_interpreter(model_content=content)
    inputs = [{"name": next((k for k in parts.keys if k in d["name"]), d["name"]), "tensor": d["name"],
               "dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape_signature"]]}
              for d in interpreter.get_input_details()]
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(path)[0]
    tokenizer = _tokenizer_config(model, os.path.basename(stem))
    os.makedirs(folder, exist_ok=True)
    tokenizer_paths = _write_tokenizer_files(folder, tokenizer, parts.tokenizer.tokenizer)  # records their sha256
    sidecar = {
        "format": SIDECAR_FORMAT, "format_version": 1, "variant": variant, "model_name": model.name,
        "task": "token_classification" if parts.pool.mode == "tokens" else "classification",
        "class_names": list(class_names) if class_names is not None else None,
        "sequence_length": parts.sequence_length, "inputs": inputs,
        "output": {"name": "probabilities", "shape": [int(s) for s in interpreter.get_output_details()[0]["shape_signature"]]},
        "tokenizer": tokenizer, "sha256": hashlib.sha256(content).hexdigest(),
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
    atomic_write_json(stem + ".json", sidecar)
    return TextTFLiteExport(path=path, variant=variant, size_bytes=len(content), sidecar_path=stem + ".json",
                            vocab_path=tokenizer_paths[0] if tokenizer_paths else None, inputs=inputs,
                            tokenizer_paths=tokenizer_paths)
