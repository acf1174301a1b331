"""Export the distilled student alone (saving the distiller would drag the teacher along).

Example:
    >>> import os, tempfile, keras
    >>> from tfxfer.distill import export_student
    >>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    >>> path = export_student(student, os.path.join(tempfile.mkdtemp(), "student.keras"))
    >>> keras.saving.load_model(path).count_params() == student.count_params()
    True
"""

from __future__ import annotations

import os

import keras

from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError


def teacher_variables_in(student: keras.Model, teacher: keras.Model) -> list[str]:
    """Paths of the teacher's variables that the student model holds (must be empty)."""
    teacher_ids = {id(v) for v in teacher.weights}
    return [v.path for v in student.weights if id(v) in teacher_ids]


def export_student(student, path, *, teacher: keras.Model | None = None) -> str:
    """Save the student (a model or a `DistillResult`) as ``.keras``, atomically, without the teacher.

    Args:
        student: the trained student model, or the `DistillResult` of `distill`.
        path: a ``.keras`` path.
        teacher: if given (or taken from the `DistillResult`), checked to share no variable with
            the student.

    Returns:
        The path written.

    Raises:
        ModelError: ``student`` is a distiller, or holds teacher variables.
    """
    from tfxfer.distill.train import DistillResult
    from tfxfer.utils.atomic import atomic_path

    if isinstance(student, DistillResult):
        teacher = teacher if teacher is not None else student.distiller.teacher
        student = student.student
    if isinstance(student, keras.distillation.Distiller):
        raise ModelError("Pass the student (distiller.student or DistillResult.student), not the distiller: "
                         "saving a distiller saves its teacher too")
    if not isinstance(student, keras.Model):
        raise ArgumentTypeError("student", student, "a keras.Model or a DistillResult")
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ArgumentError("path", path, "must end with .keras")
    if teacher is not None:
        shared = teacher_variables_in(student, teacher)
        if shared:
            raise ModelError(f"The student holds {len(shared)} teacher variables (e.g. {shared[0]!r})")
    with atomic_path(path) as tmp:  # the temporary name keeps the .keras suffix
        keras.saving.save_model(student, tmp)
    return path
