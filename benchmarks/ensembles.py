"""What averaging several trained models would buy: test accuracy of ensembles, and their training cost.

``benchmarks/vs_hand_written.py --save-predictions DIR`` writes each image row's test-set probabilities
(``DIR/<dataset>_<method>_<seed>.npy``) and the test labels (``DIR/<dataset>_labels.npy``). This script scores,
on those files and the rows of ``results/vs_hand_written.json`` that name them:

* every single model (a check: it must repeat the benchmark's accuracy),
* per method, the average of its seeds (a seed ensemble),
* per seed, the average of every method (e.g. EfficientNet-Lite0 + Lite1 + Lite2: a backbone ensemble),
* the average of everything;

and, where the data set has a per-example label certainty (ELPV's ``defect_probability``: the share of experts who
called a cell defective, 0, 1/3, 2/3 or 1; the label is ``> 0.5``), the accuracy of every single model and ensemble
per certainty level, so that a target such as "0.90" can be read against where the errors sit.

An ensemble's training cost is the sum of its members' wall times, quoted against the hand-written script's mean
wall time in the same run (the issue's budget is 1.2x). Nothing here trains; ensembles are not a tfxfer default.

    python benchmarks/ensembles.py DIR [--dataset elpv]

Writes ``results/ensembles.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import print_table, write_result  # noqa: E402


def _accuracy(probabilities, labels) -> float:
    return float((np.asarray(probabilities).argmax(-1) == labels).mean())


def certainty(dataset: str):
    """The test split's per-example label certainty as ``vs_hand_written.py`` splits it (None: the set has none)."""
    if dataset != "elpv":
        return None
    from vs_hand_written import elpv_split

    from tfxfer import data

    d = data.load(dataset)
    y = np.concatenate([d.train[1], d.val[1], d.test[1]]).astype(int)
    p = np.concatenate([d.extras[s]["defect_probability"] for s in ("train", "val", "test")])
    return p[elpv_split(y)[1]]


def groups(keys: list[tuple]) -> list[tuple]:
    """``(kind, name, member keys)`` for every single model and ensemble of ``keys`` (``(method, seed)`` pairs)."""
    out = [("single", f"{m} seed {s}", [(m, s)]) for m, s in keys]
    for method in sorted({m for m, _ in keys}):
        group = [k for k in keys if k[0] == method]
        if len(group) > 1:
            out.append(("seeds", f"{method} x {len(group)} seeds", group))
    for seed in sorted({s for _, s in keys}):
        group = [k for k in keys if k[1] == seed]
        if len(group) > 1:
            out.append(("methods", f"{' + '.join(m for m, _ in group)} (seed {seed})", group))
    if len(keys) > 2:
        out.append(("all", f"all {len(keys)} models", list(keys)))
    return out


def score(members: list[dict], labels: np.ndarray, hand_written_wall: float | None, levels=None):
    """One row per single model and ensemble (``members``: dicts with method, seed, wall_s, path), and with
    ``levels`` (per-example label certainty) a second table: accuracy per level."""
    probs = {(m["method"], m["seed"]): np.load(m["path"]) for m in members}
    wall = {(m["method"], m["seed"]): m["wall_s"] for m in members}
    rows, bands = [], []
    for kind, name, keys in groups(sorted(probs)):
        correct = np.mean([probs[k] for k in keys], axis=0).argmax(-1) == labels
        cost = sum(wall[k] for k in keys)
        rows.append({"kind": kind, "ensemble": name, "members": len(keys), "accuracy": float(correct.mean()),
                     "mean_member_accuracy": float(np.mean([_accuracy(probs[k], labels) for k in keys])),
                     "train_wall_s": round(cost, 1),
                     "wall_ratio_vs_hand_written": round(cost / hand_written_wall, 2) if hand_written_wall else None})
        if levels is not None:
            bands.append({"ensemble": name, "accuracy": round(float(correct.mean()), 4),
                          **{f"p={v:.2f} (n={int((levels == v).sum())})": round(float(correct[levels == v].mean()), 3)
                             for v in np.unique(levels)}})
    return rows, bands


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dir", nargs="?", help="the --save-predictions folder of a vs_hand_written.py run")
    parser.add_argument("--dataset", default="elpv")
    parser.add_argument("--source", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                         "vs_hand_written.json"))
    parser.add_argument("--name", default="ensembles")
    args = parser.parse_args(argv)
    if args.dir is None:  # `make bench` runs every script bare: this one scores an earlier run
        print("skipped: needs DIR (a vs_hand_written.py --save-predictions folder); see the module docstring")
        return

    with open(args.source) as f:
        bench = json.load(f)
    folder = os.path.abspath(args.dir)
    members = [r for r in bench["rows"] if r["dataset"] == args.dataset and r.get("predictions")
               and os.path.abspath(os.path.dirname(r["predictions"])) == folder and os.path.isfile(r["predictions"])]
    if not members:
        raise SystemExit(f"no rows of {args.source} name prediction files under {folder}")
    run = members[0]["run"]
    members = [{"method": r["method"], "seed": r["seed"], "wall_s": r["wall_s"], "path": r["predictions"],
                "benchmark_accuracy": r["accuracy"]} for r in members if r["run"] == run]
    hand = [r["wall_s"] for r in bench["rows"] if r["run"] == run and r["dataset"] == args.dataset
            and r["method"] == "hand_written"]
    labels = np.load(os.path.join(folder, f"{args.dataset}_labels.npy"))
    levels = certainty(args.dataset)
    if levels is not None and not np.array_equal(levels > 0.5, labels.astype(bool)):
        raise SystemExit("the reconstructed test split does not match the saved labels")
    rows, bands = score(members, labels, float(np.mean(hand)) if hand else None, levels)
    for m in members:  # the saved probabilities must repeat what the benchmark measured
        single = next(r for r in rows if r["ensemble"] == f"{m['method']} seed {m['seed']}")
        if abs(single["accuracy"] - m["benchmark_accuracy"]) > 5e-4:  # float32 metric vs exact
            raise SystemExit(f"{m['path']}: accuracy {single['accuracy']:.4f} != the benchmark's "
                             f"{m['benchmark_accuracy']:.4f}")
    print_table(rows)
    summary = {}
    if bands:
        summary["by_label_certainty"] = bands
        print_table(bands)
    write_result(args.name, rows, {**summary, "dataset": args.dataset, "run": run, "test_size": int(len(labels)),
                                   "hand_written_wall_s_mean": float(np.mean(hand)) if hand else None,
                                   "seeds": sorted({m["seed"] for m in members}),
                                   "what": "average of the members' softmax outputs; cost = sum of their training "
                                           "wall times (same run, same machine)"})


if __name__ == "__main__":
    main()
