"""tfxfer's defaults against a hand-written Keras / scikit-learn script: same data, split, backbone, machine, run.

For every data set and training seed, the hand-written baseline (`benchmarks/hand_written.py`: the Keras
transfer-learning guide's method with early stopping and best-epoch restore; TF-IDF and frozen-encoder logistic
regression for text) and ``tfxfer.fine_tune`` with *default arguments* (only ``val=``, ``test=`` and ``seed=``
given) train on the same arrays. Rows: test accuracy, wall time, what each tfxfer step bought (head-only vs
fine-tuned validation score, which was kept). Summary: mean +- std per method and the wall-time ratio.

Data (``--datasets``):

* ``elpv``: ELPV solar cells, functional / defective (defect probability > 0.5), all 2,624 cells split 75/25
  stratified (seed 0), 10 % of the training part held for validation (stratified, seed 0); EfficientNet-Lite0.
  ``--elpv-split sklearn`` draws the same proportions with scikit-learn on the CSV order, the split the issue's
  figures came from (`elpv_split_sklearn`).
* ``animal_mnist``, ``fashion_mnist``: the packaged splits; EfficientNet-Lite0 on gray digits-style images.
* ``sentiment_movies``: the packaged splits; MiniLM-L6 (``all-minilm-l6-v2``), sequence length 64, against TF-IDF +
  LR and frozen-encoder + LR.

Every tfxfer row also scores horizontal-flip test-time augmentation on the same model (``tta``: accuracy with
and without, and its wall-time cost; not in the training wall time). ``--variants '{"tfxfer_ls0.1":
{"label_smoothing": 0.1}}'`` adds rows of tfxfer with options changed (images and text), on the same splits and
seeds (how the cheap wins were measured before they could become defaults; an image variant's ``"backbone"`` key
swaps EfficientNet-Lite0 for Lite1 / Lite2 at the same input size, its ``"build"`` key passes ``build_model``
arguments such as ``{"pooling": "max"}``, ``"adabn": true`` re-estimates the BatchNorm statistics on the training
images before training, ``"soft_targets": true`` trains and selects on ELPV's expert defect probability as a soft
two-class target); ``--elpv-split sklearn`` draws ELPV's split with scikit-learn instead, ``--elpv-split-seed N``
draws the benchmark's own split with another seed (``elpv_across_splits`` in the summary pairs the two methods
on every split measured); ``--tag`` names a run's summary entries; ``--recipe`` adds, for text, the packaged
recipe run end to end (the CLI user's path) beside the ``fine_tune`` rows; ``--no-hand-written`` and
``--no-defaults`` leave out the baselines and the defaults row (a screening run).

``--limit N`` keeps N training examples (stratified, seed 0; val/test keep ``N // 4``): a reduced run, labelled so
in the JSON. The full run: ``python benchmarks/vs_hand_written.py --datasets elpv animal_mnist sentiment_movies
fashion_mnist --seeds 0 1 2 --size 224``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import print_table, write_result  # noqa: E402

IMAGE_SETS = ("elpv", "animal_mnist", "fashion_mnist")
TEXT_SETS = ("sentiment_movies",)
BACKBONE = "efficientnet_lite0"
TEXT_ENCODER = "all-minilm-l6-v2"


def _stratified(y, fraction, seed):
    """Indices ``(keep, held)``: ``fraction`` of every class held out."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        held.extend(idx[:int(round(fraction * len(idx)))])
    held = np.sort(np.array(held, dtype=int))
    return np.setdiff1d(np.arange(len(y)), held), held


def _kept(y, n, seed=0):
    """Indices of ``n`` examples kept (stratified), or None to keep every one."""
    if n is None or len(y) <= n:
        return None
    return np.sort(_stratified(y, 1 - n / len(y), seed)[0])


def elpv_split_sklearn(y):
    """The same proportions drawn by scikit-learn (``train_test_split(stratify=..., random_state=0)``, 75/25 then
    10 % of the rest for validation) on the cells in the data set's CSV order: the split a user of
    ``elpv_dataset.load_dataset`` + scikit-learn draws (``--elpv-split sklearn``, a split-sensitivity check)."""
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=0)
    train, val = train_test_split(np.arange(len(rest)), test_size=0.10, stratify=y[rest], random_state=0)
    return rest, test, train, val


#: ELPV's expert defect probability per split (``{"train", "val", "test"}``), filled by `load` for the
#: ``"soft_targets"`` variant option.
ELPV_PROBABILITY = {}


def elpv_split(y, seed=0):
    """The benchmark's ELPV split of every cell (labels ``y`` in the packaged train, val, test order): ``(rest,
    test)`` 75/25 stratified (numpy, seed 0), then ``(train, val)`` indices into ``rest``, 10 % held for validation
    (seed 0): the issue's proportions, drawn our way. The issue's own figures most likely came from scikit-learn's
    draw (`elpv_split_sklearn`: the hand-written script scores 0.878 there on seed 0, the issue's 0.877; 0.854
    here), the easier test set of the two: the same methods score 2-3 points higher on it. ``seed`` draws another
    split of the same proportions (``--elpv-split-seed``: how much of a comparison is the draw of its test set)."""
    rest, test = _stratified(y, 0.25, seed)
    train, val = _stratified(y[rest], 0.10, seed)
    return rest, test, train, val


def load(name, *, size, limit, split="tfxfer", split_seed=0, min_abs_rating=None):
    """``{"train", "val", "test"}`` as ``(x, y)`` arrays and the number of classes (``split``: ELPV's split,
    "tfxfer" (`elpv_split`, the benchmark's, drawn with ``split_seed``) or "sklearn" (`elpv_split_sklearn`, CSV
    order)). ``min_abs_rating`` (sentiment sets): keep only snippets whose mean human rating is at least that
    far from neutral, in every split (SST-2's convention: items the raters call neutral have no binary label)."""
    from tfxfer import data

    if name == "elpv" and split == "sklearn":
        from tfxfer.data.datasets import read_elpv

        x, y, class_names, extras = read_elpv()  # the CSV order
        p, y = extras["defect_probability"], y.astype(int)
        rest, test, tr, va = elpv_split_sklearn(y)
    else:
        d = data.load(name)
        class_names = d.class_names
        if name == "elpv":
            x = np.concatenate([d.train[0], d.val[0], d.test[0]])
            y = np.concatenate([d.train[1], d.val[1], d.test[1]]).astype(int)
            p = np.concatenate([d.extras[s]["defect_probability"] for s in ("train", "val", "test")])
            rest, test, tr, va = elpv_split(y, split_seed)
    if name == "elpv":
        splits = {"train": (x[rest][tr], y[rest][tr]), "val": (x[rest][va], y[rest][va]), "test": (x[test], y[test])}
        ELPV_PROBABILITY.update(train=p[rest][tr], val=p[rest][va], test=p[test])
    else:
        splits = {"train": d.train, "val": d.val, "test": d.test}
        if min_abs_rating is not None:
            clear = {k: np.abs(d.extras[k]["rating"]) >= min_abs_rating for k in splits}
            splits = {k: (np.asarray(v[0])[clear[k]], np.asarray(v[1])[clear[k]]) for k, v in splits.items()}
    splits = {k: (np.asarray(v[0]), np.asarray(v[1]).astype(int)) for k, v in splits.items()}
    if limit:
        for k, (x, y) in list(splits.items()):
            keep = _kept(y, limit if k == "train" else max(50, limit // 4))
            if keep is not None:
                splits[k] = (x[keep], y[keep])
                if k in ELPV_PROBABILITY and name == "elpv":
                    ELPV_PROBABILITY[k] = ELPV_PROBABILITY[k][keep]
    if name in IMAGE_SETS:
        import tensorflow as tf

        def resize(x):
            x = x if x.ndim == 4 else x[..., None]
            out = [tf.image.resize(tf.cast(x[i:i + 256], tf.float32), (size, size)).numpy()
                   for i in range(0, len(x), 256)]
            return np.clip(np.rint(np.concatenate(out)), 0, 255).astype("uint8")

        splits = {k: (resize(v[0]), v[1]) for k, v in splits.items()}
    return splits, len(class_names)


def run_tfxfer_image(splits, *, num_classes, size, seed, options=None, tta=True, save=None):
    """tfxfer's defaults (plus ``options``, for a variant row; ``"backbone"`` / ``"build"``: the model); with
    ``tta``, horizontal-flip test-time augmentation is scored on the same model afterwards (its seconds are not in
    the training wall time); ``save``: a ``.npy`` path for the test-set probabilities."""
    import time

    import keras

    from tfxfer.models import build_model
    from tfxfer.train.fine_tune import fine_tune
    from tfxfer.train.tta import evaluate_tta

    options = dict(options or {})
    backbone = options.pop("backbone", BACKBONE)  # a variant may swap the backbone (same input size, same split)
    build = options.pop("build", {})  # ... or pass build_model arguments (e.g. {"pooling": "max"})
    scored = splits["test"]  # test-time augmentation scores the class ids
    adabn = options.pop("adabn", False)  # ... or re-estimate BatchNorm statistics on the training images first
    if options.pop("soft_targets", False):  # ... or train (and select) on ELPV's expert defect probability
        def soft(split):
            q = ELPV_PROBABILITY[split].astype("float32")
            return np.stack([1 - q, q], axis=1)

        splits = {"train": (splits["train"][0], soft("train")), "val": (splits["val"][0], soft("val")),
                  "test": (splits["test"][0], np.eye(2, dtype="float32")[splits["test"][1]])}
    if "stages" in options:  # JSON object keys are strings: {"0": 5} -> {0: 5}
        options["stages"] = {int(k): v for k, v in options["stages"].items()}
    keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    model = build_model(backbone, num_classes, input_size=(size, size), weights="imagenet", **build)
    if adabn:
        from tfxfer.adapt import adapt_batchnorm
        from tfxfer.train.data import with_channels

        adapt_batchnorm(model, with_channels(model, splits["train"])[0], batch_size=64, seed=seed)
    result = fine_tune(model, splits["train"], val=splits["val"], test=splits["test"], seed=seed, verbose=0,
                       **options)
    row = {**_tfxfer_row(result), "wall_s": time.perf_counter() - t0}
    if save:  # the test-set probabilities, for scoring ensembles afterwards (not timed)
        os.makedirs(os.path.dirname(save), exist_ok=True)
        np.save(save, model.predict(splits["test"][0], batch_size=32, verbose=0))
        row["predictions"] = save
    if tta:
        report = evaluate_tta(model, scored)
        row["tta"] = {k: report[k] for k in ("views", "accuracy", "plain_accuracy", "seconds", "plain_seconds", "cost")}
    return row


def _tfxfer_row(result):
    sel = result.selection or {}
    return {"accuracy": result.test.get("accuracy"), "kept": sel.get("kept"), "val_head": sel.get("head"),
            "val_finetuned": sel.get("fine_tuned"), "monitor": sel.get("monitor"),
            "step_wall_s": {s["name"]: round(s.get("wall_s", 0.0), 1) for s in result.steps},
            "settings": {k: v for k, v in result.settings.items() if k != "class_weight"},
            "averaged": sel.get("averaged"), "kept_average": sel.get("kept_average")}


def run_tfxfer_text(splits, *, num_classes, seed, options=None):
    import tempfile

    import keras

    from tfxfer.text import build_text_classifier, load_encoder
    from tfxfer.train.fine_tune import fine_tune

    options = dict(options or {})
    with tempfile.TemporaryDirectory() as scratch:
        # a variant may run with what the recipe adds around fine_tune (to find where the two paths part):
        # ``"checkpoint_dir": "fresh"`` (per-epoch checkpoints in an empty folder), ``"recipe_callbacks": true``
        # (the recipe's TensorBoard and learning-rate log callbacks)
        if options.get("checkpoint_dir") == "fresh":
            options["checkpoint_dir"] = os.path.join(scratch, "checkpoints")
        if options.pop("recipe_callbacks", False):
            from tfxfer.recipes.training_log import LearningRateLog

            options["callbacks"] = [keras.callbacks.TensorBoard(os.path.join(scratch, "tb"), write_graph=False),
                                    LearningRateLog()]
        keras.utils.set_random_seed(seed)
        model = build_text_classifier(load_encoder(TEXT_ENCODER, sequence_length=64, weights="pretrained"),
                                      num_classes)
        as_text = {k: (np.asarray(v[0], dtype=object), v[1]) for k, v in splits.items()}
        result = fine_tune(model, as_text["train"], val=as_text["val"], test=as_text["test"], seed=seed, verbose=0,
                           **options)
    return _tfxfer_row(result)


def run_tfxfer_recipe(seed, *, overrides=()):
    """The packaged text recipe (``pipelines/text_classification.yaml``, every stage: the head on cached
    embeddings, the encoder fine-tune, evaluation, export and the gate) with ``seed=<seed>``, in a temporary run
    folder: the path a CLI user takes, on the same packaged splits as the other text rows (``overrides``: more
    ``--set`` values, for a smoke test)."""
    import tempfile

    from tfxfer.errors import GateError
    from tfxfer.recipes import load_config, run_pipeline

    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    overrides = [f"seed={seed}", *overrides]
    cfg = load_config(os.path.join(here, "pipelines", "text_classification.yaml"), overrides=overrides)
    with tempfile.TemporaryDirectory() as out:
        run_dir = os.path.join(out, "run")
        try:
            run_pipeline(cfg, out_dir=run_dir, verbosity=0)
        except GateError:  # a file failed its gate (exit 3 on the CLI): the manifest says which; the row records it
            pass
        with open(os.path.join(run_dir, "model", "history.json")) as f:
            selection = json.load(f).get("selection") or {}
        with open(os.path.join(run_dir, "manifest.json")) as f:
            manifest = json.load(f)
        gate, metrics = manifest.get("gate") or {}, manifest.get("metrics") or {}
        stages = manifest.get("stages") or {}
    keys = ("variant", "file", "gate", "accuracy_keras", "accuracy_file", "top1_agreement", "size_kib", "latency_ms")
    delivered = [{k: r.get(k) for k in keys} for r in gate.get("rows") or []
                 if isinstance(r, dict) and r.get("file") and r["file"] == os.path.basename(gate.get("deliver") or "")]
    by_variant = {r.get("variant"): {k: r.get(k) for k in keys} for r in gate.get("rows") or [] if isinstance(r, dict)}
    stage_s = {name: round(s.get("wall_s") or 0.0, 1) for name, s in stages.items() if isinstance(s, dict)}
    return {"accuracy": metrics.get("accuracy"), "kept": selection.get("kept"),
            "val_head": selection.get("head"), "val_finetuned": selection.get("fine_tuned"),
            "monitor": selection.get("monitor"), "gate_passed": gate.get("passed"), "gate_failed": gate.get("failed"),
            "delivered": delivered[0] if delivered else None, "files": by_variant, "stage_wall_s": stage_s,
            "recipe": "pipelines/text_classification.yaml", "overrides": overrides}


def text_baselines(splits, *, seed):
    from hand_written import embedding_baseline, tfidf_baseline

    from tfxfer.text import build_text_classifier, load_encoder
    from tfxfer.train.head import extract_features

    rows = {"tfidf_lr": tfidf_baseline(splits["train"], splits["test"], seed=seed)}
    model = build_text_classifier(load_encoder(TEXT_ENCODER, sequence_length=64, weights="pretrained"), 2)

    def embed(texts):
        return extract_features(model, np.asarray(texts, dtype=object), batch_size=64)[0]

    rows["frozen_encoder_lr"] = embedding_baseline(embed, splits["train"], splits["test"], seed=seed)
    return rows


def summarize(rows, runs) -> dict:
    """Mean, std, spread and wall time per data set (and run configuration) and method."""
    summary = {"runs": runs, "reduced": any(r["reduced"] for r in runs),
               "full_command": "python benchmarks/vs_hand_written.py --datasets elpv animal_mnist sentiment_movies "
                               "fashion_mnist --seeds 0 1 2 --size 224",
               "backbone": BACKBONE, "text_encoder": TEXT_ENCODER, "per_dataset": {}}
    for key in sorted({(r["dataset"], r.get("run", "")) for r in rows}):
        name, label = key[0], _label(next(x for x in runs if x["command"] == key[1]) if key[1] else None, key[0])
        mine = [r for r in rows if r["dataset"] == name and r.get("run", "") == key[1]]
        per = {}
        for method in sorted({r["method"] for r in mine}):
            acc = [r["accuracy"] for r in mine if r["method"] == method]
            wall = [r["wall_s"] for r in mine if r["method"] == method]
            per[method] = {"mean": float(np.mean(acc)), "std": float(np.std(acc)), "spread": float(np.ptp(acc)),
                           "n": len(acc), "wall_s_mean": float(np.mean(wall)),
                           "seeds": [r["seed"] for r in mine if r["method"] == method]}
            tta = [r["tta"] for r in mine if r["method"] == method and r.get("tta")]
            if tta:
                per[method]["tta_hflip"] = {"mean": float(np.mean([t["accuracy"] for t in tta])),
                                            "plain_mean": float(np.mean([t["plain_accuracy"] for t in tta])),
                                            "cost_mean": float(np.mean([t["cost"] for t in tta])), "n": len(tta)}
        if "hand_written" in per and "tfxfer_defaults" in per:
            per["wall_ratio_tfxfer_over_hand_written"] = per["tfxfer_defaults"]["wall_s_mean"] / \
                per["hand_written"]["wall_s_mean"]
        summary["per_dataset"][label] = per
    summary["elpv_across_splits"] = across_splits(rows, runs)
    return summary


def across_splits(rows, runs) -> dict:
    """ELPV at 224 px on every training cell, the hand-written script against the defaults on each split measured
    (the latest run that has both on that split; seeds averaged within a split), then the mean over splits and
    the per-split differences: a comparison that does not rest on one draw of 656 test cells."""
    latest = {}
    for run in runs:
        if run["size"] != 224 or run["limit"] or "elpv" not in run["datasets"]:
            continue
        mine = [r for r in rows if r["dataset"] == "elpv" and r.get("run") == run["command"]]
        if {"hand_written", "tfxfer_defaults"} <= {r["method"] for r in mine}:
            latest[f"{run.get('elpv_split', 'tfxfer')}:{run.get('elpv_split_seed', 0)}"] = (run, mine)
    per_split = {}
    for key, (run, mine) in sorted(latest.items()):
        acc = {m: [r["accuracy"] for r in mine if r["method"] == m] for m in ("hand_written", "tfxfer_defaults")}
        seeds = sorted({r["seed"] for r in mine if r["method"] == "tfxfer_defaults"})
        per_split[key] = {"run": run.get("tag") or run["command"], "seeds": seeds,
                          **{m: float(np.mean(a)) for m, a in acc.items()},
                          "difference": float(np.mean(acc["tfxfer_defaults"]) - np.mean(acc["hand_written"]))}
    if not per_split:
        return {}
    diffs = [v["difference"] for v in per_split.values()]
    return {"splits": per_split, "n_splits": len(per_split),
            "hand_written_mean": float(np.mean([v["hand_written"] for v in per_split.values()])),
            "tfxfer_defaults_mean": float(np.mean([v["tfxfer_defaults"] for v in per_split.values()])),
            "difference_mean": float(np.mean(diffs)), "difference_min": float(np.min(diffs)),
            "defaults_ahead_on": sum(d > 0 for d in diffs)}


def _label(run, name):
    """``elpv@96px`` / ``elpv@96px,limit=500``: a data set and the run configuration it was measured at."""
    if run is None:
        return name
    size = "" if name in TEXT_SETS else f"@{run['size']}px"
    clear = f",|rating|>={run['min_abs_rating']:g}" if run.get("min_abs_rating") is not None else ""
    return f"{name}{size}" + (f",limit={run['limit']}" if run["limit"] else "") + clear + (
        f" [{run['tag']}]" if run.get("tag") else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["elpv", "animal_mnist", "sentiment_movies", "fashion_mnist"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=224, help="image side in pixels (both methods)")
    parser.add_argument("--limit", type=int, default=None, help="training examples kept per data set (reduced run)")
    parser.add_argument("--elpv-split", choices=("tfxfer", "sklearn"), default="tfxfer",
                        help="ELPV's split: the benchmark's (default) or scikit-learn's on the CSV order "
                             "(a split-sensitivity check; tag the run)")
    parser.add_argument("--elpv-split-seed", type=int, default=0,
                        help="the seed of the benchmark's ELPV split (default 0, the split of every earlier row); "
                             "another draws other cells for test and validation in the same proportions (tag the run)")
    parser.add_argument("--name", default="vs_hand_written")
    parser.add_argument("--variants", default=None,
                        help='JSON {"method name": {fine_tune keyword: value}}: extra tfxfer rows per seed, e.g. '
                             '\'{"tfxfer_ls0.1": {"label_smoothing": 0.1}}\'')
    parser.add_argument("--min-abs-rating", type=float, default=None,
                        help="sentiment sets: keep only snippets with |mean rating| >= this in every split "
                             "(1.0 drops the near-neutral ones; recorded in the run)")
    parser.add_argument("--tag", default=None, help="a label for this run's summary entries (e.g. which defaults)")
    parser.add_argument("--no-hand-written", action="store_true",
                        help="skip the hand-written / TF-IDF / frozen-encoder baselines (variants-only run)")
    parser.add_argument("--no-defaults", action="store_true",
                        help="skip the tfxfer_defaults rows (a screening run of --variants only)")
    parser.add_argument("--save-predictions", default=None, metavar="DIR",
                        help="write each image row's test-set probabilities to DIR/<dataset>_<method>_<seed>.npy "
                             "(and the test labels to DIR/<dataset>_labels.npy), to score ensembles afterwards")
    parser.add_argument("--recipe", action="store_true",
                        help="text sets: add a tfxfer_recipe row per seed (the packaged text recipe run end to end, "
                             "`tfxfer run pipelines/text_classification.yaml --set seed=<seed>`)")
    parser.add_argument("--append", action="store_true",
                        help="add to the rows already in results/<name>.json (each row names its run)")
    args = parser.parse_args(argv)
    if args.elpv_split_seed and args.elpv_split != "tfxfer":
        parser.error("--elpv-split-seed draws the benchmark's split; scikit-learn's is fixed (random_state=0)")
    if args.recipe and args.limit:
        parser.error("--recipe runs the packaged recipe on every training text; it cannot be combined with --limit")
    command = " ".join(["python", "benchmarks/vs_hand_written.py", *(argv if argv is not None else sys.argv[1:])])
    run = {"command": command, "datasets": args.datasets, "seeds": args.seeds, "size": args.size, "limit": args.limit,
           "reduced": bool(args.limit) or args.size != 224 or len(args.seeds) < 3, "tag": args.tag,
           "elpv_split": args.elpv_split, "elpv_split_seed": args.elpv_split_seed,
           "min_abs_rating": args.min_abs_rating}
    from hand_written import image_baseline

    variants = json.loads(args.variants) if args.variants else {}
    run["variants"] = variants

    rows, runs, kept = [], [], {}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"{args.name}.json")
    if args.append and os.path.isfile(path):
        with open(path) as f:
            previous = json.load(f)
        rows, runs = previous["rows"], previous["summary"].get("runs", [])
        kept = {k: v for k, v in previous["summary"].items() if k in ("experiments", "note", "notes", "decisions")}
    runs.append(run)
    for name in args.datasets:
        splits, k = load(name, size=args.size, limit=args.limit, split=args.elpv_split,
                         split_seed=args.elpv_split_seed, min_abs_rating=args.min_abs_rating)
        sizes = {s: len(v[1]) for s, v in splits.items()}
        if name in TEXT_SETS and not args.no_hand_written:
            t0 = time.perf_counter()
            for method, r in text_baselines(splits, seed=0).items():
                rows.append({"dataset": name, "method": method, "seed": 0, "accuracy": r["accuracy"],
                             "wall_s": time.perf_counter() - t0, "sizes": sizes, "run": command})
        for seed in args.seeds:
            if name in IMAGE_SETS and not args.no_hand_written:
                t0 = time.perf_counter()
                hw = image_baseline(BACKBONE, splits["train"], splits["val"], splits["test"], num_classes=k,
                                    image_size=(args.size, args.size), seed=seed)
                rows.append({"dataset": name, "method": "hand_written", "seed": seed, "accuracy": hw["accuracy"],
                             "val_head": hw["val_accuracy_head"], "val_finetuned": hw["val_accuracy_finetuned"],
                             "wall_s": time.perf_counter() - t0, "sizes": sizes, "run": command})
            methods = {**({} if args.no_defaults else {"tfxfer_defaults": None}), **variants}
            if name in IMAGE_SETS:
                if args.save_predictions:
                    os.makedirs(args.save_predictions, exist_ok=True)
                    np.save(os.path.join(args.save_predictions, f"{name}_labels.npy"), splits["test"][1])
                for method, options in methods.items():
                    save = (os.path.join(args.save_predictions, f"{name}_{method}_{seed}.npy")
                            if args.save_predictions else None)
                    tx = run_tfxfer_image(splits, num_classes=k, size=args.size, seed=seed, options=options, save=save)
                    rows.append({"dataset": name, "method": method, "seed": seed, "sizes": sizes, "run": command,
                                 **({"options": options} if options else {}), **tx})
            else:
                for method, options in methods.items():
                    t0 = time.perf_counter()
                    tx = run_tfxfer_text(splits, num_classes=k, seed=seed, options=options)
                    rows.append({"dataset": name, "method": method, "seed": seed, "wall_s": time.perf_counter() - t0,
                                 "sizes": sizes, "run": command, **({"options": options} if options else {}), **tx})
                if args.recipe:
                    t0 = time.perf_counter()
                    tx = run_tfxfer_recipe(seed)
                    rows.append({"dataset": name, "method": "tfxfer_recipe", "seed": seed,
                                 "wall_s": time.perf_counter() - t0, "sizes": sizes, "run": command, **tx})
            print_table([{c: r.get(c) for c in ("dataset", "method", "seed", "accuracy", "wall_s", "kept")}
                         for r in rows if r["dataset"] == name and r["seed"] == seed and r["run"] == command])
            write_result(args.name, rows, {**summarize(rows, runs), **kept})  # every seed: a cut-off run keeps its rows
    summary = {**summarize(rows, runs), **kept}
    print_table([{"dataset": n, "method": m, **{k: x for k, x in v.items() if not isinstance(x, (dict, list))}}
                 for n, per in summary["per_dataset"].items() for m, v in per.items() if isinstance(v, dict)])
    write_result(args.name, rows, summary)


if __name__ == "__main__":
    main()
