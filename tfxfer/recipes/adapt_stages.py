"""The recipe's ``adapt:`` step: adapt the fine-tuned model to a target domain, measured.

A recipe with ::

    adapt: {method: coral, target: sentiment_tweets}

runs this step right after fine-tuning and before the model is saved for evaluation and export
(so the exported model *is* the adapted one, and a plain classifier: the DANN / CORAL wrappers and
the domain classifier never reach ``model/model.keras``). The step belongs to the ``finetune``
stage (its record lists ``adaptation.json``; a changed ``adapt:`` section re-runs that stage, and a
recipe without one keeps its fingerprints), because every later stage (evaluate, distill,
quantize, export, verify) reads the model that stage saved. ``target`` is a data spec read like
``data.source`` (a packaged data set, a folder of class sub-folders, a table file). Only the
*inputs* of its training split are adapted on; its labels, when the loader found any, are used
for scoring only:

1. shift: `tfxfer.adapt.detect_shift` between the source's held-out inputs and the target's
   training inputs, on the fine-tuned model's features (``adapt.shift: false`` skips it);
2. source only: the fine-tuned model's metrics on the target's held-out split;
3. oracle: the same model with its head retrained on the *labelled* target training features
   (the weights are put back afterwards) -- how far supervision on the target would get;
4. the method: ``adabn`` (`adapt_batchnorm`, image models), ``coral`` (`DeepCORAL`), ``dann``
   (`DANN`), ``self_train`` (class-balanced pseudo-labelling), ``coral_input`` (the head retrained
   for ``adapt.epochs`` on the source training features mapped to the target's mean and covariance by
   `fit_coral_map`, the paper's source -> target recipe) or ``label_shift`` (`estimate_target_priors`
   after a temperature fitted on the source's validation split, folded into the output layer by
   `fold_prior_correction`);
5. adapted: the adapted model's metrics on the target's held-out split.

It writes ``<run>/adaptation.json`` = ``{"method", "target", "source_only", "adapted", "oracle",
"shift", "notes", "stopped"}`` (`tfxfer.report.run_data` documents the format; the report renders
it). ``notes`` say what the method did, in words. An adaptation that diverges or collapses
(`AdaptationDivergedError`) keeps the last good weights, and one that changes nothing (label_shift
when EM does not settle, self_train without a confident prediction) is no adaptation either: both
set ``"stopped": true`` and the notes say which, so the report never shows them as a method that ran.

Each domain is capped at ``adapt.max_examples`` examples per split by a seeded subset stratified by
class (every class keeps an example while the cap allows one per class).

Example (what a finished step wrote):
    >>> import json, os, tempfile
    >>> run = tempfile.mkdtemp()
    >>> record = {"method": "adabn", "target": "photos/", "source_only": {"accuracy": 0.71},
    ...           "adapted": {"accuracy": 0.78}, "oracle": None, "shift": None,
    ...           "notes": ["AdaBN: 52 BatchNorm layers re-estimated on 300 target examples"], "stopped": False}
    >>> write_record(run, record)
    'adaptation.json'
    >>> json.load(open(os.path.join(run, "adaptation.json")))["adapted"]
    {'accuracy': 0.78}
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from tfxfer.errors import ConfigError, ModelError
from tfxfer.utils.atomic import atomic_write_json

RECORD = "adaptation.json"
METRICS = ("accuracy", "macro_f1", "ece")


def write_record(run_dir: str, record: dict) -> str:
    """Write ``record`` to ``<run_dir>/adaptation.json`` atomically; returns the relative path."""
    atomic_write_json(os.path.join(run_dir, RECORD), record)
    return RECORD


def adapt_config(c) -> dict:
    """The configuration the adapt step depends on (empty when the recipe does not adapt, so a recipe
    without ``adapt:`` keeps its stage fingerprints)."""
    return {"adapt": c.section("adapt")["adapt"]} if c.adapt.method else {}


def _target_config(cfg):
    data = dataclasses.replace(cfg.data, source=cfg.adapt.target)
    return dataclasses.replace(cfg, data=data)


@dataclasses.dataclass
class _Domain:
    """Arrays of one domain: training inputs / labels and held-out inputs / labels."""

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_eval: np.ndarray
    y_eval: np.ndarray | None
    class_names: list
    x_val: np.ndarray | None = None  # the validation split, where there is one besides the held-out one
    y_val: np.ndarray | None = None
    train_total: int | None = None  # training examples before the adapt.max_examples cap (None: not capped)


def _stratified(ids: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """``limit`` row indices drawn within each class: one per class first (``limit`` random classes
    when there are more classes than that), the rest shared in proportion to the class sizes."""
    classes, counts = np.unique(ids, return_counts=True)
    take = np.zeros(len(classes), dtype=np.int64)
    if limit < len(classes):
        take[rng.choice(len(classes), size=limit, replace=False)] = 1
    else:
        take[:] = 1
        spare, room = limit - len(classes), counts - 1  # room in total >= spare: len(ids) > limit
        share = spare * room / room.sum()
        take += np.floor(share).astype(np.int64)
        order = np.argsort(-(share - np.floor(share)), kind="stable")  # largest remainders first
        take[order[:spare - int(take.sum() - len(classes))]] += 1
    return np.concatenate([rng.choice(np.flatnonzero(ids == c), size=k, replace=False)
                           for c, k in zip(classes, take) if k])


def _limit(x, y, limit, seed):
    """At most ``limit`` examples: a seeded subset, stratified by class when there are labels (a plain
    random subset could drop a class, which label_shift cannot estimate a prior for)."""
    if limit is None or len(x) <= limit:
        return x, y
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=limit, replace=False) if y is None else _stratified(_ids(y), limit, rng)
    idx = np.sort(idx)
    return x[idx], (None if y is None else y[idx])


def _image_domain(splits, limit, seed) -> _Domain:
    from tfxfer.recipes.image_data import take_images

    x_train, y_train = take_images(splits.train_plain, limit=None)
    x_eval, y_eval = take_images(splits.eval, limit=None)
    total = len(x_train)
    x_train, y_train = _limit(x_train, y_train, limit, seed)
    x_eval, y_eval = _limit(x_eval, y_eval, limit, seed + 1)
    x_val = y_val = None
    if splits.val is not None and splits.test is not None:
        x_val, y_val = _limit(*take_images(splits.val, limit=None), limit, seed + 2)
    return _Domain(x_train, _ids(y_train), x_eval, _ids(y_eval), list(splits.class_names), x_val, _ids(y_val),
                   total if total > len(x_train) else None)


def as_strings(x) -> np.ndarray:
    return np.asarray([str(t) for t in x], dtype=object)


def _text_domain(splits, limit, seed) -> _Domain:
    total = len(splits.train[0])
    x_train, y_train = _limit(as_strings(splits.train[0]), np.asarray(splits.train[1]), limit, seed)
    x_eval, y_eval = _limit(as_strings(splits.eval[0]), np.asarray(splits.eval[1]), limit, seed + 1)
    x_val = y_val = None
    if splits.val is not None and splits.test is not None:
        x_val, y_val = _limit(as_strings(splits.val[0]), np.asarray(splits.val[1]), limit, seed + 2)
    return _Domain(x_train, _ids(y_train), x_eval, _ids(y_eval), list(splits.class_names), x_val, _ids(y_val),
                   total if total > len(x_train) else None)


def _ids(y):
    if y is None:
        return None
    y = np.asarray(y)
    return y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(len(y)).astype(np.int64)


def load_target(ctx, image_size=None) -> _Domain:
    """The target domain's arrays, read with the recipe's own loader (``adapt.target`` as ``data.source``;
    images at ``image_size``, the model's input size)."""
    from tfxfer.recipes.sources import resolve_source

    cfg = ctx.cfg
    target_cfg = _target_config(cfg)
    try:
        source = resolve_source(target_cfg)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("`data.source`", "`adapt.target`")) from None
    limit, seed = cfg.adapt.max_examples, cfg.seed
    if cfg.task == "image_classification":
        from tfxfer.recipes.image_data import load_image_data

        return _image_domain(load_image_data(target_cfg, source, image_size=tuple(image_size)), limit, seed)
    from tfxfer.recipes.text_data import load_text_data

    return _text_domain(load_text_data(target_cfg, source), limit, seed)


def source_domain(ctx, data) -> _Domain:
    """The source (the recipe's data) as arrays, capped at ``adapt.max_examples`` per split."""
    limit, seed = ctx.cfg.adapt.max_examples, ctx.cfg.seed
    if ctx.cfg.task == "image_classification":
        return _image_domain(data, limit, seed)
    return _text_domain(data, limit, seed)


def _predict(ctx, model, x):
    batch = ctx.cfg.train.batch_size
    if ctx.cfg.task == "image_classification":
        return np.asarray(model.predict(x, batch_size=batch, verbose=0))
    from tfxfer.text import predict_texts

    return np.asarray(predict_texts(model, x, batch_size=batch))


def _metrics(ctx, model, domain: _Domain) -> dict | None:
    if domain.y_eval is None:
        return None
    from tfxfer.metrics import classification_metrics

    full = classification_metrics(_predict(ctx, model, domain.x_eval), domain.y_eval, domain.class_names)
    return {k: float(full[k]) for k in METRICS}


def _check_labels(source: _Domain, target: _Domain) -> None:
    if list(target.class_names) != list(source.class_names):
        raise ConfigError(f"`adapt.target`: its classes {target.class_names[:8]} are not the recipe's classes "
                          f"{source.class_names[:8]} (same names in the same order are needed: the target is "
                          "scored with the source's head)")


def _oracle(ctx, model, source: _Domain, target: _Domain) -> dict | None:
    """Metrics of ``model`` with its head retrained on the labelled target training split (weights restored)."""
    if target.y_train is None or target.y_eval is None or len(np.unique(target.y_train)) < 2:
        return None
    from tfxfer.train.head import extract_features, train_head_on_features

    t = ctx.cfg.train
    saved = [np.array(w) for w in model.get_weights()]
    try:
        features, _ = extract_features(model, target.x_train, batch_size=t.batch_size)
        train_head_on_features(model, features, target.y_train, epochs=max(1, t.head_epochs or 5),
                               learning_rate=t.base_lr, batch_size=t.batch_size, verbose=0, seed=ctx.cfg.seed)
        return _metrics(ctx, model, target)
    finally:
        model.set_weights(saved)


def _shift(ctx, model, source: _Domain, target: _Domain) -> dict | None:
    if not ctx.cfg.adapt.shift:
        return None
    from tfxfer.adapt import detect_shift
    from tfxfer.report.run_data import shift_record

    result = detect_shift(model, (source.x_eval, source.y_eval) if source.y_eval is not None else source.x_eval,
                          target.x_train, batch_size=ctx.cfg.train.batch_size, seed=ctx.cfg.seed)
    return shift_record(result, source=ctx.cfg.data.source, target=ctx.cfg.adapt.target, split="train",
                        class_names=source.class_names)


def _compile_for(model, learning_rate):
    import keras

    from tfxfer.train.losses import compile_args

    return {"optimizer": keras.optimizers.Adam(learning_rate), **compile_args(model, np.zeros(2, "int64"))}


def _run_method(ctx, model, source: _Domain, target: _Domain) -> tuple[list[str], bool]:
    """Adapt ``model`` in place; returns ``(notes, stopped)``: what was done, in words, and whether the
    method stopped short (diverged or collapsed, the last good weights kept; or changed nothing)."""
    from tfxfer.adapt import (DANN, AdaptationDivergedError, DeepCORAL, adapt_batchnorm, adaptation_dataset,
                              self_train)

    cfg, a = ctx.cfg, ctx.cfg.adapt
    lr = a.learning_rate if a.learning_rate is not None else cfg.train.base_lr * cfg.train.unfreeze_lr_factor
    batch = cfg.train.batch_size
    notes, stopped = [], False
    try:
        if a.method == "adabn":
            report = adapt_batchnorm(model, target.x_train, batch_size=max(2, batch), seed=cfg.seed)
            notes.append(f"AdaBN: {report.layers} BatchNorm layers re-estimated on {report.examples} target examples")
        elif a.method in ("coral", "dann"):
            feature_layer = "head_hidden" if any(layer.name == "head_hidden" for layer in model.layers) else "pool"
            cls, weight = (DeepCORAL, "coral_weight") if a.method == "coral" else (DANN, "domain_weight")
            try:
                trainer = cls(model, feature_layer=feature_layer, **{weight: a.weight})
            except ModelError as exc:
                raise ConfigError(f"`adapt.method: {a.method}` trains the layers below {feature_layer!r}, and the "
                                  f"fine-tuned model has none to train there. Set `model.hidden_units` (then "
                                  f"'head_hidden' is aligned) or fine-tune the backbone (`train.epochs` > 0). "
                                  f"({exc})") from None
            compiled = _compile_for(model, lr)
            trainer.compile(optimizer=compiled["optimizer"], loss=compiled["loss"])
            batch_size = min(batch, len(source.x_train))
            ds = adaptation_dataset((source.x_train, source.y_train), target.x_train, batch_size=batch_size,
                                    seed=cfg.seed)
            trainer.fit(ds, epochs=a.epochs, verbose=ctx.console.keras_verbose)
            notes.append(f"{a.method}: {a.epochs} epoch(s) aligning {feature_layer!r}, weight {a.weight:g}, lr {lr:g}")
        elif a.method == "coral_input":
            notes.append(_coral_input(ctx, model, source, target, lr))
        elif a.method == "label_shift":
            note, applied = _label_shift(ctx, model, source, target)
            notes.append(note)
            stopped = not applied
        else:
            model.compile(**_compile_for(model, lr))
            result = self_train(model, (source.x_train, source.y_train), target.x_train, threshold=a.threshold,
                                rounds=a.rounds, epochs=a.epochs, batch_size=batch,
                                per_class_fraction=a.per_class_fraction, seed=cfg.seed)
            notes.append(result.summary().replace("\n  ", "; "))
            stopped = result.stopped != "completed"  # no confident prediction: fewer rounds than asked, or none
    except AdaptationDivergedError as exc:
        notes.append(f"stopped: {exc} (the last good weights are kept)")
        ctx.console.info(f"  adapt: {exc}")
        stopped = True
    return notes, stopped


def _coral_input(ctx, model, source: _Domain, target: _Domain, lr: float) -> str:
    """Retrain the head on source features re-coloured with the target's statistics (CORAL, closed form)."""
    from tfxfer.adapt import fit_coral_map
    from tfxfer.train.head import extract_features, train_head_on_features

    cfg, batch = ctx.cfg, ctx.cfg.train.batch_size
    source_features, _ = extract_features(model, source.x_train, batch_size=batch)
    target_features, _ = extract_features(model, target.x_train, batch_size=batch)
    coral = fit_coral_map(source_features, target_features, shrinkage=1.0)
    mapped = np.asarray(coral(source_features))
    train_head_on_features(model, mapped, source.y_train, epochs=cfg.adapt.epochs, learning_rate=lr,
                           batch_size=batch, verbose=0, seed=cfg.seed)
    return (f"coral_input: head retrained {cfg.adapt.epochs} epoch(s) at lr {lr:g} on {len(mapped)} source "
            f"features given the mean and covariance of {len(target_features)} target features")


def _label_shift(ctx, model, source: _Domain, target: _Domain) -> tuple[str, bool]:
    """Fold the EM estimate of the target's class priors (after a source-fitted temperature) into the
    output; returns ``(note, applied)`` (False: EM did not settle, or too few target examples)."""
    from tfxfer.adapt import estimate_target_priors, fit_temperature, fold_prior_correction

    classes = len(source.class_names)
    counts = np.bincount(source.y_train, minlength=classes)[:classes]
    missing = [name for name, count in zip(source.class_names, counts) if count == 0]
    if missing:  # its source prior would be 0: no prior ratio to estimate for it
        capped = source.train_total is not None and len(source.y_train) < classes  # the cap is stratified
        where = (f"among the {len(source.y_train)} source training examples kept by `adapt.max_examples` "
                 f"(of {source.train_total}); raise it to at least {classes} so that every class keeps one"
                 if capped else "in the source training split (`adapt.max_examples` keeps every class it has)")
        raise ConfigError(f"`adapt.method: label_shift` estimates the target's class priors against the source's, "
                          f"and class {missing[0]!r} has no example {where}"
                          + (f" ({len(missing)} classes have none)" if len(missing) > 1 else ""))
    temperature, fitted = 1.0, "no source validation split to fit a temperature on (1.0 kept)"
    if source.y_val is not None and len(np.unique(source.y_val)) > 1:  # never the held-out split
        temperature = fit_temperature(_predict(ctx, model, source.x_val), source.y_val)
        fitted = f"temperature {temperature:.3f} fitted on {len(source.y_val)} source validation examples"
    estimate = estimate_target_priors(_predict(ctx, model, target.x_train), source_priors=counts / counts.sum(),
                                      temperature=temperature)
    priors = ", ".join(f"{name} {p:.2f}" for name, p in zip(source.class_names[:8], estimate.priors))
    if not estimate.converged:  # as correct_label_shift: an estimate EM did not settle on changes nothing
        return (f"label_shift: EM did not converge on the target's class priors ({priors}); {fitted}; no "
                "correction was applied"), False
    if estimate.too_small:  # as correct_label_shift: a handful of target examples changes nothing
        return (f"label_shift: {estimate.examples} target example(s) are too few to estimate {classes} class priors "
                f"(EM gave {priors}); {fitted}; no correction was applied"), False
    fold_prior_correction(model, estimate.weights, temperature)
    return f"label_shift: target priors estimated by EM ({priors}); {fitted}; folded into the output layer", True


def run_adapt(ctx, model, data, *, image_size=None) -> dict:
    """Adapt ``model`` (the fine-tuned model, in place) to ``adapt.target`` and write the record.

    Args:
        ctx: the `RunContext` (``ctx.cfg.adapt`` set).
        model: the fine-tuned Keras model; it is adapted in place and stays a plain classifier.
        data: the recipe's loaded source splits (`ImageSplits` or `TextSplits`).
        image_size: the image model's input size (image recipes).

    Returns:
        ``{"adaptation": <relative path of the record>, "source_only", "adapted", "oracle", "notes",
        "stopped", "sizes"}`` (JSON-safe, for the stage record).
    """
    cfg, console = ctx.cfg, ctx.console
    console.info(f"  adapt: {cfg.adapt.method} to {cfg.adapt.target}")
    target = load_target(ctx, image_size)
    source = source_domain(ctx, data)
    _check_labels(source, target)
    shift = _shift(ctx, model, source, target)
    if shift is not None:
        console.info(f"  adapt: {shift['verdict'].split(' Consider')[0]}")
    source_only = _metrics(ctx, model, target)
    confidence_before = _confidence(ctx, model, target)
    oracle = _oracle(ctx, model, source, target)
    notes, stopped = _run_method(ctx, model, source, target)
    adapted = _metrics(ctx, model, target)
    if source_only is None:  # no target labels: the record says what the predictions did instead
        notes.append("the target has no labels: the figures are the mean top-1 confidence on its held-out inputs")
        source_only, adapted = {"mean_confidence": confidence_before}, {"mean_confidence": _confidence(ctx, model, target)}
    record = {"method": cfg.adapt.method, "target": cfg.adapt.target, "source_only": source_only,
              "adapted": adapted, "oracle": oracle, "shift": shift, "notes": notes, "stopped": stopped}
    rel = write_record(ctx.run_dir, record)
    if source_only and adapted and "accuracy" in source_only:
        console.info(f"  adapt: target accuracy {source_only['accuracy']:.4f} source-only -> "
                     f"{adapted['accuracy']:.4f} adapted" + (f" (oracle {oracle['accuracy']:.4f})" if oracle else ""))
    for note in notes:
        console.detail(f"  adapt: {note}")
    return {"adaptation": rel, "source_only": source_only, "adapted": adapted, "oracle": oracle, "notes": notes,
            "stopped": stopped, "sizes": {"source_train": int(len(source.x_train)),
                                          "target_train": int(len(target.x_train)),
                                          "target_eval": int(len(target.x_eval))}}


def _confidence(ctx, model, target: _Domain) -> float:
    return float(_predict(ctx, model, target.x_eval).max(axis=1).mean())
