"""Named-entity recognition stages on `tfxfer.text`: data -> finetune (`tfxfer.train.ner.fit_token_classifier`:
optional head step on frozen encoder outputs, then the whole encoder) -> evaluate (entity-level F1, seqeval style) ->
export (token-id TFLite + vocab) -> verify.
"""

from __future__ import annotations

from tfxfer.recipes.runner import Stage
from tfxfer.recipes.text_stages import (
    _data_config,
    _data_probe,
    encoder,
    run_data,
    save_model,
    text_splits,
)
from tfxfer.recipes.text_export_stages import run_export, run_verify
from tfxfer.utils.atomic import atomic_write_json


def _tags(data, y):
    return [[data.class_names[int(i)] for i in row] for row in y]


def _words(x):
    return [list(map(str, w)) for w in x]


def run_finetune(ctx):
    import os

    import keras

    from tfxfer.recipes.image_stages import tensorboard
    from tfxfer.recipes.training_log import LearningRateLog
    from tfxfer.text import build_token_classifier
    from tfxfer.train.ner import fit_token_classifier

    cfg, t, console = ctx.cfg, ctx.cfg.train, ctx.console
    data = text_splits(ctx)
    keras.utils.set_random_seed(cfg.seed)
    model = build_token_classifier(encoder(ctx), data.class_names, dropout=cfg.model.dropout)
    train = (_words(data.train[0]), _tags(data, data.train[1]))
    val = (_words(data.val[0]), _tags(data, data.val[1])) if data.val is not None else None
    lr_log = LearningRateLog()  # the unfreezing fit numbers its epochs after the head epochs already
    if t.head_epochs:
        console.info(f"  head: {t.head_epochs} epochs on frozen encoder outputs, lr {t.base_lr:g}")
    if t.epochs:
        console.info(f"  fine-tune: {t.epochs} epochs, whole encoder, peak lr {t.base_lr * t.unfreeze_lr_factor:g}")
    checkpoints = os.path.join(ctx.run_dir, "checkpoints", f"finetune-{ctx.memo('fingerprint:finetune', str)}")
    result = fit_token_classifier(model, train, val=val, tag_names=data.class_names, head_epochs=t.head_epochs,
                                  epochs=t.epochs, base_lr=t.base_lr, unfreeze_lr_factor=t.unfreeze_lr_factor,
                                  layer_decay=t.layer_decay, batch_size=t.batch_size,
                                  callbacks=[*tensorboard(ctx, "finetune"), lr_log], verbose=console.keras_verbose,
                                  seed=cfg.seed, checkpoint_dir=checkpoints)
    if result.resumed_from:
        console.info(f"  resumed fine-tuning from {ctx.rel(result.resumed_from)}")
    stages = [{"epoch": s["epoch"], "label": "head on frozen encoder" if s["cached_features"] else
               "fine-tune encoder + head", "learning_rate": s["learning_rate"], "trainable_groups": s["trainable_groups"]}
              for s in result.stages]
    return save_model(ctx, model, data, result.history, stages, lr_log)


def run_evaluate(ctx):
    from tfxfer.recipes.text_eval import ner_metrics
    from tfxfer.text.ner import predict_word_tags

    data, model = text_splits(ctx), ctx.model()
    words, true = _words(data.eval[0]), _tags(data, data.eval[1])
    pred, _ = predict_word_tags(model, words, tag_names=data.class_names, batch_size=ctx.cfg.train.batch_size)
    metrics = {"split": data.eval_split, **ner_metrics(true, pred), "ece": None}
    wrong = [i for i, (a, b) in enumerate(zip(true, pred)) if a != b]
    shown = [{"index": i, "true": _spans(words[i], true[i]), "predicted": _spans(words[i], pred[i]),
              "confidence": None, "text": " ".join(words[i])} for i in wrong[:ctx.cfg.report.misclassified]]
    mis_path = ctx.path("eval", "misclassified.json")
    atomic_write_json(mis_path, {"count": len(wrong), "shown": shown})
    path = ctx.path("eval", "metrics.json")
    atomic_write_json(path, metrics)
    ctx.console.info(f"  {data.eval_split} entity F1 {metrics['entity_f1']:.4f} (P {metrics['entity_precision']:.3f}, "
                     f"R {metrics['entity_recall']:.3f})")
    return {"entity_f1": metrics["entity_f1"], "tag_accuracy": metrics["tag_accuracy"], "split": data.eval_split,
            "artefacts": [ctx.rel(path), ctx.rel(mis_path)]}


def _spans(words, tags) -> str:
    from tfxfer.text.tagging import chunks

    found = [f"{' '.join(words[s:e])} [{kind}]" for kind, s, e in chunks(list(tags))]
    return "; ".join(found) or "(none)"


def ner_stages(cfg) -> list[Stage]:
    model_cfg = lambda c: {"model": c.section("model")["model"], "seed": c.seed}  # noqa: E731
    return [
        Stage("data", run_data, config=_data_config, probe=_data_probe),
        Stage("finetune", run_finetune, inputs=("data",),
              config=lambda c: {**model_cfg(c), "train": c.section("train")["train"]}),
        Stage("evaluate", run_evaluate, inputs=("data", "finetune"), config=lambda c: {"report": c.section("report")}),
        Stage("export", run_export, inputs=("data", "finetune"),
              config=lambda c: {"variants": list(c.export.variants), "name": c.name}),
        Stage("verify", run_verify, inputs=("data", "export", "finetune"),
              config=lambda c: {"export": c.section("export")["export"]},
              version=2),  # 2: a failed dynamic file gets the weight_only remedy
    ]
