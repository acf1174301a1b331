"""Knowledge distillation for transfer models, built on ``keras.distillation``.

* `distill`: teacher -> student with temperature-scaled logit distillation (``alpha`` weighs the
  labels), optional feature distillation between named (also nested-backbone) layers, and
  unlabeled data for the distillation term. Any catalog backbone can teach or learn.
* `export_student`: save the student alone (a saved distiller would carry its teacher).
* `retention_report`: teacher accuracy, student trained alone, distilled student, parameter and
  size ratios.
* `logits_model` / `DenseLogits`: the logits of a softmax head, weights shared.
* `TransferDistiller`: the ``keras.distillation.Distiller`` subclass behind `distill`.

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.distill import distill, retention_report
    >>> def mlp(width, name):
    ...     return keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu"),
    ...                              keras.layers.Dense(3, activation="softmax", name="head")], name=name)
    >>> x = np.random.default_rng(0).normal(size=(96, 8)).astype("float32"); y = (x[:, :3]).argmax(1)
    >>> teacher, student = mlp(64, "teacher"), mlp(8, "student")
    >>> result = distill(teacher, student, (x, y), temperature=4.0, alpha=0.3, epochs=2)
    >>> report = retention_report(teacher, result.student, (x, y))
    >>> report.student_params < report.teacher_params
    True
"""

from tfxfer.distill.distiller import UNLABELED, TransferDistiller, resolve_layer_output
from tfxfer.distill.student import export_student, teacher_variables_in
from tfxfer.distill.logits import DenseLogits, logits_model
from tfxfer.distill.report import RetentionReport, accuracy, retention_report, weight_bytes
from tfxfer.distill.train import DistillResult, distill

__all__ = [
    "DenseLogits", "DistillResult", "RetentionReport", "TransferDistiller", "UNLABELED", "accuracy", "distill",
    "export_student", "logits_model", "resolve_layer_output", "retention_report", "teacher_variables_in",
    "weight_bytes",
]
