"""Distillation on keras.distillation: only the student trains, unlabeled rows, features, export, report."""

import os

import keras
import numpy as np
import pytest

from tfxfer.distill import (
    UNLABELED,
    DenseLogits,
    TransferDistiller,
    distill,
    export_student,
    logits_model,
    resolve_layer_output,
    retention_report,
    teacher_variables_in,
)
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError, UnknownNameError


def mlp(width, name, classes=3, activation="softmax"):
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu", name=f"{name}_hidden"),
                             keras.layers.Dense(classes, activation=activation, name=f"{name}_head")], name=name)


def data(n=96, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 8)).astype("float32")
    return x, x[:, :3].argmax(1)


def test_logits_view_shares_weights_and_round_trips(tmp_path):
    model = mlp(16, "m")
    view = logits_model(model)
    x, y = data(16)
    np.testing.assert_allclose(keras.ops.softmax(view(x)), model(x), atol=1e-6)
    assert {id(v) for v in view.trainable_weights} == {id(v) for v in model.trainable_weights}
    view.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.get_layer("m_head").kernel.numpy().copy()
    view.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(before, model.get_layer("m_head").kernel.numpy())  # trained in place
    path = str(tmp_path / "view.keras")
    view.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), view.predict(x, verbose=0), atol=1e-6)
    assert any(isinstance(layer, DenseLogits) for layer in loaded.layers)
    linear = mlp(4, "lin", activation=None)
    assert logits_model(linear) is linear


def test_logits_view_errors():
    with pytest.raises(ModelError, match="softmax"):
        logits_model(mlp(4, "s", activation="sigmoid"))
    ends_in_pool = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ModelError, match="Dense"):
        logits_model(ends_in_pool)
    with pytest.raises(ArgumentTypeError, match="Dense"):
        DenseLogits(keras.layers.Conv2D(2, 1))


def test_only_the_student_trains():
    teacher, student = mlp(32, "teacher"), mlp(4, "student")
    teacher.get_layer("teacher_hidden").trainable = False  # a flag the distiller must give back
    t_before = [w.copy() for w in teacher.get_weights()]
    s_before = [w.copy() for w in student.get_weights()]
    result = distill(teacher, student, data(), epochs=2, batch_size=16, unlabeled=data(32, seed=1)[0])
    for a, b in zip(t_before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)  # bit-identical
    assert all(not np.array_equal(a, b) for a, b in zip(s_before, student.get_weights()))
    assert result.student is student
    assert teacher.get_layer("teacher_head").trainable and not teacher.get_layer("teacher_hidden").trainable
    assert {"student_loss", "distillation_loss", "total_loss"} <= set(result.history)
    assert result.settings["unlabeled"] is True


def test_logit_term_is_a_real_kl_on_softened_logits():
    teacher, student = mlp(8, "t"), mlp(8, "s")
    student.set_weights(teacher.get_weights())
    x, y = data(32)
    distiller = distill(teacher, student, (x, y), epochs=1, alpha=0.0, learning_rate=1e-9).distiller
    same = float(distiller.compute_loss(x=x, y=y))
    student.get_layer("s_head").kernel.assign(-teacher.get_layer("t_head").kernel)
    opposite = float(distiller.compute_loss(x=x, y=y))
    assert same == pytest.approx(0.0, abs=1e-5)
    assert opposite > 0.05  # Keras 3.15's default "kl_divergence" string would score both alike


def test_unlabeled_rows_only_get_the_distillation_term():
    teacher, student = mlp(8, "t"), mlp(8, "s")
    x, y = data(16)
    distiller = distill(teacher, student, (x, y), epochs=1, alpha=1.0, learning_rate=1e-9).distiller
    labelled = float(distiller.compute_loss(x=x, y=y))
    assert labelled > 0
    none = float(distiller.compute_loss(x=x, y=np.full(16, UNLABELED)))
    assert none == 0.0
    half = y.copy()
    half[8:] = UNLABELED
    expected = float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y[:8], student(x[:8]))))
    assert float(distiller.compute_loss(x=x, y=half)) == pytest.approx(expected, rel=1e-4)


def test_feature_distillation_reaches_into_nested_backbones():
    from tests.factories import tiny_nested_model

    teacher = tiny_nested_model(size=16, classes=3, top=24, name="teacher")
    student = tiny_nested_model(size=16, classes=3, top=16, name="student")
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    tensor = resolve_layer_output(student, "backbone/top_conv")
    assert tuple(tensor.shape[1:]) == (4, 4, 16)
    result = distill(teacher, student, (x, np.arange(8) % 3), epochs=1, batch_size=8,
                     feature_pairs=[("backbone/top_conv", "backbone/top_conv"),
                                    ("backbone/top_conv", "backbone/residual_add"), ("pool", "pool")])
    distiller = result.distiller
    # (4, 4, 24) vs (4, 4, 16): a 16 -> 24 projection; (4, 4, 24) vs (8, 8, 8): both pooled, then 8 -> 24.
    assert [a.name for a in distiller.feature_adapters] == ["adapter_1", "adapter_2", "adapter_3"]
    assert [tuple(a.kernel.shape) for a in distiller.feature_adapters] == [(16, 24), (8, 24), (16, 24)]
    assert distiller._pool_pair == {1: False, 2: True, 3: False}
    adapter = distiller.feature_adapters[0]
    assert np.isfinite(result.history["distillation_loss"][0])
    assert not teacher_variables_in(result.student, teacher)
    assert id(adapter.kernel) not in {id(v) for v in result.student.weights}
    with pytest.raises(UnknownNameError, match="top_cnv"):
        distill(teacher, student, (x, np.arange(8) % 3), feature_pairs=[("pool", "backbone/top_cnv")])
    with pytest.raises(ModelError, match="not a nested model"):
        resolve_layer_output(student, "pool/x")
    with pytest.raises(ModelError, match="cannot be matched"):
        distill(teacher, student, (x, np.arange(8) % 3), feature_pairs=[("backbone/top_conv", "pool")])


def test_distiller_config_round_trip():
    teacher, student = logits_model(mlp(8, "t")), logits_model(mlp(4, "s"))
    distiller = TransferDistiller(teacher, student, [keras.distillation.LogitsDistillation(
        temperature=2.0, loss=keras.losses.KLDivergence())], student_loss_weight=0.3)
    clone = TransferDistiller.from_config(distiller.get_config())
    assert clone.student_loss_weight == 0.3
    assert clone.distillation_losses[0].temperature == 2.0
    assert clone.student.count_params() == student.count_params()


def test_export_student_alone(tmp_path):
    teacher, student = mlp(64, "teacher"), mlp(4, "student")
    result = distill(teacher, student, data(), epochs=1)
    path = export_student(result, tmp_path / "student.keras")
    loaded = keras.saving.load_model(path)
    assert loaded.count_params() == student.count_params() < teacher.count_params()
    assert not any("teacher" in v.path for v in loaded.weights)
    x, _ = data(8)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0), atol=1e-6)
    whole = tmp_path / "distiller.keras"
    result.distiller.save(whole)  # the naive way drags the teacher along
    assert os.path.getsize(whole) > 2 * os.path.getsize(path)
    with pytest.raises(ModelError, match="not the distiller"):
        export_student(result.distiller, tmp_path / "d.keras")
    with pytest.raises(ArgumentError, match=".keras"):
        export_student(student, tmp_path / "student.h5")
    with pytest.raises(ModelError, match="teacher variables"):
        export_student(teacher, tmp_path / "t.keras", teacher=teacher)


def test_retention_report_numbers():
    x, y = data(40)
    teacher, student = mlp(64, "teacher"), mlp(4, "student")

    def always(cls, name):
        model = mlp(4, name)
        head = model.get_layer(f"{name}_head")
        head.kernel.assign(np.zeros(head.kernel.shape))
        head.bias.assign(np.eye(3)[cls] * 10)
        return model

    report = retention_report(always(0, "t"), always(1, "d"), (x, y), student_alone=always(2, "a"))
    assert report.teacher_accuracy == pytest.approx((y == 0).mean())
    assert report.distilled_accuracy == pytest.approx((y == 1).mean())
    assert report.gain_points == pytest.approx(((y == 1).mean() - (y == 2).mean()) * 100, abs=1e-3)
    assert report.retention == pytest.approx((y == 1).mean() / (y == 0).mean())
    full = retention_report(teacher, student, (x, y))
    assert full.param_ratio == pytest.approx(student.count_params() / teacher.count_params())
    assert full.size_ratio == pytest.approx(full.param_ratio) and full.student_alone_accuracy is None
    assert "retention" in full.format()
    with pytest.raises(ArgumentTypeError, match="data"):
        retention_report(teacher, student, x)
    with pytest.raises(DataError, match="labels"):
        retention_report(teacher, student, (x, y[:3]))
    with pytest.raises(ArgumentTypeError, match="student_alone"):
        retention_report(teacher, student, (x, y), student_alone="model")


def test_argument_errors():
    teacher, student = mlp(8, "t"), mlp(4, "s")
    d = data(16)
    with pytest.raises(ArgumentError, match="temperature"):
        distill(teacher, student, d, temperature=0)
    with pytest.raises(ArgumentError, match="alpha"):
        distill(teacher, student, d, alpha=1.5)
    with pytest.raises(ArgumentError, match="different model"):
        distill(teacher, teacher, d)
    with pytest.raises(ArgumentError, match="epochs"):
        distill(teacher, student, d, epochs=0)
    with pytest.raises(ArgumentTypeError, match="feature_pairs"):
        distill(teacher, student, d, feature_pairs=[("a",)])
    with pytest.raises(DataError, match="labels"):
        distill(teacher, student, (d[0], d[1][:4]))
    with pytest.raises(DataError, match="unlabeled"):
        distill(teacher, student, d, unlabeled=np.zeros((4, 3), "float32"))
    with pytest.raises(ArgumentTypeError, match="train"):
        distill(teacher, student, [1, 2, 3])
