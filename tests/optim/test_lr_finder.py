import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError
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


def _dense():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    return model, x, np.arange(32) % 2


def _state(model):
    return {v.path: v.numpy().copy() for v in model.optimizer.variables}


def test_a_fresh_optimizer_is_left_as_it_was_built():
    model, x, y = _dense()
    lr_find(model, (x, y), steps=10, batch_size=8)
    state = _state(model)
    assert any("momentum" in path for path in state)  # built by lr_find, before its snapshot
    assert all(not np.any(value) for path, value in state.items() if "learning_rate" not in path)
    assert int(model.optimizer.iterations.numpy()) == 0


def test_a_trained_optimizer_gets_its_own_state_back():
    model, x, y = _dense()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    before = _state(model)
    lr_find(model, (x, y), steps=10, batch_size=8)
    after = _state(model)
    assert before.keys() == after.keys() and int(model.optimizer.iterations.numpy()) == 4
    for path in before:
        np.testing.assert_array_equal(before[path], after[path])


@pytest.mark.parametrize("options, name", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": -3}, "batch_size"), ({"steps": "ten"}, "steps"),
    ({"steps": float("nan")}, "steps"), ({"steps": 4}, "steps"), ({"diverge_factor": -1.0}, "diverge_factor"),
    ({"diverge_factor": 1.0}, "diverge_factor"), ({"diverge_factor": float("nan")}, "diverge_factor"),
    ({"max_lr": float("inf")}, "max_lr"), ({"min_lr": 0.0}, "min_lr"), ({"min_lr": 0.5, "max_lr": 0.5}, "min_lr"),
    ({"smoothing": 1.0}, "smoothing")])
def test_bad_options_name_the_argument_before_any_step(options, name):
    model, x, y = _dense()
    with pytest.raises(ArgumentError, match=f"`{name}`"):
        lr_find(model, (x, y), **{"steps": 10, "batch_size": 8, **options})
    assert not model.optimizer.built  # nothing ran


def test_bad_data_is_a_typed_error():
    model, x, y = _dense()
    with pytest.raises(DataError, match="32 inputs but 5 targets"):
        lr_find(model, (x, y[:5]), steps=10, batch_size=8)
    with pytest.raises(ArgumentTypeError, match="`data`"):
        lr_find(model, x, steps=10, batch_size=8)
