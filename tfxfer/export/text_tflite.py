"""Token-id TFLite files of text models: the converter, the tokenizer files and the sidecar.

TFLite cannot hold tf-text tokenizer ops, so the file takes token ids (float32, float16 or
dynamic-range int8) and the tokenizer ships beside it with a sidecar ``<stem>.json`` (inputs,
classes, tokenizer settings): ``vocab.txt`` for WordPiece (BERT family, MiniLM; read by
``export/wordpiece_tokenizer.py``) or ``vocab.json`` + ``merges.txt`` for byte-level BPE (RoBERTa;
``export/bpe_tokenizer.py``). SentencePiece models (DeBERTa-v3, ALBERT) get ``"tokenizer": null``:
they need their own tokenizer on the device. `tfxfer.export.export_all` converts, gates and
benchmarks these files exactly as it does image files.

Example:
    >>> import os, tempfile
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier
    >>> from tfxfer.export import export_text_tflite
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> out = export_text_tflite(build_text_classifier(encoder, 2), os.path.join(tempfile.mkdtemp(), "m.tflite"))
    >>> sorted(os.listdir(os.path.dirname(out.path)))
    ['m.json', 'm.tflite', 'vocab.txt']
"""

from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from tfxfer.errors import ArgumentError, ExportError
from tfxfer.export.tflite import base_converter
from tfxfer.text.graph import text_parts, token_model
from tfxfer.utils.atomic import atomic_path, atomic_write_json, atomic_write_text

#: "weight_only": the dynamic file's int8 weights (one scale per row) dequantized once at load, float32
#: arithmetic: ~4x smaller than float32 at float32's speed and fidelity; the export chain's remedy when the
#: dynamic file fails its gate (`tfxfer.export.gate.REMEDY_OF`).
TEXT_VARIANTS = ("float32", "float16", "dynamic", "weight_only")
SIDECAR_FORMAT = "tfxfer-text-tflite"


@dataclasses.dataclass
class TextTFLiteExport:
    """A written text .tflite file, its sidecar and its vocabulary file."""

    path: str
    variant: str
    size_bytes: int
    sidecar_path: str
    vocab_path: str | None
    inputs: list

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _tokenizer_config(model) -> dict | None:
    """What ``export/wordpiece_tokenizer.py`` or ``export/bpe_tokenizer.py`` needs from the sidecar.

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
            "type": "wordpiece", "vocabulary": "vocab.txt", "lowercase": bool(tok.lowercase),
            "strip_accents": bool(tok.strip_accents), "split_on_cjk": bool(getattr(tok, "split_on_cjk", True)),
            "suffix_indicator": tok.suffix_indicator, "oov_token": tok.oov_token, "max_bytes_per_word": 100,
            "cls_token": tok.id_to_token(int(tok.start_token_id)), "sep_token": tok.id_to_token(int(tok.end_token_id)),
            "pad_token": tok.id_to_token(int(tok.pad_token_id)), "sequence_length": length,
        }
    if hasattr(tok, "merges") and hasattr(tok, "unsplittable_tokens") and isinstance(tok.vocabulary, dict):
        return {
            "type": "bpe", "vocabulary": "vocab.json", "merges": "merges.txt",
            "add_prefix_space": bool(tok.add_prefix_space), "unsplittable_tokens": list(tok.unsplittable_tokens or []),
            "start_token": tok.id_to_token(int(tok.start_token_id)), "end_token": tok.id_to_token(int(tok.end_token_id)),
            "pad_token": tok.id_to_token(int(tok.pad_token_id)), "sequence_length": length,
        }
    return None


def _write_tokenizer_files(folder: str, config: dict | None, tokenizer) -> str | None:
    """Write the vocabulary (and BPE merges) beside the .tflite, atomically; returns the vocabulary path."""
    if config is None:
        return None
    if config["type"] == "wordpiece":
        path = os.path.join(folder, config["vocabulary"])
        atomic_write_text(path, "".join(t + "\n" for t in tokenizer.get_vocabulary()))
        return path
    if config["type"] == "bpe":
        path = os.path.join(folder, config["vocabulary"])
        atomic_write_json(path, {str(k): int(v) for k, v in tokenizer.vocabulary.items()})
        atomic_write_text(os.path.join(folder, config["merges"]), "".join(m + "\n" for m in tokenizer.merges))
        return path
    return None


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
        from tfxfer.export.decoder_tflite import int8_weights

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
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    inputs = [{"name": next((k for k in parts.keys if k in d["name"]), d["name"]), "tensor": d["name"],
               "dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape_signature"]]}
              for d in interpreter.get_input_details()]
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(path)[0]
    tokenizer = _tokenizer_config(model)
    sidecar = {
        "format": SIDECAR_FORMAT, "format_version": 1, "variant": variant, "model_name": model.name,
        "task": "token_classification" if parts.pool.mode == "tokens" else "classification",
        "class_names": list(class_names) if class_names is not None else None,
        "sequence_length": parts.sequence_length, "inputs": inputs,
        "output": {"name": "probabilities", "shape": [int(s) for s in interpreter.get_output_details()[0]["shape_signature"]]},
        "tokenizer": tokenizer, "sha256": hashlib.sha256(content).hexdigest(),
    }
    os.makedirs(folder, exist_ok=True)
    vocab_path = _write_tokenizer_files(folder, tokenizer, parts.tokenizer.tokenizer)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
    atomic_write_json(stem + ".json", sidecar)
    return TextTFLiteExport(path=path, variant=variant, size_bytes=len(content), sidecar_path=stem + ".json",
                            vocab_path=vocab_path, inputs=inputs)
