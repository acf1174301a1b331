"""Image classification stages: data -> features (cached) -> finetune -> evaluate.

Each function takes the `RunContext`, writes its files into the run directory and returns JSON-safe
outputs (``artefacts`` lists the files, which the runner hashes).
"""

from __future__ import annotations

import contextlib
import os
import shutil

import numpy as np

from tfxfer.recipes.runner import Stage
from tfxfer.recipes.sources import resolve_source
from tfxfer.utils.atomic import atomic_path, atomic_write_json


def image_size_of(cfg) -> tuple[int, int]:
    from tfxfer.backbones import get_spec

    return tuple(cfg.model.input_size) if cfg.model.input_size else tuple(get_spec(cfg.model.backbone).input_size)


def _weights(cfg):
    w = cfg.model.weights
    return None if w is None or str(w).lower() in ("none", "random") else w


def splits(ctx):
    """The run's `ImageSplits` (loaded once per process)."""
    from tfxfer.recipes.image_data import load_image_data

    return ctx.memo("data", lambda: load_image_data(ctx.cfg, resolve_source(ctx.cfg),
                                                    image_size=image_size_of(ctx.cfg)))


def build(ctx, num_classes: int):
    from tfxfer.models import build_model

    cfg = ctx.cfg
    return build_model(cfg.model.backbone, num_classes, input_size=image_size_of(cfg),
                       channels=1 if cfg.data.color_mode == "grayscale" else 3, weights=_weights(cfg),
                       pooling=cfg.model.pooling, dropout=cfg.model.dropout, hidden_units=cfg.model.hidden_units,
                       bn_policy=cfg.model.bn_policy)


# -- data ------------------------------------------------------------------------------------------

def _data_probe(ctx):
    return {"source": resolve_source(ctx.cfg).content_fingerprint()}


def run_data(ctx):
    data = splits(ctx)
    probe = _data_probe(ctx)["source"]
    summary = data.summary.to_dict()
    summary.update(class_names=data.class_names, image_size=list(data.image_size), channels=data.channels,
                   eval_split=data.eval_split, data_fingerprint=probe, files=None)
    if data.files:
        summary["files"] = {s: [os.path.relpath(p, ctx.cfg.data.source) if os.path.isdir(ctx.cfg.data.source)
                                else p for p in paths] for s, paths in data.files.items()}
    path = ctx.path("data", "summary.json")
    atomic_write_json(path, summary)
    ctx.console.info(f"  {len(data.class_names)} classes, sizes {data.sizes()}, skipped {len(data.summary.skipped)}, "
                     f"leakage groups {len(data.summary.leakage)}")
    return {"class_names": data.class_names, "sizes": data.sizes(), "data_fingerprint": probe,
            "eval_split": data.eval_split, "artefacts": [ctx.rel(path)]}


# -- features --------------------------------------------------------------------------------------

def run_features(ctx):
    import keras

    from tfxfer.train.head import extract_features

    data = splits(ctx)
    keras.utils.set_random_seed(ctx.cfg.seed)  # as run_finetune: the same backbone (also with weights: null)
    model = build(ctx, len(data.class_names))
    verbose = 1 if ctx.console.verbosity else 0
    ctx.console.info("  extracting backbone features (train)")
    train_f, train_y = extract_features(model, data.train_plain, verbose=verbose)
    arrays = {"train_x": train_f, "train_y": train_y}
    if data.val is not None:
        ctx.console.info("\n  extracting backbone features (val)")
        arrays["val_x"], arrays["val_y"] = extract_features(model, data.val, verbose=verbose)
    if verbose:
        ctx.console.info("")
    path = ctx.path("features", "features.npz")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return {"features": ctx.rel(path), "shape": list(train_f.shape), "artefacts": [ctx.rel(path)]}


# -- finetune --------------------------------------------------------------------------------------

def tensorboard(ctx, name: str) -> list:
    """``[keras.callbacks.TensorBoard]`` writing to ``<run>/tensorboard/<name>``, or [] (with a note)
    when the ``tensorboard`` package is not installed (TensorFlow's summary ops need it)."""
    import importlib.util

    import keras

    if importlib.util.find_spec("tensorboard") is None:
        ctx.memo("tensorboard-note", lambda: ctx.console.info(
            "  (no TensorBoard logs: `pip install tensorboard` to get them)"))
        return []
    return [keras.callbacks.TensorBoard(ctx.path("tensorboard", name, "x")[:-2], write_graph=False)]


def _history_entry(history, values):
    for key, series in values.items():
        history.setdefault(key, []).extend(float(v) for v in series)


def finetune_selection(selection, result) -> dict | None:
    """What each step bought, for the report: ``{"monitor", "head", "fine_tuned", "kept", ...}`` from
    the head step's best validation score (``selection``) and ``fine_tune``'s ``result.selection``."""
    sel = result.selection
    if sel is None:
        return selection
    head = (selection or {}).get("head", sel["head"])
    return {**(selection or {}), "monitor": sel["monitor"], "head": head, "fine_tuned": sel["fine_tuned"],
            "fine_tuned_best_epoch": sel.get("best_epoch"), "kept": sel["kept"],
            **{k: sel[k] for k in ("averaging", "averaged", "kept_average") if k in sel}}


def run_finetune(ctx):
    import keras

    from tfxfer.train.best import RestoreBest

    from tfxfer.recipes.training_log import LearningRateLog
    from tfxfer.train.fine_tune import fine_tune
    from tfxfer.train.head import train_head_on_features

    cfg, console = ctx.cfg, ctx.console
    t, data = cfg.train, splits(ctx)
    keras.utils.set_random_seed(cfg.seed)
    strategy = None
    if t.strategy != "default":
        from tfxfer.reliability import get_strategy

        strategy = ctx.memo("strategy", lambda: get_strategy(t.strategy)) or get_strategy(t.strategy)
        console.info(f"  strategy {t.strategy}: {strategy.num_replicas_in_sync} replicas in sync; "
                     f"batch_size {t.batch_size} is the global batch")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build(ctx, len(data.class_names))
    class_weight = data.summary.class_weights if t.class_weight == "balanced" else None
    if class_weight:
        class_weight = {int(k): float(v) for k, v in class_weight.items()}
    lr_log = LearningRateLog()
    history, stages, l2sp_info, selection = {}, [], None, None
    verbose = console.keras_verbose
    val = data.val
    cached = t.cached_features and t.head_epochs > 0
    if cached:
        feats = np.load(ctx.abs(ctx.outputs["features"]["features"]))
        val_feats = (feats["val_x"], feats["val_y"]) if "val_x" in feats else None
        stages.append({"epoch": 0, "label": "head on cached features", "learning_rate": t.base_lr,
                       "trainable_groups": ["head"]})
        console.info(f"  head: {t.head_epochs} epochs on cached features, lr {t.base_lr:g}")
        keeper = [RestoreBest(t.monitor, restore=t.restore_best)] if val_feats is not None else []
        h = train_head_on_features(model, feats["train_x"], feats["train_y"], val=val_feats, epochs=t.head_epochs,
                                   learning_rate=t.base_lr, batch_size=t.batch_size, class_weight=class_weight,
                                   callbacks=[*tensorboard(ctx, "head"), lr_log, *keeper], verbose=verbose,
                                   strategy=strategy, seed=cfg.seed, label_smoothing=t.label_smoothing)
        _history_entry(history, h.history)
        if keeper:
            selection = {"monitor": t.monitor, "head": keeper[0].best, "head_best_epoch": keeper[0].best_epoch,
                         "fine_tuned": None, "kept": "head"}
    head_done = t.head_epochs if cached else 0
    if t.epochs > 0 or not cached:
        sample_labels = next(iter(data.train))[1]
        if val is not None and len(sample_labels.shape) == 2 and sample_labels.shape[-1] > 1:
            n = len(data.class_names)  # label-mixing augmentation makes soft targets: match val
            val = val.map(lambda x, y: (x, keras.ops.one_hot(keras.ops.cast(y, "int32"), n)))
        lr_log.epoch_offset = float(head_done)
        console.info(f"  fine-tune: {t.epochs} unfreezing epochs at lr {t.base_lr * t.unfreeze_lr_factor:g}"
                     + ("" if cached else f" after {t.head_epochs} head epochs")
                     + (f", L2-SP {t.l2sp:g} towards the pretrained backbone" if t.l2sp > 0 and t.epochs else ""))
        # Per-epoch checkpoints keyed by this stage's fingerprint: a run killed mid-fine-tuning
        # continues from its last finished epoch (a changed recipe starts afresh).
        checkpoints = os.path.join(ctx.run_dir, "checkpoints", f"finetune-{ctx.memo('fingerprint:finetune', str)}")
        result = fine_tune(model, data.train, val=val, head_epochs=0 if cached else t.head_epochs, epochs=t.epochs,
                           base_lr=t.base_lr, unfreeze_lr_factor=t.unfreeze_lr_factor,
                           stages=dict(t.stages) if t.stages else None, warmup_epochs=t.warmup_epochs,
                           monitor=t.monitor, restore_best=t.restore_best, keep_if_better=t.keep_if_better and cached,
                           layer_decay=t.layer_decay, optimizer=t.optimizer, use_cached_features=False,
                           batch_size=t.batch_size, class_weight=class_weight, bn_policy=cfg.model.bn_policy,
                           callbacks=[*tensorboard(ctx, "finetune"), lr_log], verbose=verbose,
                           checkpoint_dir=checkpoints, seed=cfg.seed, l2sp=t.l2sp, strategy=strategy,
                           label_smoothing=t.label_smoothing,
                           average_weights=None if t.average_weights == "none" else t.average_weights)
        if result.resumed_from:
            console.info(f"  resumed fine-tuning from {ctx.rel(result.resumed_from)}")
        _history_entry(history, result.history)
        for s in result.stages:
            groups = s["trainable_groups"]
            unfrozen = [g for g in groups if g != "head"]
            label = f"unfreeze {', '.join(unfrozen)}" if unfrozen else "head (full images)"
            stages.append({"epoch": s["epoch"] + head_done, "label": label, "learning_rate": s["learning_rate"],
                           "trainable_groups": groups, **({"l2sp": s["l2sp"]} if "l2sp" in s else {})})
        l2sp_info = result.l2sp
        selection = finetune_selection(selection, result)
        if selection and selection["kept"] == "head":
            console.info(f"  fine-tuning did not beat the head-only model on {t.monitor} "
                         f"({selection['fine_tuned']} vs {selection['head']}): kept the head-only model")
        if l2sp_info:
            console.info(f"  L2-SP: {l2sp_info['anchored']} backbone kernels anchored, mean relative drift "
                         f"{l2sp_info['mean_drift']:.4f}")
    adaptation = None
    if cfg.adapt.method:  # adapt the fine-tuned model before it is saved: the saved model is the adapted one
        from tfxfer.recipes.adapt_stages import run_adapt

        adaptation = run_adapt(ctx, model, data, image_size=image_size_of(cfg))
    model_path = ctx.path("model", "model.keras")
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    shutil.rmtree(os.path.join(ctx.run_dir, "checkpoints"), ignore_errors=True)  # the model is safe now
    if strategy is None:  # a model built under a strategy is re-loaded from disk by the later stages
        ctx.remember(f"model:{ctx.rel(model_path)}", model)
    hist_path = ctx.path("model", "history.json")
    atomic_write_json(hist_path, {"history": history, "stages": stages, "lr_steps": lr_log.steps,
                                  "head_epochs": t.head_epochs, "epochs": t.epochs, "l2sp": l2sp_info,
                                  "selection": selection,
                                  "strategy": {"name": t.strategy,
                                               "replicas": strategy.num_replicas_in_sync if strategy else 1}})
    labels_path = ctx.path("model", "labels.json")
    atomic_write_json(labels_path, {"class_names": data.class_names, "task": cfg.task,
                                    "input_size": list(data.image_size), "channels": data.channels})
    final = {k: v[-1] for k, v in history.items() if v}
    out = {"model": ctx.rel(model_path), "final": final, "selection": selection,
           "artefacts": [ctx.rel(model_path), ctx.rel(hist_path), ctx.rel(labels_path)]}
    if adaptation is not None:
        out["adapt"] = adaptation
        out["artefacts"].append(adaptation["adaptation"])
    return out


# -- evaluate --------------------------------------------------------------------------------------

def run_evaluate(ctx):
    from tfxfer.metrics import classification_metrics
    from tfxfer.recipes.report_stage import save_misclassified
    from tfxfer.report.misclassified import thumbnails

    from tfxfer.train.forward import Forward

    data = splits(ctx)
    model = ctx.model()
    forward = Forward(model)  # one trace for the full batches and the last one
    probs, labels, thumbs = [], [], []
    for x, y in ctx.console.progress(data.eval, desc=f"evaluate ({data.eval_split})", unit="batch"):
        probs.append(np.asarray(forward(x)))
        labels.append(np.asarray(y))
        thumbs.append(thumbnails(x))
    probs, labels = np.concatenate(probs), np.concatenate(labels)
    images = np.concatenate(thumbs)
    metrics = classification_metrics(probs, labels, data.class_names, bins=ctx.cfg.report.reliability_bins)
    metrics["split"] = data.eval_split
    files = (data.files or {}).get(data.eval_split)
    artefacts = save_misclassified(ctx, probs, labels, data.class_names, images=images, names=files,
                                   limit=ctx.cfg.report.misclassified)
    pred_path = ctx.path("eval", "predictions.npz")
    with atomic_path(pred_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, probabilities=probs, labels=labels)
    metrics_path = ctx.path("eval", "metrics.json")
    atomic_write_json(metrics_path, metrics)
    ctx.console.info(f"  {data.eval_split} accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
                     f"ECE {metrics['ece']:.4f}")
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"],
            "split": data.eval_split, "artefacts": [ctx.rel(pred_path), ctx.rel(metrics_path), *artefacts]}


def image_stages(cfg) -> list[Stage]:
    """The training half of an image recipe (export stages are appended by the planner)."""
    def model_cfg(c):
        return {"model": c.section("model")["model"], "color_mode": c.data.color_mode, "seed": c.seed}

    data = Stage("data", run_data, config=lambda c: {"data": c.section("data")["data"], "task": c.task,
                                                     "seed": c.seed, "batch_size": c.train.batch_size,
                                                     "input_size": image_size_of(c)},
                 probe=_data_probe)
    stages = [data]
    if cfg.train.cached_features and cfg.train.head_epochs > 0:
        stages.append(Stage("features", run_features, inputs=("data",),
                            config=lambda c: {k: v for k, v in model_cfg(c).items()}))
    from tfxfer.recipes.adapt_stages import adapt_config

    stages.append(Stage("finetune", run_finetune, inputs=("data", "features"),
                        config=lambda c: {**model_cfg(c), "train": _train_section(c),
                                          "augment": c.data.augment, **adapt_config(c)}))
    return stages


def _train_section(cfg) -> dict:
    """The ``train:`` section for the fine-tune fingerprint; keys added later are left out at their
    off value, so a recipe that does not use them keeps the fingerprint (and resumes) it had."""
    section = dict(cfg.section("train")["train"])
    for key, off in (("label_smoothing", 0.0), ("average_weights", "none")):
        if section.get(key) == off:
            section.pop(key)
    return section


def evaluate_stage() -> Stage:
    return Stage("evaluate", run_evaluate, inputs=("data", "finetune", "distill", "quantize"),
                 config=lambda c: {"report": c.section("report")["report"]})
