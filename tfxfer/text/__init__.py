"""Transfer learning for text on keras-hub encoders.

* Encoders: `load_encoder` (any keras-hub preset, local keras-hub / Hugging Face directories,
  ``"all-minilm-l6-v2"`` offline), `build_bert_encoder` (random, small), `text_spec` (layer groups:
  embeddings, each transformer layer, pooler) for freezing and layer-wise learning rates.
* Sequence classification: `build_text_classifier` (single- / multi-label; pooled, [CLS] or mean
  pooling; raw strings in, probabilities out), `text_class_weights`; train it with
  `tfxfer.train.fine_tune.fine_tune(model, (texts, labels), ...)` like an image model.
* Token classification (NER): `build_token_classifier`, `encode_words` (first / all sub-token
  label alignment), `encode_tagged_words`, `predict_entities` -> `Entity` (text, type, start,
  end, score), BIO/BIOES decoding that never yields invalid spans, `entity_scores`
  (seqeval-compatible entity-level precision / recall / F1); trained with
  `tfxfer.train.ner.fit_token_classifier(model, (words, tags), tag_names=...)`.
* Few-shot and zero-shot: `build_prototype_classifier` (class prototypes from k examples, no
  gradient step) and `build_zero_shot_classifier` (similarity to label descriptions).
* Export lives in `tfxfer.export` (`export_all` for text models as for image models:
  token-id TFLite files with their tokenizer files, a SavedModel on raw strings, all gated).

Example:
    >>> import numpy as np
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier, predict_texts
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> model = build_text_classifier(encoder, 2)
    >>> predict_texts(model, ["good film"]).shape
    (1, 2)
"""

from tfxfer.utils.lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "MINILM": "tfxfer.text.encoders",
    "TextEncoder": "tfxfer.text.encoders",
    "load_encoder": "tfxfer.text.encoders",
    "build_bert_encoder": "tfxfer.text.encoders",
    "minilm_preset_dir": "tfxfer.text.encoders",
    "text_spec": "tfxfer.text.specs",
    "TextTokenizer": "tfxfer.text.layers",
    "SequencePooling": "tfxfer.text.layers",
    "token_model": "tfxfer.text.graph",
    "token_features": "tfxfer.text.graph",
    "text_parts": "tfxfer.text.graph",
    "build_text_classifier": "tfxfer.text.classifier",
    "text_class_weights": "tfxfer.text.classifier",
    "WeightedBinaryCrossentropy": "tfxfer.text.classifier",
    "predict_texts": "tfxfer.text.classifier",
    "text_layer_groups": "tfxfer.text.tuning",
    "freeze_encoder": "tfxfer.text.tuning",
    "unfreeze_encoder": "tfxfer.text.tuning",
    "text_layerwise_decay": "tfxfer.text.tuning",
    "align_labels": "tfxfer.text.alignment",
    "encode_words": "tfxfer.text.alignment",
    "word_predictions": "tfxfer.text.alignment",
    "split_words": "tfxfer.text.alignment",
    "decode_spans": "tfxfer.text.tagging",
    "repair_tags": "tfxfer.text.tagging",
    "spans_to_tags": "tfxfer.text.tagging",
    "chunks": "tfxfer.text.tagging",
    "viterbi_tags": "tfxfer.text.tagging",
    "is_valid": "tfxfer.text.tagging",
    "Span": "tfxfer.text.tagging",
    "entity_scores": "tfxfer.text.ner_metrics",
    "EntityScores": "tfxfer.text.ner_metrics",
    "build_token_classifier": "tfxfer.text.ner",
    "encode_tagged_words": "tfxfer.text.ner",
    "predict_entities": "tfxfer.text.ner",
    "predict_word_tags": "tfxfer.text.ner",
    "Entity": "tfxfer.text.ner",
    "build_prototype_classifier": "tfxfer.text.fewshot",
    "build_zero_shot_classifier": "tfxfer.text.fewshot",
    "prototype_model": "tfxfer.text.fewshot",
    "sample_per_class": "tfxfer.text.fewshot",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = _lazy_exports('tfxfer.text', _EXPORTS)
