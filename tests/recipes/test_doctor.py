"""`tfxfer doctor`'s environment rules: TF_USE_LEGACY_KERAS as TensorFlow reads it, KERAS_BACKEND named as
the cause when Keras would load another backend."""

import pytest

from tfxfer.recipes import doctor

GOOD = {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0", "tensorflow-model-optimization": "0.8.1",
        "ai-edge-litert": "2.3.0", "keras-hub": "0.32.0", "tensorflow-serving-api": "2.21.0"}


def _legacy(value):
    env = {} if value is None else {"TF_USE_LEGACY_KERAS": value}
    return next(c for c in doctor.check_versions(GOOD, env=env) if c.name == "TF_USE_LEGACY_KERAS")


@pytest.mark.parametrize("value", [None, "", "0", "false", "False", "FALSE", "no", "off", "TRUE", "yes"])
def test_legacy_keras_values_tensorflow_ignores_pass(value):
    check = _legacy(value)  # tensorflow/python/util/lazy_loader.py switches only on true, True and 1
    assert check.ok and check.fix == "", check


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_legacy_keras_values_tensorflow_obeys_fail(value):
    check = _legacy(value)
    assert not check.ok and check.fix == "unset TF_USE_LEGACY_KERAS" and check.found == value


def test_another_keras_backend_is_named_by_the_import_check(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    monkeypatch.setattr(doctor, "_import_check", lambda name, statement, fix: doctor.Check(name, True, "imports",
                                                                                          "imports"))
    check = doctor.import_checks()[0]  # without importing Keras, which would load (or miss) jax
    assert check.name == "import keras (TensorFlow backend)" and not check.ok and check.found == "KERAS_BACKEND=jax"
    assert "tfxfer needs the tensorflow backend" in check.fix
