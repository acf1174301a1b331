"""Edge stages for image recipes: distillation (teacher -> student) and quantization-aware training.

* ``distill``: fine-tunes the teacher (``distill.teacher``) on the same data, then distils it into
  the fine-tuned student (`tfxfer.distill.distill`) with the student's top groups trainable, and
  saves the student alone (`export_student`); the retention report goes to the run record.
* ``quantize``: `tfxfer.quantize.train_qat` on the final float model -> a full-int8 TFLite file,
  which the verify stage gates next to the post-training variants (row ``int8_qat``) and which
  becomes the deliverable when it passes.
"""

from __future__ import annotations

import importlib

from tfxfer.errors import ConfigError
from tfxfer.recipes.runner import Stage
from tfxfer.utils.atomic import atomic_write_json


def _has(module: str, *names: str) -> bool:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return False
    return all(hasattr(mod, n) for n in names)


def distill_available() -> bool:
    """Whether `tfxfer.distill` exposes the API these stages call."""
    return _has("tfxfer.distill", "distill", "export_student", "retention_report")


def quantize_available() -> bool:
    """Whether `tfxfer.quantize` exposes the API these stages call."""
    return _has("tfxfer.quantize", "train_qat")


def _trainable_top_groups(ctx) -> int:
    import json

    with open(ctx.abs("model/history.json")) as f:
        stages = json.load(f).get("stages", [])
    groups = stages[-1]["trainable_groups"] if stages else ["head"]
    return max(0, len(groups) - 1)


def run_distill(ctx):
    from tfxfer.distill import distill, export_student, retention_report
    from tfxfer.freezing import freeze_backbone, unfreeze
    from tfxfer.models import build_model
    from tfxfer.recipes.image_data import take_images
    from tfxfer.recipes.image_stages import image_size_of, splits, tensorboard
    from tfxfer.recipes.training_log import LearningRateLog
    from tfxfer.train.fine_tune import fine_tune

    cfg, d, t, console = ctx.cfg, ctx.cfg.distill, ctx.cfg.train, ctx.console
    data = splits(ctx)
    teacher_weights = None if d.teacher_weights in (None, "none", "random") else d.teacher_weights
    teacher = build_model(d.teacher, len(data.class_names), input_size=image_size_of(cfg), channels=data.channels,
                          weights=teacher_weights, name="teacher")
    console.info(f"  teacher {d.teacher}: {t.head_epochs} head epochs (cached features) + {d.teacher_epochs} unfreezing")
    fine_tune(teacher, data.train, val=data.val, head_epochs=max(t.head_epochs, 1), epochs=d.teacher_epochs,
              base_lr=t.base_lr, unfreeze_lr_factor=t.unfreeze_lr_factor, batch_size=t.batch_size,
              use_cached_features=True,  # the teacher's head on one pass of features, as the log line says
              verbose=console.keras_verbose)
    student = ctx.model()
    top = _trainable_top_groups(ctx)
    if top:
        unfreeze(student, top_groups=top, bn_policy=cfg.model.bn_policy)
    else:
        freeze_backbone(student, bn_policy=cfg.model.bn_policy)
    lr_log = LearningRateLog(epoch_offset=float(t.head_epochs + t.epochs))
    console.info(f"  distil into {cfg.model.backbone}: {d.epochs} epochs, T={d.temperature:g}, alpha={d.alpha:g}")
    result = distill(teacher, student, data.train, val=data.val, temperature=d.temperature, alpha=d.alpha,
                     epochs=d.epochs, learning_rate=d.learning_rate, batch_size=t.batch_size,
                     callbacks=[*tensorboard(ctx, "distill"), lr_log], verbose=console.keras_verbose, seed=cfg.seed)
    x, y = take_images(data.eval)
    report = retention_report(teacher, result.student, (x, y))
    teacher_path = ctx.path("distill", "teacher.keras")
    teacher.save(teacher_path)
    student_path = export_student(result, ctx.path("distill", "student.keras"))
    ctx.remember(f"model:{ctx.rel(student_path)}", result.student)
    hist_path = ctx.path("distill", "history.json")
    start = t.head_epochs + t.epochs
    atomic_write_json(hist_path, {"history": {k: [float(v) for v in vs] for k, vs in result.history.items()},
                                  "stages": [{"epoch": start, "label": f"distil from {d.teacher}",
                                              "learning_rate": d.learning_rate, "trainable_groups": ["student"]}],
                                  "lr_steps": lr_log.steps})
    summary = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in vars(report).items()}
    console.info(f"  teacher accuracy {report.teacher_accuracy:.4f}, distilled student {report.distilled_accuracy:.4f}")
    return {"model": ctx.rel(student_path), "retention": summary,
            "artefacts": [ctx.rel(student_path), ctx.rel(teacher_path), ctx.rel(hist_path)]}


def run_quantize(ctx):
    from tfxfer.recipes.export_stages import gate_thresholds
    from tfxfer.recipes.image_data import take_images
    from tfxfer.recipes.image_stages import splits
    from tfxfer.quantize import train_qat

    cfg, q = ctx.cfg, ctx.cfg.quantize
    data, model = splits(ctx), ctx.model()
    eval_data = data.held_out_arrays()  # all held-out images, as the verify stage gates
    calibration = take_images(data.train_plain, cfg.export.num_calibration)[0]
    ctx.console.info(f"  quantization-aware training: {q.epochs} epoch(s) at lr {q.learning_rate:g}")
    result = train_qat(model, data.train, eval_data=eval_data, path=ctx.path("quantize", f"{cfg.name}_int8_qat.tflite"),
                       epochs=q.epochs, learning_rate=q.learning_rate, batch_size=cfg.train.batch_size,
                       representative_data=calibration, num_calibration=cfg.export.num_calibration,
                       thresholds=gate_thresholds(cfg), class_names=data.class_names, raise_on_failure=False,
                       verbose=ctx.console.keras_verbose, seed=cfg.seed)
    summary = result.summary()
    ctx.console.info(f"  QAT int8: {summary['size_bytes'] / 1024:.1f} KiB, accuracy {summary['int8_accuracy']:.4f} "
                     f"(float {summary['float_accuracy']:.4f}), gate {'pass' if summary['passed'] else 'FAIL'}")
    path = result.export.path
    return {"tflite": ctx.rel(path), "sidecar": ctx.rel(result.export.sidecar_path),
            "size_bytes": int(result.export.size_bytes), "summary": {k: v for k, v in summary.items() if k != "path"},
            "artefacts": [ctx.rel(path)]}


def edge_stages(cfg) -> list:
    if cfg.quantize.enabled and cfg.quantize.method != "qat":
        raise ConfigError(f"`quantize.method: {cfg.quantize.method}` is not wired into pipelines yet (only 'qat'); "
                          "use tfxfer.quantize.prune / cluster from Python")
    if cfg.quantize.enabled and "int8" not in cfg.export.variants:
        raise ConfigError("`quantize.enabled: true` needs `int8` in `export.variants` (the QAT file is gated "
                          "with the int8 thresholds)")
    stages = []
    if cfg.distill.enabled:
        stages.append(Stage("distill", run_distill, inputs=("data", "finetune"),
                            config=lambda c: {"distill": c.section("distill")["distill"], "train": c.section("train")}))
    if cfg.quantize.enabled:
        stages.append(Stage("quantize", run_quantize, inputs=("data", "finetune", "distill"),
                            config=lambda c: {"quantize": c.section("quantize")["quantize"],
                                              "calibration": c.export.num_calibration,
                                              "thresholds": c.section("export")["export"]["thresholds"]}))
    return stages


__all__ = ["distill_available", "edge_stages", "quantize_available"]
