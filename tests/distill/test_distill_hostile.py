"""`distill` on hostile inputs: mismatched teacher / student and bad labels are typed errors naming
them, raised before anything is built or trained; alpha=0 trains on the teacher alone without labels."""

import keras
import numpy as np
import pytest

from tfxfer.distill import distill
from tfxfer.errors import ArgumentError, DataError, ModelError


def classifier(size=8, classes=4, name="m", seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name=f"{name}_conv")(keras.layers.Rescaling(1 / 255.0)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax", name=f"{name}_head")(x), name=name)


def images(n=32, size=8, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (n, size, size, 3)).astype("float32"), rng.integers(0, classes, n)


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if distill gets as far as building the distiller."""
    import tfxfer.distill.train as train

    def refuse(*args, **kwargs):
        raise AssertionError("distill built a distiller before checking its inputs")

    monkeypatch.setattr(train, "TransferDistiller", refuse)


@pytest.mark.parametrize("student,match", [
    (lambda: classifier(classes=3, name="s"), r"`student` \('s'\) has 3 outputs but `teacher` \('t'\) has 4"),
    (lambda: classifier(size=4, name="s"), r"`student` \('s'\) takes inputs of shape \[\(4, 4, 3\)\] but `teacher`"),
])
def test_teacher_and_student_must_match(no_training, student, match):
    with pytest.raises(ModelError, match=match):
        distill(classifier(name="t"), student(), images(), epochs=1)


@pytest.mark.parametrize("make,error,match", [
    (lambda x, y: dict(train=(x, y + 7)), DataError, r"`train` labels must be class ids in \[0, 4\).*\[7, 10\]"),
    (lambda x, y: dict(train=(x, -np.ones_like(y))), DataError, r"`train` labels must be class ids in \[0, 4\)"),
    (lambda x, y: dict(train=(x, np.eye(3)[y % 3])), DataError, "one-hot rows of 3 classes"),
    (lambda x, y: dict(train=(x[:, :4, :4], y)), DataError, r"`train` inputs have shape \(4, 4, 3\)"),
    (lambda x, y: dict(train=(x, y), val=(x, y + 4)), DataError, r"`val` labels must be class ids in \[0, 4\)"),
    (lambda x, y: dict(train=(x, y), unlabeled=x[:, :4, :4]), DataError, "`unlabeled` inputs have shape"),
    (lambda x, y: dict(train=(x, None)), ArgumentError, "`alpha` must be 0 when `train` has no labels"),
])
def test_bad_data_is_a_typed_error_before_training(no_training, make, error, match):
    teacher, student = classifier(name="t"), classifier(name="s", seed=1)
    with pytest.raises(error, match=match):
        distill(teacher, student, epochs=1, **make(*images()))


def test_alpha_zero_trains_on_the_teacher_alone_without_labels():
    teacher, student = classifier(name="t"), classifier(name="s", seed=1)
    x, _ = images()
    before = [w.copy() for w in student.get_weights()]
    result = distill(teacher, student, (x, None), alpha=0.0, epochs=1, batch_size=16)
    assert result.history["student_loss"] == [0.0] and result.history["distillation_loss"][0] > 0
    assert "accuracy" not in result.history  # no labels: no accuracy to report
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
