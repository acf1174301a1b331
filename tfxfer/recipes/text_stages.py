"""Text classification stages on `tfxfer.text`: data -> features (cached sentence embeddings) ->
finetune (the head step on the cache, then `fine_tune`'s unfreezing step on the encoder) -> evaluate
-> export -> verify.

The model takes raw strings (tokenizer inside); the TFLite files take token ids and ship with
their own ``<stem>.vocab.txt`` and a sidecar for ``export/wordpiece_tokenizer.py``.
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError, ConfigError
from tfxfer.recipes.runner import Stage
from tfxfer.recipes.sources import resolve_source
from tfxfer.utils.atomic import atomic_path, atomic_write_json

TEXT_VARIANTS = ("float32", "float16", "dynamic")
POOLING = {"avg": "mean", "mean": "mean", "cls": "cls", "pooled": "pooled"}


def check_text_config(cfg) -> None:
    bad = [v for v in cfg.export.variants if v not in TEXT_VARIANTS]
    if bad:
        raise ConfigError(f"`export.variants`: {bad} cannot hold a text encoder; text models export as "
                          f"{', '.join(TEXT_VARIANTS)} (dynamic = int8 weights)")
    if cfg.model.pooling not in POOLING:
        raise ConfigError(f"`model.pooling` must be one of 'mean', 'cls', 'pooled' for text. Received: "
                          f"{cfg.model.pooling!r}")
    encoder_weights(cfg.model.weights)


def encoder_weights(w):
    """``model.weights`` as `load_encoder` takes it: None (random), "pretrained", or a ``.weights.h5`` path.

    "imagenet" (the recipe default, which a text recipe leaves unset) means the preset's own weights.
    A ``.weights.h5`` path goes through as it is, so a missing file is an error, never the pretrained weights.

    Raises:
        ConfigError: any other value.
    """
    if w is None or str(w).lower() in ("none", "random"):
        return None
    if str(w).lower() in ("pretrained", "imagenet"):
        return "pretrained"
    if str(w).endswith(".weights.h5"):
        return str(w)
    raise ConfigError(f"`model.weights` must be 'pretrained', null/'random' or the path of a .weights.h5 file "
                      f"for a text encoder. Received: {w!r}")


def text_splits(ctx):
    from tfxfer.recipes.text_data import load_text_data

    return ctx.memo("data", lambda: load_text_data(ctx.cfg, resolve_source(ctx.cfg)))


def encoder(ctx):
    from tfxfer.text import load_encoder

    cfg = ctx.cfg
    weights = encoder_weights(cfg.model.weights)
    try:
        return load_encoder(cfg.model.backbone, sequence_length=cfg.model.sequence_length, weights=weights)
    except ArgumentError as exc:  # name the recipe key (a missing .weights.h5 file), not load_encoder's argument
        if exc.name != "weights":
            raise
        raise ConfigError(f"`model.weights`: {exc}") from exc


def build(ctx, num_classes: int):
    import keras

    from tfxfer.text import build_text_classifier

    keras.utils.set_random_seed(ctx.cfg.seed)
    m = ctx.cfg.model
    return build_text_classifier(encoder(ctx), num_classes, pooling=POOLING[m.pooling], dropout=m.dropout,
                                 hidden_units=m.hidden_units)


def as_strings(x) -> np.ndarray:
    return np.asarray([str(t) for t in x], dtype=object)


def _data_probe(ctx):
    return {"source": resolve_source(ctx.cfg).content_fingerprint()}


def run_data(ctx):
    data = text_splits(ctx)
    probe = _data_probe(ctx)["source"]
    summary = data.summary.to_dict()
    summary.update(class_names=data.class_names, eval_split=data.eval_split, data_fingerprint=probe)
    path = ctx.path("data", "summary.json")
    atomic_write_json(path, summary)
    ctx.console.info(f"  {len(data.class_names)} classes, sizes {data.sizes()}, leakage groups {len(data.summary.leakage)}")
    return {"class_names": data.class_names, "sizes": data.sizes(), "data_fingerprint": probe,
            "eval_split": data.eval_split, "artefacts": [ctx.rel(path)]}


def run_features(ctx):
    from tfxfer.train.head import extract_features

    data = text_splits(ctx)
    model = build(ctx, len(data.class_names))
    verbose = 1 if ctx.console.verbosity else 0
    batch = ctx.cfg.train.batch_size
    ctx.console.info("  encoding the training texts once (frozen encoder)")
    arrays = dict(zip(("train_x", "train_y"), extract_features(model, _pair(data.train), batch_size=batch,
                                                              verbose=verbose)))
    if data.val is not None:
        arrays["val_x"], arrays["val_y"] = extract_features(model, _pair(data.val), batch_size=batch)
    path = ctx.path("features", "features.npz")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return {"features": ctx.rel(path), "shape": list(arrays["train_x"].shape), "artefacts": [ctx.rel(path)]}


def _pair(split):
    return as_strings(split[0]), np.asarray(split[1])


def run_finetune(ctx):
    import os

    from tfxfer.backbones import layer_groups
    from tfxfer.recipes.image_stages import finetune_selection, tensorboard
    from tfxfer.recipes.training_log import LearningRateLog
    from tfxfer.train.best import RestoreBest
    from tfxfer.text import text_class_weights
    from tfxfer.train.fine_tune import fine_tune
    from tfxfer.train.head import train_head_on_features

    t, console = ctx.cfg.train, ctx.console
    data = text_splits(ctx)
    model = build(ctx, len(data.class_names))
    class_weight = text_class_weights(data.train[1], num_classes=len(data.class_names)) \
        if t.class_weight == "balanced" else None
    lr_log, history, stages, selection = LearningRateLog(), {}, [], None
    if t.head_epochs:  # the head step on the sentence embeddings the features stage cached
        feats = np.load(ctx.abs(ctx.outputs["features"]["features"]))
        console.info(f"  head: {t.head_epochs} epochs on cached sentence embeddings, lr {t.base_lr:g}")
        stages.append({"epoch": 0, "label": "head on cached embeddings", "learning_rate": t.base_lr,
                       "trainable_groups": ["head"]})
        val = (feats["val_x"], feats["val_y"]) if "val_x" in feats else None
        keeper = [RestoreBest(t.monitor, restore=t.restore_best)] if val is not None else []
        h = train_head_on_features(model, feats["train_x"], feats["train_y"], val=val, epochs=t.head_epochs,
                                   learning_rate=t.base_lr, batch_size=t.batch_size, class_weight=class_weight,
                                   callbacks=[*tensorboard(ctx, "head"), lr_log, *keeper],
                                   verbose=console.keras_verbose, seed=ctx.cfg.seed)
        history = {k: [float(v) for v in values] for k, values in h.history.items()}
        if keeper:
            selection = {"monitor": t.monitor, "head": keeper[0].best, "head_best_epoch": keeper[0].best_epoch,
                         "fine_tuned": None, "kept": "head"}
    if t.epochs:
        # one stage: the top `max(stages)` encoder groups (all of them without `stages`), from the first epoch
        top = max(dict(t.stages).values()) if t.stages else len(layer_groups(model)) - 1
        console.info(f"  fine-tune: {t.epochs} epochs, {'all' if not t.stages else f'top {top}'} encoder groups, "
                     f"peak lr {t.base_lr * t.unfreeze_lr_factor:g}")
        lr_log.epoch_offset = float(t.head_epochs)
        checkpoints = os.path.join(ctx.run_dir, "checkpoints", f"finetune-{ctx.memo('fingerprint:finetune', str)}")
        result = fine_tune(model, _pair(data.train), val=_pair(data.val) if data.val is not None else None,
                           head_epochs=0, epochs=t.epochs, base_lr=t.base_lr, unfreeze_lr_factor=t.unfreeze_lr_factor,
                           stages={0: top}, layer_decay=t.layer_decay, batch_size=t.batch_size,
                           warmup_epochs=t.warmup_epochs, monitor=t.monitor, restore_best=t.restore_best,
                           keep_if_better=t.keep_if_better and bool(t.head_epochs),
                           class_weight=class_weight, callbacks=[*tensorboard(ctx, "finetune"), lr_log],
                           verbose=console.keras_verbose, checkpoint_dir=checkpoints, seed=ctx.cfg.seed)
        selection = finetune_selection(selection, result)
        if result.resumed_from:
            console.info(f"  resumed fine-tuning from {ctx.rel(result.resumed_from)}")
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        for s in result.stages:
            unfrozen = [g for g in s["trainable_groups"] if g != "head"]
            stages.append({"epoch": s["epoch"] + t.head_epochs, "label": f"unfreeze {', '.join(unfrozen)}",
                           "learning_rate": s["learning_rate"], "trainable_groups": s["trainable_groups"]})
    adaptation = None
    if ctx.cfg.adapt.method:  # adapt the fine-tuned model before it is saved: the saved model is the adapted one
        from tfxfer.recipes.adapt_stages import run_adapt

        adaptation = run_adapt(ctx, model, data)
    return save_model(ctx, model, data, history, stages, lr_log, selection=selection, adaptation=adaptation)


def save_model(ctx, model, data, history, stages, lr_log, *, selection=None, adaptation=None):
    import os
    import shutil

    model_path = ctx.path("model", "model.keras")
    with atomic_path(model_path) as tmp:
        model.save(tmp)
    shutil.rmtree(os.path.join(ctx.run_dir, "checkpoints"), ignore_errors=True)  # the model is safe now
    ctx.remember(f"model:{ctx.rel(model_path)}", model)
    hist_path = ctx.path("model", "history.json")
    atomic_write_json(hist_path, {"history": history, "stages": stages, "lr_steps": lr_log.steps,
                                  "selection": selection})
    labels_path = ctx.path("model", "labels.json")
    atomic_write_json(labels_path, {"class_names": data.class_names, "task": ctx.cfg.task,
                                    "sequence_length": ctx.cfg.model.sequence_length})
    out = {"model": ctx.rel(model_path), "final": {k: v[-1] for k, v in history.items() if v},
           "selection": selection, "artefacts": [ctx.rel(model_path), ctx.rel(hist_path), ctx.rel(labels_path)]}
    if adaptation is not None:
        out["adapt"] = adaptation
        out["artefacts"].append(adaptation["adaptation"])
    return out


def run_evaluate(ctx):
    from tfxfer.metrics import classification_metrics
    from tfxfer.recipes.report_stage import save_misclassified
    from tfxfer.text import predict_texts

    data, model = text_splits(ctx), ctx.model()
    texts, labels = as_strings(data.eval[0]), np.asarray(data.eval[1])
    probs = predict_texts(model, texts, batch_size=ctx.cfg.train.batch_size)
    metrics = classification_metrics(probs, labels, data.class_names, bins=ctx.cfg.report.reliability_bins)
    metrics["split"] = data.eval_split
    artefacts = save_misclassified(ctx, probs, labels, data.class_names, texts=texts, limit=ctx.cfg.report.misclassified)
    path = ctx.path("eval", "metrics.json")
    atomic_write_json(path, metrics)
    ctx.console.info(f"  {data.eval_split} accuracy {metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}")
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "ece": metrics["ece"],
            "split": data.eval_split, "artefacts": [ctx.rel(path), *artefacts]}


def _data_config(c):
    return {"data": c.section("data")["data"], "task": c.task, "seed": c.seed}


def text_stages(cfg) -> list[Stage]:
    """Every stage of a text_classification recipe (report excluded)."""
    check_text_config(cfg)
    from tfxfer.recipes import text_export_stages
    from tfxfer.recipes.adapt_stages import adapt_config

    model_cfg = lambda c: {"model": c.section("model")["model"], "seed": c.seed}  # noqa: E731
    stages = [Stage("data", run_data, config=_data_config, probe=_data_probe)]
    if cfg.train.head_epochs:
        stages.append(Stage("features", run_features, inputs=("data",), config=model_cfg))
    stages += [
        Stage("finetune", run_finetune, inputs=("data", "features"),
              config=lambda c: {**model_cfg(c), "train": c.section("train")["train"], **adapt_config(c)}),
        Stage("evaluate", run_evaluate, inputs=("data", "finetune"), config=lambda c: {"report": c.section("report")}),
        Stage("export", text_export_stages.run_export, inputs=("data", "finetune"),
              config=lambda c: {"variants": list(c.export.variants), "name": c.name}),
        Stage("verify", text_export_stages.run_verify, inputs=("data", "export", "finetune"),
              config=lambda c: {"export": c.section("export")["export"]},
              version=2),  # 2: a failed dynamic file gets the weight_only remedy
    ]
    return stages
