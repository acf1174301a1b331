"""Every kind of model tfxfer makes loads back in a fresh process, with its optimizer state.

Each kind is built small (``weights=None``), trained one short epoch when it is compiled (so the
optimizer has moments to lose), saved the way tfxfer saves it, and loaded in a new Python process
twice: ``import tfxfer`` then ``keras.saving.load_model``, and ``tfxfer.reliability.load_model``.
Both must give the same predictions and optimizer variables, and Keras must not warn that it
skipped or mismatched optimizer variables (DESIGN.md item 14).
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.factories import WORDPIECE_VOCAB

_LOADER = r"""
import json, sys, warnings
import numpy as np
order, path, x_path, out_dir = sys.argv[1:5]
if order == "keras-first":
    import keras
    import tfxfer
else:
    import tfxfer
    import keras
from tfxfer.reliability import load_model

x = np.load(x_path, allow_pickle=False)
if x.dtype.kind == "U":
    x = x.astype(object)
out = {}
for how in ("keras", "tfxfer"):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = keras.saving.load_model(path) if how == "keras" else load_model(path)
    opt = getattr(model, "optimizer", None)
    opt_vars = [np.asarray(v) for v in opt.variables] if opt is not None else []
    np.savez(f"{out_dir}/{how}_opt.npz", *opt_vars)  # millions of floats: binary, not JSON
    out[how] = {
        "warnings": [str(w.message)[:300] for w in caught],
        "pred": np.asarray(model.predict(x, verbose=0)).tolist(),
        "optimizer": type(opt).__name__ if opt is not None else None,
        "opt_vars": len(opt_vars),
    }
print("RESULT" + json.dumps(out))
"""

_BAD_WARNINGS = ("Skipping variable loading for optimizer", "variables whereas the saved optimizer has")


def _fit(model, x, y, optimizer, loss):
    model.compile(optimizer=optimizer, loss=loss)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    return model


def _image(task="multiclass", channels=3, real=False):
    from tests.factories import tiny_spec
    from tfxfer.models import build_model
    from tfxfer.optim import DiscriminativeAdam, WarmupSchedule

    rng = np.random.default_rng(0)
    # the real MobileNetV2 once (image_real); elsewhere its groups, layer names and preprocessing on a
    # ~1k-parameter look-alike: what is saved and loaded (tfxfer's layers, the discriminative optimizer's
    # state) is the same, at a quarter of the time
    model = build_model("mobilenet_v2" if real else tiny_spec("mobilenet_v2"), 3, task=task, input_size=(32, 32),
                        channels=channels, weights=None, freeze=False)
    x = rng.uniform(0, 255, (8, 32, 32, channels)).astype("float32")
    y = {"multiclass": rng.integers(0, 3, 8), "multilabel": rng.integers(0, 2, (8, 3)).astype("float32"),
         "regression": rng.normal(size=(8, 3)).astype("float32")}[task]
    loss = {"multiclass": "sparse_categorical_crossentropy", "multilabel": "binary_crossentropy",
            "regression": "mse"}[task]
    schedule = WarmupSchedule(peak_learning_rate=1e-3, warmup_steps=2, decay_steps=8)
    return _fit(model, x, y, DiscriminativeAdam(schedule, lr_multipliers={"head": 10.0}), loss), x


def _text():
    from tfxfer.text import build_bert_encoder, build_text_classifier

    encoder = build_bert_encoder(WORDPIECE_VOCAB, sequence_length=8, num_layers=1, num_heads=2, hidden_dim=8,
                                 intermediate_dim=16, dropout=0.0)
    model = build_text_classifier(encoder, 2)
    x = np.array(["the cat sat", "a dog ran", "the dog sat", "a cat ran"] * 2, dtype=object)
    y = np.array([0, 1, 1, 0] * 2)
    return _fit(model, x, y, keras.optimizers.AdamW(1e-3), "sparse_categorical_crossentropy"), x


def _ner():
    from tfxfer.text import build_bert_encoder
    from tfxfer.text.ner import build_token_classifier

    encoder = build_bert_encoder(WORDPIECE_VOCAB, sequence_length=8, num_layers=1, num_heads=2, hidden_dim=8,
                                 intermediate_dim=16, dropout=0.0)
    model = build_token_classifier(encoder, ["O", "B-PER", "I-PER"], scheme="BIO")
    x = np.array(["the cat sat", "a dog ran"] * 2, dtype=object)
    return model, x


def _student():
    from tfxfer.distill import export_student  # noqa: F401  (saved through it below)

    rng = np.random.default_rng(1)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(4)(inputs)))
    x = rng.normal(size=(8, 6)).astype("float32")
    return _fit(model, x, rng.integers(0, 3, 8), "adam", "sparse_categorical_crossentropy"), x


def _l2sp():
    from tfxfer.optim import attach_l2sp

    rng = np.random.default_rng(2)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(4)(inputs)))
    assert attach_l2sp(model, alpha=0.01, beta=0.01)
    x = rng.normal(size=(8, 6)).astype("float32")
    return _fit(model, x, rng.integers(0, 2, 8), "adam", "sparse_categorical_crossentropy"), x


def _alignment(cls):
    from tfxfer.adapt import adaptation_dataset

    rng = np.random.default_rng(3)
    inputs = keras.Input((6,))
    feat = keras.layers.Dense(4, activation="relu", name="feat")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(feat))
    trainer = cls(model, feature_layer="feat")
    trainer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    xs = rng.normal(size=(16, 6)).astype("float32")
    trainer.fit(adaptation_dataset((xs, rng.integers(0, 2, 16)), xs + 1.0, batch_size=8), epochs=1, verbose=0)
    return trainer, xs


def _pruned():
    pytest.importorskip("tensorflow_model_optimization")
    from tfxfer.quantize.pruning import prune

    rng = np.random.default_rng(4)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(8)(inputs)))
    x = rng.normal(size=(16, 6)).astype("float32")
    return prune(model, (x, rng.integers(0, 2, 16)), target_sparsity=0.5, epochs=1, batch_size=8).model, x


def _fine_tuned():
    """A model trained the way recipes train it: `tfxfer.fine_tune` swaps in a fresh optimizer with a
    warmup schedule for each unfreezing stage, so the saved compile config must follow it."""
    from tfxfer import fine_tune
    from tfxfer.models import build_model

    rng = np.random.default_rng(5)
    model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    x = rng.uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 2, 16)
    fine_tune(model, (x, y), val=(x[:8], y[:8]), head_epochs=1, epochs=2, batch_size=8, verbose=0, seed=0,
              keep_if_better=False)
    return model, x[:4]


def _text_fine_tuned(stages=None):
    """A text model trained by `tfxfer.fine_tune`: its unused pooler (and, with ``stages``, the lower layers)
    stay frozen, but a keras-hub encoder does not save its inner layers' trainable flags, so the reloaded
    model trains more variables than the one that was saved; the saved optimizer state must still load."""
    from tfxfer import fine_tune
    from tfxfer.text import build_bert_encoder, build_text_classifier

    encoder = build_bert_encoder(WORDPIECE_VOCAB, sequence_length=8, num_layers=2, num_heads=2, hidden_dim=8,
                                 intermediate_dim=16, dropout=0.0)
    model = build_text_classifier(encoder, 2)
    x = np.array(["the cat sat", "a dog ran", "the dog sat", "a cat ran"] * 4, dtype=object)
    y = np.array([0, 1, 1, 0] * 4)
    fine_tune(model, (x, y), val=(x[:8], y[:8]), head_epochs=1, epochs=2, batch_size=8, verbose=0, seed=0,
              keep_if_better=False, stages=stages)
    return model, x[:4]


def _build(kind):
    from tfxfer.adapt import DANN, DeepCORAL

    return {
        "image": lambda: _image(),
        "image_real": lambda: _image(real=True),
        "image_gray": lambda: _image(channels=1),
        "multilabel": lambda: _image("multilabel"),
        "regression": lambda: _image("regression"),
        "text": _text,
        "ner": _ner,
        "student": _student,
        "l2sp": _l2sp,
        "dann": lambda: _alignment(DANN),
        "coral": lambda: _alignment(DeepCORAL),
        "pruned": _pruned,
        "fine_tuned": _fine_tuned,
        "text_fine_tuned": _text_fine_tuned,
        "text_partly_unfrozen": lambda: _text_fine_tuned(stages={0: 2}),  # pooler (frozen) + layer_1
    }[kind]()


@pytest.mark.parametrize("kind,order", [
    ("image", "tfxfer-first"), ("image_real", "keras-first"), ("image_gray", "tfxfer-first"),
    ("multilabel", "tfxfer-first"), ("regression", "keras-first"), ("text", "tfxfer-first"),
    ("ner", "keras-first"), ("student", "tfxfer-first"), ("l2sp", "tfxfer-first"), ("pruned", "tfxfer-first"),
    ("dann", "tfxfer-first"), ("coral", "keras-first"), ("fine_tuned", "tfxfer-first"),
    ("text_fine_tuned", "keras-first"), ("text_partly_unfrozen", "tfxfer-first"),
])
def test_saved_model_loads_in_a_fresh_process_with_its_optimizer(tmp_path, kind, order):
    model, x = _build(kind)
    path = str(tmp_path / f"{kind}.keras")
    if kind == "student":
        from tfxfer.distill import export_student

        export_student(model, path)
    else:
        model.save(path)
    x_path = str(tmp_path / "x.npy")
    np.save(x_path, x.astype(str) if x.dtype == object else x, allow_pickle=False)
    expected = np.asarray(model.predict(x, verbose=0))
    opt = getattr(model, "optimizer", None)
    expected_vars = [np.asarray(v) for v in opt.variables] if opt is not None and opt.built else None
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-c", _LOADER, order, path, x_path, str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    for how, got in result.items():
        bad = [w for w in got["warnings"] if any(b in w for b in _BAD_WARNINGS)]
        assert not bad, f"{kind} via {how}: {bad}"
        np.testing.assert_allclose(got["pred"], expected, rtol=1e-5, atol=1e-6, err_msg=f"{kind} via {how}")
        if expected_vars is not None:
            assert got["optimizer"] == type(opt).__name__, (how, got["optimizer"])
            with np.load(tmp_path / f"{how}_opt.npz") as saved:
                got_vars = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            assert got["opt_vars"] == len(got_vars) == len(expected_vars), how
            for a, b in zip(got_vars, expected_vars):
                np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=f"{kind} optimizer via {how}")
