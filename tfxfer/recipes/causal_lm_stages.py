"""The stages of a causal-LM recipe (``task: causal_lm``, ``pipelines/causal_lm.yaml``).

data -> adapt -> evaluate -> verify -> report, each a few library calls:

* ``data``: the corpus (``data.source``: a packaged text data set's train / val / test splits, or a
  ``.txt`` / ``.md`` file of documents separated by blank lines) -> ``data/corpus.json``: the
  training documents, the held-out ones scored for perplexity, the gate texts and the sample
  prompts (held out from training);
* ``adapt``: `load_causal_lm`, perplexity and sample generations of the pretrained model, then
  `adapt_causal_lm` (LoRA by default; ``causal_lm.budget_s`` stops it after that much wall time),
  the adapted model saved to ``model/`` (`save_causal_lm`; ``tfxfer generate <run>/model`` reads it);
* ``evaluate``: perplexity and sample generations of the adapted model -> ``eval/lm_metrics.json``,
  ``eval/samples.json`` (the manifest's metrics);
* ``verify``: one TFLite decoder (`tfxfer.export.decoder_tflite.save_decoder`: builtin ops, explicit
  KV cache, decode signature) gated on the held-out gate texts (next-token top-1 agreement and
  perplexity change against the Keras model); when the asked-for variant fails, the fallback variants
  are tried in order and the first that passes ships, with the reason recorded -> ``export/``; with
  ``causal_lm.export.saved_model`` also ``export/saved_model`` (string in, string out); then the files
  and the SavedModel folder its last finished run wrote and this one did not are removed
  (`tfxfer.recipes.export_files.remove_stale`);
* ``report``: ``report/report.html`` / ``report.md`` with the perplexity curve, the samples before
  and after, and the export table (`tfxfer.recipes.causal_lm_report`).

Example (a tiny random model, see tests/recipes/test_causal_lm_recipe.py):
    >>> from tfxfer.recipes import load_config, run_pipeline             # doctest: +SKIP
    >>> cfg = load_config("pipelines/causal_lm.yaml")                     # doctest: +SKIP
    >>> run_pipeline(cfg).metrics["perplexity_after"]                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings

import numpy as np

from tfxfer.errors import ConfigError, DataError, bounded_repr
from tfxfer.recipes.catalog import DATASETS, check_source, dataset_key
from tfxfer.recipes.export_files import listed_files, remove_stale, stage_folders
from tfxfer.recipes.runner import Stage
from tfxfer.utils.atomic import atomic_write_json

TEXT_SUFFIXES = (".txt", ".md")
#: The most training-loss points kept for the report's curve.
MAX_CURVE_POINTS = 400


# -- the corpus ------------------------------------------------------------------------------------

def resolve_corpus(cfg) -> tuple[str, str]:
    """``("packaged", name)`` or ``("file", absolute path)`` of ``data.source``; `ConfigError` otherwise."""
    raw = cfg.data.source.strip()
    key = dataset_key(raw)
    if key is not None:
        if DATASETS[key]["task"] != "text_classification":
            raise ConfigError(f"`data.source`: packaged data set {key!r} holds {DATASETS[key]['task']} data; a "
                              "causal-LM recipe reads texts (e.g. bbc_news, sentiment_movies)")
        return "packaged", key
    path = os.path.abspath(os.path.expanduser(raw))
    if os.path.isfile(path):
        if os.path.splitext(path)[1].lower() not in TEXT_SUFFIXES:
            raise ConfigError(f"`data.source`: {raw} is not a .txt or .md file of documents separated by blank "
                              "lines (nor a packaged text data set)")
        return "file", path
    if os.path.exists(path):
        raise ConfigError(f"`data.source`: {raw} is not a regular file")
    check_source(raw, task="text_classification")  # unknown name: raises with close matches
    raise ConfigError(f"`data.source`: file not found: {raw}")


def _documents(path: str) -> list[str]:
    from tfxfer.data.text import read_text_file

    return [d.strip() for d in re.split(r"\n\s*\n", read_text_file(path)) if d.strip()]


def _corpus_splits(cfg) -> dict:
    """``{"train", "val", "gate", "prompts"}`` texts and a description of where they came from."""
    c = cfg.causal_lm
    kind, value = resolve_corpus(cfg)
    if kind == "packaged":
        from tfxfer import data

        loaded = data.load(value)
        train, val, rest = ([str(t) for t in split.x] for split in (loaded.train, loaded.val, loaded.test))
        origin = f"packaged {value}: train / val / test splits"
    else:
        docs = _documents(value)
        if len(docs) < 3:
            raise DataError(f"`data.source` {value} holds {len(docs)} document(s) (blank-line separated); a "
                            "causal-LM recipe needs at least 3 (training, held-out and gate texts)")
        order = np.random.default_rng(cfg.seed).permutation(len(docs))
        held = max(2, int(round(cfg.data.validation_split * len(docs))))
        held = min(held, len(docs) - 1)
        train = [docs[i] for i in order[held:]]
        val_part = [docs[i] for i in order[:held]]
        half = max(1, len(val_part) // 2)
        val, rest = val_part[:half], val_part[half:] or val_part[:half]
        origin = f"{os.path.basename(value)}: {len(docs)} documents, {held} held out (seed {cfg.seed})"
    train = train[: c.train_texts] if c.train_texts else train
    val = val[: c.val_texts] if c.val_texts else val
    gate = rest[: c.export.gate_texts]
    prompts = list(c.prompts) or [" ".join(t.split()[: c.prompt_words]) for t in rest[: c.samples]]
    return {"origin": origin, "train": train, "val": val, "gate": gate, "prompts": [p for p in prompts if p]}


def _probe_data(ctx):
    from tfxfer.recipes.fingerprint import package_fingerprint, path_fingerprint

    kind, value = resolve_corpus(ctx.cfg)
    if kind == "packaged":
        return {"source": value, "content": package_fingerprint(DATASETS[value]["package"]) or value}
    return {"source": value, "content": path_fingerprint(value)}


def run_data(ctx):
    corpus = _corpus_splits(ctx.cfg)
    for name in ("train", "val", "gate"):
        if not corpus[name]:
            raise DataError(f"`data.source` {ctx.cfg.data.source!r} gave no {name} texts")
    path = ctx.path("data", "corpus.json")
    atomic_write_json(path, corpus)
    ctx.remember("lm_corpus", corpus)
    sizes = {k: len(corpus[k]) for k in ("train", "val", "gate", "prompts")}
    ctx.console.info(f"corpus: {corpus['origin']}; {sizes['train']} training, {sizes['val']} held-out, "
                     f"{sizes['gate']} gate texts")
    return {"origin": corpus["origin"], "sizes": sizes, "data_fingerprint": _probe_data(ctx)["content"],
            "characters": {k: int(sum(len(t) for t in corpus[k])) for k in ("train", "val")},
            "artefacts": [ctx.rel(path)]}


def _corpus(ctx) -> dict:
    def load():
        with open(ctx.abs(ctx.outputs["data"]["artefacts"][0]), encoding="utf-8") as f:
            return json.load(f)

    return ctx.memo("lm_corpus", load)


# -- adaptation ------------------------------------------------------------------------------------

def _model_probe(ctx):
    from tfxfer.recipes.fingerprint import path_fingerprint

    model = ctx.cfg.causal_lm.model
    path = os.path.abspath(os.path.expanduser(model))
    return {"model": path_fingerprint(path)} if os.path.exists(path) else {"model": model}


def _load(name):
    from tfxfer.causal_lm import load_causal_lm

    path = os.path.expanduser(name)
    return load_causal_lm(path if os.path.exists(path) else name)


def _samples(lm, prompts, max_new_tokens):
    from tfxfer.causal_lm import generate

    if not prompts:
        return []
    with warnings.catch_warnings():  # a prompt longer than the context is cut (and said so in the report)
        warnings.simplefilter("ignore", UserWarning)
        return generate(lm, list(prompts), max_new_tokens=max_new_tokens, stop_tokens="eos")


def _callbacks(budget_s):
    import keras

    class Trace(keras.callbacks.Callback):
        """Training loss after every batch; stops after ``budget_s`` seconds of training."""

        def __init__(self):
            super().__init__()
            self.losses, self.start, self.stopped_at = [], None, None

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                self.losses.append(float(logs["loss"]))
            if budget_s is not None and time.perf_counter() - self.start > budget_s:
                self.model.stop_training = True
                self.stopped_at = len(self.losses)

    return Trace()


def _curve(losses):
    """At most `MAX_CURVE_POINTS` ``[batch, loss]`` pairs (evenly spaced; the last batch kept)."""
    if not losses:
        return []
    idx = np.unique(np.linspace(0, len(losses) - 1, min(len(losses), MAX_CURVE_POINTS)).round().astype(int))
    return [[int(i) + 1, losses[i]] for i in idx]


def run_adapt(ctx):
    from tfxfer.causal_lm import adapt_causal_lm, perplexity, save_causal_lm

    c, corpus, console = ctx.cfg.causal_lm, _corpus(ctx), ctx.console
    lm = _load(c.model)
    window = min(c.sequence_length, lm.context_length)
    if window < c.sequence_length:
        console.info(f"note: causal_lm.sequence_length {c.sequence_length} > the model's context "
                     f"{lm.context_length}; windows of {window} tokens are used")
    t0 = time.perf_counter()
    before = perplexity(lm, corpus["val"], window=window)
    samples_before = _samples(lm, corpus["prompts"], c.max_new_tokens)
    eval_s = time.perf_counter() - t0
    console.info(f"held-out perplexity of the pretrained model: {before:.3f}")
    trace = _callbacks(c.budget_s)
    result = adapt_causal_lm(lm, corpus["train"], val=corpus["val"], epochs=c.epochs, base_lr=c.base_lr,
                             batch_size=c.batch_size, sequence_length=window, lora_rank=c.lora_rank,
                             warmup_share=c.warmup_share, lr_decay=c.lr_decay, callbacks=[trace], seed=ctx.cfg.seed,
                             verbose=ctx.console.keras_verbose)
    folder = ctx.abs("model")
    save_causal_lm(lm, folder)
    ctx.remember("lm_adapted", lm)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    planned = result.steps[1]["batches"] * c.epochs
    stopped = trace.stopped_at is not None
    if stopped:
        console.info(f"note: training stopped by causal_lm.budget_s={c.budget_s:g} after {trace.stopped_at} of "
                     f"{planned} batches")
    return {"model": ctx.rel(folder), "model_name": lm.name, "perplexity_before": before,
            "samples_before": samples_before, "pretrained_eval_s": eval_s, "history": result.history,
            "train_loss_curve": _curve(trace.losses), "batches_trained": len(trace.losses),
            "batches_planned": planned, "stopped_by_budget": stopped, "train_s": result.steps[1]["wall_s"],
            "tokens_per_batch": c.batch_size * window, "settings": result.settings,
            "parameters": {"total": int(lm.model.count_params()),
                           "trainable": int(sum(int(np.prod(w.shape)) for w in lm.model.trainable_weights))},
            "artefacts": [ctx.rel(f) for f in files]}


def _adapted(ctx):
    return ctx.memo("lm_adapted", lambda: _load(ctx.abs(ctx.outputs["adapt"]["model"])))


# -- evaluation ------------------------------------------------------------------------------------

def run_evaluate(ctx):
    from tfxfer.causal_lm import perplexity

    c, corpus, adapt = ctx.cfg.causal_lm, _corpus(ctx), ctx.outputs["adapt"]
    lm = _adapted(ctx)
    window = min(c.sequence_length, lm.context_length)
    after = perplexity(lm, corpus["val"], window=window)
    before = adapt["perplexity_before"]
    samples_after = _samples(lm, corpus["prompts"], c.max_new_tokens)
    metrics = {"perplexity_before": before, "perplexity_after": after, "perplexity_change": after / before - 1.0,
               "val_texts": len(corpus["val"]), "window_tokens": window}
    samples = [{"prompt": p, "before": b, "after": a}
               for p, b, a in zip(corpus["prompts"], adapt["samples_before"], samples_after)]
    metrics_path, samples_path = ctx.path("eval", "lm_metrics.json"), ctx.path("eval", "samples.json")
    atomic_write_json(metrics_path, metrics)
    atomic_write_json(samples_path, samples)
    ctx.console.info(f"held-out perplexity {before:.3f} -> {after:.3f} ({100 * metrics['perplexity_change']:+.1f} %)")
    return {**metrics, "artefacts": [ctx.rel(metrics_path), ctx.rel(samples_path)]}


# -- export and gate -------------------------------------------------------------------------------

#: The string-in SavedModel folder of the causal-LM verify stage (``causal_lm.export.saved_model``).
LM_SAVED_MODEL = "export/saved_model"


def _variant(name):
    return None if name == "float32" else name


def run_verify(ctx):
    from tfxfer.export.decoder_tflite import save_decoder

    e, corpus = ctx.cfg.causal_lm.export, _corpus(ctx)
    lm = _adapted(ctx)
    cache_length = min(e.cache_length, lm.context_length)
    folder = ctx.abs("export")
    with warnings.catch_warnings(record=True) as caught:  # the fallback's warning goes to the outputs
        warnings.simplefilter("always", UserWarning)
        saved = save_decoder(lm, folder, cache_length=cache_length, prefill_tokens=None,
                             quantization=_variant(e.quantization), gate_texts=corpus["gate"],
                             fallback=tuple(_variant(v) for v in e.fallback), name="decoder",
                             min_top1_agreement=e.min_top1_agreement, max_perplexity_change=e.max_perplexity_change)
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    reports = [*saved["rejected"], saved["gate"]]
    rows = [{"variant": r.variant, "size_mib": r.size_mib, "top1_agreement": r.top1_agreement,
             "perplexity_change": r.perplexity_change, "ms_per_token": r.ms_per_token, "positions": r.positions,
             "gate": "pass" if r.passed else "fail", "failures": r.failures} for r in reports]
    shipped = saved["gate"]
    fallback_reason = None
    if shipped.variant != e.quantization:
        first = saved["rejected"][0] if saved["rejected"] else None
        fallback_reason = (f"{e.quantization} failed its gate ({'; '.join(first.failures)}); {shipped.variant} "
                           f"{'passed' if shipped.passed else 'was the last tried'} and was written instead") \
            if first else None
    for line in [fallback_reason] if fallback_reason else notes:
        ctx.console.info(f"note: {line}")
    ctx.console.info(shipped.format())
    files = [saved["model"], saved["sidecar"], saved["tokenizer"]]
    saved_model = None
    if e.saved_model:
        from tfxfer.causal_lm import save_generate_savedmodel

        saved_model = save_generate_savedmodel(lm, ctx.abs(LM_SAVED_MODEL),
                                               max_new_tokens=ctx.cfg.causal_lm.max_new_tokens)
        files += sorted(os.path.join(root, f) for root, _, names in os.walk(saved_model) for f in names)
        ctx.console.info(f"SavedModel (string in, string out: signature 'generate'): {ctx.rel(saved_model)}")
    out = {"passed": bool(shipped.passed), "deliver": ctx.rel(saved["model"]), "runner_input": ctx.rel(saved["sidecar"]),
           "saved_model": None if saved_model is None else ctx.rel(saved_model),
           "failed": [] if shipped.passed else [shipped.variant], "requested": e.quantization,
           "shipped": shipped.variant, "fallback_reason": fallback_reason, "cache_length": cache_length,
           "rows": rows, "folders": [LM_SAVED_MODEL] if saved_model else [],
           "artefacts": [ctx.rel(f) for f in files]}
    # an earlier run's files this one did not write (another file name, a SavedModel no longer asked for) go
    remove_stale(ctx, "verify", keep=set(out["artefacts"]) | stage_folders(out), files_of=listed_files)
    return out


# -- report ----------------------------------------------------------------------------------------

def run_lm_report(ctx):
    from tfxfer.recipes.causal_lm_report import write_lm_report
    from tfxfer.recipes.report_stage import write_run_manifest

    write_run_manifest(ctx)
    paths = write_lm_report(ctx.run_dir)
    files = [paths["html"], paths["markdown"], *paths["figures"].values()]
    return {"html": ctx.rel(paths["html"]), "markdown": ctx.rel(paths["markdown"]),
            "figures": {k: ctx.rel(v) for k, v in paths["figures"].items()}, "artefacts": [ctx.rel(p) for p in files]}


def causal_lm_stages(cfg) -> list[Stage]:
    """The stages of a ``task: causal_lm`` recipe, its own report stage last (checks ``data.source`` first)."""
    if cfg.task != "causal_lm":
        raise ConfigError(f"causal_lm_stages plans task 'causal_lm' recipes. Received task: {bounded_repr(cfg.task)}")
    resolve_corpus(cfg)

    def section(c, *, export=False):
        plain = c.section("causal_lm")["causal_lm"]
        return plain if export else {k: v for k, v in plain.items() if k != "export"}

    def data_config(c):
        lm = section(c, export=True)
        return {"source": c.data.source, "validation_split": c.data.validation_split, "seed": c.seed,
                **{k: lm[k] for k in ("train_texts", "val_texts", "samples", "prompts", "prompt_words")},
                "gate_texts": lm["export"]["gate_texts"]}

    def adapt_config(c):
        lm = section(c)
        return {"seed": c.seed, **{k: v for k, v in lm.items() if k not in ("samples", "prompts", "prompt_words")}}

    stages = [
        Stage("data", run_data, config=data_config, probe=_probe_data),
        Stage("adapt", run_adapt, config=adapt_config, inputs=("data",), probe=_model_probe),
        Stage("evaluate", run_evaluate, config=lambda c: {"sequence_length": c.causal_lm.sequence_length,
                                                          "max_new_tokens": c.causal_lm.max_new_tokens},
              inputs=("data", "adapt")),
    ]
    if cfg.causal_lm.export.enabled:
        stages.append(Stage("verify", run_verify, config=lambda c: {**section(c, export=True)["export"],
                                                                   "max_new_tokens": c.causal_lm.max_new_tokens},
                        inputs=("data", "adapt")))
    stages.append(Stage("report", run_lm_report, config=lambda c: {"report": "causal_lm"}, always=True))
    return stages


__all__ = ["causal_lm_stages", "resolve_corpus"]
