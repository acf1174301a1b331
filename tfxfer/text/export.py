"""Export text models: a SavedModel on raw strings, a TFLite file on token ids; both verified.

* `export_text_saved_model` writes ``<base_dir>/<name>/<version>/`` for TF Serving with
  ``serving_default`` taking raw strings (``text``: string ``[batch]``; the tokenizer is inside)
  and ``serving_tokens`` taking the token tensors, plus warm-up requests and ``models.config``
  (`tfxfer.export.serving`). It is loaded back and checked against Keras on held-out texts.
* `export_text_tflite` writes the token-id model (TFLite cannot hold tf-text tokenizer ops) as
  float32, float16 or dynamic-range int8, with the tokenizer files and a sidecar ``<stem>.json``
  (inputs, classes, tokenizer settings) beside it: ``vocab.txt`` for WordPiece (BERT family, MiniLM;
  read by ``export/wordpiece_tokenizer.py``) or ``vocab.json`` + ``merges.txt`` for byte-level BPE
  (RoBERTa; ``export/bpe_tokenizer.py``). SentencePiece models (DeBERTa-v3, ALBERT) get
  ``"tokenizer": null``: they need their own tokenizer on the device.
* `verify_text_tflite` is the gate: the file runs in LiteRT on held-out texts and is compared
  with Keras using `tfxfer.export.Thresholds` / `GateReport` (defaults: `DEFAULT_THRESHOLDS`).

Example:
    >>> import os, tempfile
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier, export_text_tflite
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> model = build_text_classifier(encoder, 2)
    >>> out = export_text_tflite(model, os.path.join(tempfile.mkdtemp(), "m.tflite"),
    ...                          verify_texts=["good film", "bad film", "film"])
    >>> out.report.passed, sorted(os.listdir(os.path.dirname(out.path)))
    (True, ['m.json', 'm.tflite', 'vocab.txt'])
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re

import numpy as np

from tfxfer.errors import ArgumentError, ExportError, ModelError
from tfxfer.export.gate import GateReport, Thresholds
from tfxfer.export.tflite import base_converter
from tfxfer.text.encoders import as_texts
from tfxfer.text.graph import text_parts, token_model
from tfxfer.text.verify import gate, predict_text_tflite
from tfxfer.utils.atomic import atomic_path, atomic_write_json, atomic_write_text

TEXT_VARIANTS = ("float32", "float16", "dynamic")
SIDECAR_FORMAT = "tfxfer-text-tflite"


@dataclasses.dataclass
class TextTFLiteExport:
    """A written text .tflite file, its sidecar and vocabulary, and its gate report (if verified)."""

    path: str
    variant: str
    size_bytes: int
    sidecar_path: str
    vocab_path: str | None
    inputs: list
    report: GateReport | None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["report"] = self.report.to_dict() if self.report else None
        return out


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


def convert_text_tflite(model, *, variant: str = "float32") -> bytes:
    """The token-id twin of ``model`` as .tflite bytes (TFLite builtins only)."""
    import tensorflow as tf

    if variant not in TEXT_VARIANTS:
        raise ArgumentError("variant", variant, "must be one of " + ", ".join(TEXT_VARIANTS))
    parts = text_parts(model)
    tokens = token_model(model)
    keys = [t.name for t in tokens.inputs]
    specs = [tf.TensorSpec([None, parts.sequence_length], tf.int32, name=k) for k in keys]

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args):
        return {"probabilities": tf.cast(tokens(dict(zip(keys, args)), training=False), tf.float32)}

    # No trackable object here: passing the model keeps VAR_HANDLE / READ_VARIABLE ops whose
    # variables LiteRT never initialises (NaN outputs); without it the weights are frozen in.
    converter = base_converter(serve.get_concrete_function(), variant)
    try:
        return converter.convert()
    except Exception as exc:  # ConverterError and friends
        first = str(exc).strip().splitlines()[0][:400] if str(exc).strip() else ""
        raise ExportError(f"TFLite conversion of {model.name!r} ({variant}) failed: {type(exc).__name__}: {first}") from exc


def export_text_tflite(model, path, *, variant: str = "float32", class_names=None, verify_texts=None,
                       verify_labels=None, thresholds=None) -> TextTFLiteExport:
    """Write the token-id .tflite, ``<stem>.json`` and the tokenizer files (atomically), gated if asked.

    Args:
        model: a tfxfer text model (classifier, token classifier, few-/zero-shot).
        path: the .tflite path.
        variant: "float32", "float16" or "dynamic" (int8 weights; ~4x smaller).
        class_names: one name per output class / tag, stored in the sidecar.
        verify_texts: held-out texts; when given, the gate runs and a failing file is not kept.
        verify_labels, thresholds: see `verify_text_tflite`.
    """
    parts = text_parts(model)
    num_outputs = int(model.outputs[0].shape[-1])
    if class_names is not None and len(class_names) != num_outputs:
        raise ArgumentError("class_names", list(class_names), f"must have {num_outputs} names")
    content = convert_text_tflite(model, variant=variant)
    report = None
    if verify_texts is not None:
        report = gate(model, {variant: (None, lambda inputs: predict_text_tflite(content, inputs))},
                       verify_texts, verify_labels, thresholds, raise_on_failure=True)
        report.results[variant].path = os.fspath(path)
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
                            vocab_path=vocab_path, inputs=inputs, report=report)


def _serving_functions(model, class_names):
    import tensorflow as tf

    parts = text_parts(model)
    tokens = token_model(model)
    keys = [t.name for t in tokens.inputs]
    names = tf.constant(class_names)

    def outputs(probabilities):
        top = tf.argmax(probabilities, axis=1, output_type=tf.int32)
        return {"probabilities": probabilities, "classes": tf.tile(names[None, :], [tf.shape(probabilities)[0], 1]),
                "top_class": tf.gather(names, top), "top_probability": tf.reduce_max(probabilities, axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def from_text(text):
        return outputs(tf.cast(model(text, training=False), tf.float32))

    specs = [tf.TensorSpec([None, parts.sequence_length], tf.int32, name=k) for k in keys]

    @tf.function(input_signature=specs)
    def from_tokens(*args):
        return outputs(tf.cast(tokens(dict(zip(keys, args)), training=False), tf.float32))

    return {"serving_default": from_text, "serving_tokens": from_tokens}


def export_text_saved_model(model, base_dir, *, name: str, version: int | None = None, class_names=None,
                            verify_texts=None, thresholds=None, warmup: bool = True, overwrite: bool = False,
                            serving_base_path: str | None = None):
    """Write a TF Serving SavedModel whose ``serving_default`` takes raw strings.

    Args:
        model: a tfxfer text classifier (sequence outputs ``[batch, classes]``).
        base_dir: model repository; the model goes to ``<base_dir>/<name>/<version>/``.
        name: served model name.
        version: default one more than the highest present.
        class_names: one per class (default "0", "1", ...).
        verify_texts: held-out texts; the written SavedModel is loaded and gated against Keras
            (variant "saved_model", default limits: max abs error 1e-4, top-1 agreement 1.0).
        warmup: write TF Serving warm-up requests (two example texts).

    Returns:
        ``(SavedModelExport, GateReport or None)``.
    """
    import keras
    import tensorflow as tf

    from tfxfer.export import SavedModelExport, serving

    parts = text_parts(model)
    if parts.pool.mode == "tokens":
        raise ModelError("export_text_saved_model serves sequence classifiers; export a token classifier "
                         "with export_text_tflite (word alignment runs on the client)")
    num = int(model.outputs[0].shape[-1])
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(num)]
    if len(names) != num:
        raise ArgumentError("class_names", class_names, f"must have {num} names")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ArgumentError("name", name, "must be letters, digits, '.', '_' or '-'")
    model_dir = os.path.join(os.fspath(base_dir), name)
    if version is None:
        existing = [int(v) for v in os.listdir(model_dir) if v.isdigit()] if os.path.isdir(model_dir) else []
        version = max(existing, default=0) + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArgumentError("version", version, "must be an int >= 1")
    path = os.path.join(model_dir, str(version))
    if os.path.exists(path) and not overwrite:
        raise ArgumentError("version", version, f"already exists at {path!r}", hint="Pass overwrite=True")
    functions = _serving_functions(model, names)
    report = None
    with atomic_path(path, directory=True) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for signature, function in functions.items():
            archive.add_endpoint(signature, function)
        archive.write_out(tmp, verbose=False)
        examples = list(as_texts(verify_texts))[:2] if verify_texts is not None else ["An example text.", ""]
        if warmup:
            logs = serving.warmup_requests(model_name=name, requests=[
                ("serving_default", {"text": np.array([t.encode("utf-8") for t in examples], dtype=object)})])
            serving.write_warmup(tmp, logs)
        if verify_texts is not None:
            loaded = tf.saved_model.load(tmp)
            signature = loaded.signatures["serving_default"]

            def run(_inputs):
                return signature(text=tf.constant(list(as_texts(verify_texts))))["probabilities"].numpy()

            limits = {"saved_model": Thresholds(min_top1_agreement=1.0, max_abs_error=1e-4)}
            limits.update(thresholds or {})
            report = gate(model, {"saved_model": (path, run)}, verify_texts, None, limits, raise_on_failure=True)
    config_path = serving.write_models_config(base_dir, serving_base_path=serving_base_path)
    signatures = {"serving_default": "text: string [batch] of raw texts",
                  "serving_tokens": f"{', '.join(parts.keys)}: int32 [batch, {parts.sequence_length}]"}
    result = SavedModelExport(path=path, name=name, version=version, signatures=signatures,
                              warmup_path=os.path.join(path, serving.WARMUP_DIR, serving.WARMUP_FILE) if warmup else None,
                              models_config_path=config_path, verified=verify_texts is not None)
    return result, report
