import keras
import numpy as np
import pytest

from tfxfer.errors import ArgumentError
from tfxfer.optim import WarmupSchedule


def _values(s, steps):
    return np.array([float(s(step)) for step in steps])


def test_linear_warmup_then_cosine_to_final():
    s = WarmupSchedule(1e-3, warmup_steps=10, decay_steps=100, final_learning_rate=1e-5)
    v = _values(s, [0, 5, 10, 60, 110, 500])
    np.testing.assert_allclose(v, [0.0, 5e-4, 1e-3, 1e-5 + (1e-3 - 1e-5) * 0.5, 1e-5, 1e-5], rtol=1e-5, atol=1e-9)
    assert np.all(np.diff(_values(s, range(10, 111))) <= 1e-12)


def test_constant_and_linear_decays():
    c = WarmupSchedule(2e-3, warmup_steps=4, decay="constant")
    np.testing.assert_allclose(_values(c, [2, 4, 1000]), [1e-3, 2e-3, 2e-3], rtol=1e-6)
    lin = WarmupSchedule(1.0, warmup_steps=0, decay_steps=10, decay="linear")
    np.testing.assert_allclose(_values(lin, [0, 5, 10]), [1.0, 0.5, 0.0], atol=1e-6)


def test_serialization_round_trip_keeps_every_argument():
    s = WarmupSchedule(3e-4, 7, 70, decay="linear", initial_learning_rate=1e-6, final_learning_rate=1e-7)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert clone.get_config() == s.get_config()
    np.testing.assert_allclose(_values(clone, [0, 3, 50]), _values(s, [0, 3, 50]))


def test_drives_an_optimizer():
    opt = keras.optimizers.Adam(WarmupSchedule(1e-3, warmup_steps=2, decay_steps=2))
    var = keras.Variable(np.ones(3, "float32"))
    opt.apply([np.ones(3, "float32")], [var])
    assert float(opt.learning_rate) == pytest.approx(5e-4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(peak_learning_rate=0, warmup_steps=1, decay_steps=1), "`peak_learning_rate` must be a finite number > 0"),
        (dict(peak_learning_rate=1, warmup_steps=-1, decay_steps=1), "`warmup_steps` must be an int >= 0"),
        (dict(peak_learning_rate=float("inf"), warmup_steps=2, decay_steps=5), "`peak_learning_rate`"),
        (dict(peak_learning_rate="0.001", warmup_steps=2, decay_steps=5), "`peak_learning_rate`"),
        (dict(peak_learning_rate=1e-3, warmup_steps=2, decay_steps=5, final_learning_rate=float("nan")),
         "`final_learning_rate` must be a finite number >= 0"),
        (dict(peak_learning_rate=1e-3, warmup_steps=2, decay_steps=5, final_learning_rate=-5.0), "`final_learning_rate`"),
        (dict(peak_learning_rate=1e-3, warmup_steps=2, decay_steps=5, initial_learning_rate=-1.0),
         "`initial_learning_rate`"),
        (dict(peak_learning_rate=1e-3, warmup_steps=float("nan"), decay_steps=5), "`warmup_steps` must be an int"),
        (dict(peak_learning_rate=1e-3, warmup_steps="ten", decay_steps=5), "`warmup_steps`"),
        (dict(peak_learning_rate=1e-3, warmup_steps=2.7, decay_steps=5), "`warmup_steps`"),
        (dict(peak_learning_rate=1e-3, warmup_steps=2, decay_steps=5.5), "`decay_steps`"),
        (dict(peak_learning_rate=1e-3, warmup_steps=2, decay_steps=5, decay=None), "`decay` must be one of"),
        (dict(peak_learning_rate=1, warmup_steps=1, decay_steps=0), "`decay_steps` must be > 0"),
        (dict(peak_learning_rate=1, warmup_steps=1, decay_steps=1, decay="step"), "`decay` must be one of"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ArgumentError, match=match):
        WarmupSchedule(**kwargs)


def test_numpy_numbers_are_accepted_and_round_trip_as_python_numbers():
    s = WarmupSchedule(np.float32(1e-3), np.int64(4), np.int32(8), final_learning_rate=np.float64(1e-5))
    config = s.get_config()
    assert type(config["peak_learning_rate"]) is float and type(config["warmup_steps"]) is int
    assert WarmupSchedule.from_config(config).get_config() == config
