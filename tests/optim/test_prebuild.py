"""`build_optimizer`: the first training step is traced once, and what is trained does not change."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.optim.prebuild import build_optimizer


@pytest.fixture
def traces(monkeypatch):
    """Counts Python calls of ``train_step`` (one per trace) by model name."""
    counts = collections.Counter()
    original = TensorFlowTrainer.train_step

    def counted(self, data):
        counts[self.name] += 1
        return original(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counted)
    return counts


def _model(name):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(4, activation="relu")(inputs))
    model = keras.Model(inputs, outputs, name=name)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, (x[:, 0] > 0).astype("int64"))).batch(8)


def test_prebuilt_model_traces_its_first_step_once_and_trains_the_same(traces):
    ds = _data()
    plain, prebuilt = _model("plain"), _model("prebuilt")
    assert build_optimizer(prebuilt, batch=ds.element_spec) is True
    assert prebuilt.optimizer.built and len(prebuilt.optimizer.variables) > 1
    h_plain = plain.fit(ds, epochs=2, verbose=0, shuffle=False)
    h_pre = prebuilt.fit(ds, epochs=2, verbose=0, shuffle=False)
    # Keras 3 on TensorFlow (no strategy) builds the optimizer and metrics inside the first trace, then
    # traces again: if this turns 1, Keras builds ahead itself and build_optimizer has become a no-op
    assert traces["plain"] == 2
    assert traces["prebuilt"] == 1
    assert h_plain.history == h_pre.history
    for a, b in zip(plain.get_weights(), prebuilt.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert build_optimizer(prebuilt, batch=ds.element_spec) is False  # built already


def test_without_a_batch_the_optimizer_alone_is_built_and_unbuilt_models_are_left_alone():
    model = _model("optimizer_only")
    assert build_optimizer(model) is True and model.optimizer.built
    assert model.fit(_data(), epochs=1, verbose=0, shuffle=False).history["loss"][0] > 0

    class Lazy(keras.Model):  # its variables exist only after its first call
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    lazy = Lazy()
    lazy.compile(optimizer="adam", loss="mse")
    assert build_optimizer(lazy) is False and not lazy.optimizer.built
    lazy.fit(np.ones((4, 3), "float32"), np.ones((4, 2), "float32"), epochs=1, verbose=0)  # Keras builds it as before
    assert lazy.optimizer.built
    assert build_optimizer(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])) is False  # not compiled


def _tiny():
    return tiny_model(2, backbone=tiny_spec(), size=16, seed=0)


def test_fine_tune_traces_each_step_once_and_trains_what_it_trained_before(traces, monkeypatch):
    import tfxfer.train.head as head
    from tfxfer import fine_tune

    x, y = tiny_images(16, size=16)
    args = dict(val=(x[:8], y[:8]), head_epochs=1, epochs=1, verbose=0)
    model = _tiny()
    fine_tune(model, (x, y), **args)
    assert traces and all(n == 1 for n in traces.values()), dict(traces)  # the cached head and the unfrozen model
    traces.clear()
    fine_tune(_tiny(), (x, y), use_cached_features=False, **args)
    assert sum(traces.values()) == 2, dict(traces)  # the head stage and the unfreezing stage, each once
    monkeypatch.setattr(head, "build_optimizer", lambda *a, **k: False)  # as before prebuild.py
    before = _tiny()  # the same initial weights (seed 0)
    fine_tune(before, (x, y), **args)
    assert len(model.get_weights()) == len(before.get_weights())
    for a, b in zip(model.get_weights(), before.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_distill_adaptation_and_self_training_trace_each_step_once(traces, monkeypatch):
    from tfxfer import unfreeze
    from tfxfer.adapt import DANN, DeepCORAL, adaptation_dataset, self_train
    from tfxfer.adapt.trainer import FeatureAlignment
    from tfxfer.distill import distill

    x, y = tiny_images(16, size=16)
    distill(_tiny(), _tiny(), (x, y), epochs=1, verbose=0)
    assert list(traces.values()) == [1], dict(traces)
    traces.clear()
    original = FeatureAlignment.train_step  # DeepCORAL and DANN have their own train_step

    def counted(self, data):
        traces[type(self).__name__] += 1
        return original(self, data)

    monkeypatch.setattr(FeatureAlignment, "train_step", counted)
    for cls in (DeepCORAL, DANN):
        model = _tiny()
        unfreeze(model, top_groups=1)
        trainer = cls(model)
        trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        trainer.fit(adaptation_dataset((x, y), x, batch_size=8), epochs=1, verbose=0)
    assert dict(traces) == {"DeepCORAL": 1, "DANN": 1}
    traces.clear()
    model = _tiny()
    model.compile("adam", "sparse_categorical_crossentropy")
    self_train(model, (x, y), x, threshold=0.5, rounds=2, max_class_fraction=1.0)
    assert list(traces.values()) == [1], dict(traces)  # two rounds, one compile: one trace


def test_adapt_causal_lm_traces_its_step_once(traces, tmp_path):
    from tests.causal_lm.helpers import write_tiny_gguf
    from tfxfer.causal_lm import adapt_causal_lm, load_causal_lm

    write_tiny_gguf(tmp_path / "tiny.gguf")
    lm = load_causal_lm(str(tmp_path / "tiny.gguf"), cache_dir=str(tmp_path / "cache"))
    adapt_causal_lm(lm, ["the and then the end", "and the theme"] * 4, epochs=2, sequence_length=16, batch_size=4,
                    lora_rank=4)
    assert list(traces.values()) == [1], dict(traces)
