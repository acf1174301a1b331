"""The retention report: what the student kept of the teacher, and what distillation added.

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.distill import retention_report
    >>> def mlp(width):
    ...     return keras.Sequential([keras.Input((8,)), keras.layers.Dense(width),
    ...                              keras.layers.Dense(2, activation="softmax")])
    >>> x = np.random.default_rng(0).normal(size=(32, 8)).astype("float32"); y = np.arange(32) % 2
    >>> report = retention_report(mlp(64), mlp(4), (x, y), student_alone=mlp(4))
    >>> 0 < report.param_ratio < 0.1, report.student_alone_accuracy is not None
    (True, True)
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tfxfer.errors import ArgumentTypeError, DataError


@dataclasses.dataclass
class RetentionReport:
    """Teacher vs distilled student (vs the same student trained without a teacher).

    Attributes:
        teacher_accuracy, distilled_accuracy: accuracies (0-1) on the evaluation data.
        student_alone_accuracy: the student architecture trained on labels only (None if not given).
        retention: distilled / teacher accuracy (1.0 = all of the teacher's accuracy kept).
        gain_points: distilled minus student-alone accuracy, in percentage points (None without it).
        teacher_params, student_params, param_ratio: parameter counts and student / teacher.
        teacher_bytes, student_bytes, size_ratio: weight bytes as stored (float32: 4 per parameter)
            and student / teacher.
        examples: evaluation examples.
    """

    teacher_accuracy: float
    distilled_accuracy: float
    student_alone_accuracy: float | None
    retention: float
    gain_points: float | None
    teacher_params: int
    student_params: int
    param_ratio: float
    teacher_bytes: int
    student_bytes: int
    size_ratio: float
    examples: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def format(self) -> str:
        alone = "-" if self.student_alone_accuracy is None else f"{self.student_alone_accuracy:.4f}"
        gain = "-" if self.gain_points is None else f"{self.gain_points:+.2f}"
        return (f"teacher accuracy      {self.teacher_accuracy:.4f}  ({self.teacher_params:,} params, "
                f"{self.teacher_bytes / 2**20:.2f} MiB)\n"
                f"student alone         {alone}\n"
                f"distilled student     {self.distilled_accuracy:.4f}  ({self.student_params:,} params, "
                f"{self.student_bytes / 2**20:.2f} MiB)\n"
                f"retention             {self.retention:.2%} of the teacher's accuracy\n"
                f"gain from distilling  {gain} points\n"
                f"param ratio           {self.param_ratio:.3f}   size ratio {self.size_ratio:.3f}")


def weight_bytes(model: keras.Model) -> int:
    """Bytes of all weights as stored (trainable and not)."""
    return int(sum(int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights))


def accuracy(model: keras.Model, data, *, batch_size: int = 64) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` (class ids or one-hot)."""
    x, y = data
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(1)
    predictions = np.asarray(model.predict(np.asarray(x), batch_size=batch_size, verbose=0))
    return float((predictions.argmax(1) == y.reshape(-1)).mean())


def retention_report(teacher: keras.Model, distilled: keras.Model, data, *, student_alone: keras.Model | None = None,
                     batch_size: int = 64) -> RetentionReport:
    """Accuracy, parameter and size ratios of a distilled student against its teacher.

    Args:
        teacher: the teacher model.
        distilled: the distilled student.
        data: held-out ``(x, y)`` arrays.
        student_alone: the same student architecture trained without the teacher (the baseline).
        batch_size: prediction batch size.
    """
    for name, model in (("teacher", teacher), ("distilled", distilled), ("student_alone", student_alone)):
        if model is not None and not isinstance(model, keras.Model):
            raise ArgumentTypeError(name, model, "a keras.Model")
    if not (isinstance(data, tuple) and len(data) == 2):
        raise ArgumentTypeError("data", data, "an (x, y) tuple of arrays")
    if len(data[0]) == 0 or len(data[0]) != len(data[1]):
        raise DataError(f"`data` must hold as many labels as inputs (got {len(data[0])} and {len(data[1])})")
    teacher_acc = accuracy(teacher, data, batch_size=batch_size)
    distilled_acc = accuracy(distilled, data, batch_size=batch_size)
    alone_acc = accuracy(student_alone, data, batch_size=batch_size) if student_alone is not None else None
    t_params, s_params = int(teacher.count_params()), int(distilled.count_params())
    t_bytes, s_bytes = weight_bytes(teacher), weight_bytes(distilled)
    return RetentionReport(
        teacher_accuracy=teacher_acc, distilled_accuracy=distilled_acc, student_alone_accuracy=alone_acc,
        retention=distilled_acc / teacher_acc if teacher_acc > 0 else float("nan"),
        gain_points=None if alone_acc is None else round((distilled_acc - alone_acc) * 100.0, 4),
        teacher_params=t_params, student_params=s_params, param_ratio=s_params / max(t_params, 1),
        teacher_bytes=t_bytes, student_bytes=s_bytes, size_ratio=s_bytes / max(t_bytes, 1),
        examples=int(len(data[0])),
    )
