import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model
from tfxfer.errors import ArgumentError, ModelError
from tfxfer.optim import WarmupSchedule, lr_find


def test_range_test_returns_a_curve_and_restores_the_model(tmp_path):
    model = tiny_model(2)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = tiny_images(64)
    before = [w.copy() for w in model.get_weights()]
    result = lr_find(model, (x, y), steps=30, batch_size=8, max_lr=10.0)
    assert 5 <= len(result.learning_rates) == len(result.losses) <= 30
    assert result.learning_rates == sorted(result.learning_rates)
    assert result.learning_rates[0] <= result.suggestion <= result.learning_rates[-1]
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    result.plot(str(tmp_path / "lr.png"))
    assert (tmp_path / "lr.png").stat().st_size > 1000


def test_needs_a_compiled_model_with_a_constant_rate():
    model = tiny_model(2)
    x, y = tiny_images(8)
    with pytest.raises(ModelError, match="compiled"):
        lr_find(model, (x, y))
    model.compile(optimizer=__import__("keras").optimizers.Adam(WarmupSchedule(1e-3, 1, 10)), loss="mse")
    with pytest.raises(ArgumentError, match="must be a constant"):
        lr_find(model, (x, y))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    with pytest.raises(ArgumentError, match="`min_lr`"):
        lr_find(model, (x, y), min_lr=1.0, max_lr=0.1)
