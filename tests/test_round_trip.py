"""Every kind of model tfxfer makes loads back in a fresh process, with its optimizer state.

Each kind is built small (``weights=None``), trained one short epoch when it is compiled (so the
optimizer has moments to lose), saved the way tfxfer saves it, and loaded in a new Python process
twice: ``keras.saving.load_model`` and ``tfxfer.reliability.load_model``. Both must give the same
predictions and optimizer variables, and Keras must not warn that it skipped or mismatched optimizer
variables (DESIGN.md item 14).

The new process imports either Keras or tfxfer first (``ORDERS``: each kind is read under one of the
two). All kinds of one order are read by one process, one after another, each from its own file: the
process has saved nothing and built nothing, and ``import tfxfer`` registers every tfxfer Keras class
at once (tfxfer/_registration.py), so a kind read later finds nothing an earlier one left behind that
it would not have found first. One process per order instead of one per kind: each costs about 7 s
of TensorFlow import on 2 cores. A kind that fails to load is reported by name, with its traceback,
and does not hide the others.
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
import json, sys, traceback, warnings
import numpy as np
order, root, kinds = sys.argv[1], sys.argv[2], sys.argv[3:]
if order == "keras-first":
    import keras
    import tfxfer
else:
    import tfxfer
    import keras
from tfxfer.reliability import load_model

out = {}
for kind in kinds:
    folder = f"{root}/{kind}"
    try:
        x = np.load(f"{folder}/x.npy", allow_pickle=False)
        if x.dtype.kind == "U":
            x = x.astype(object)
        got = {}
        for how in ("keras", "tfxfer"):
            path = f"{folder}/{kind}.keras"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = keras.saving.load_model(path) if how == "keras" else load_model(path)
            opt = getattr(model, "optimizer", None)
            opt_vars = [np.asarray(v) for v in opt.variables] if opt is not None else []
            np.savez(f"{folder}/{how}_opt.npz", *opt_vars)  # millions of floats: binary, not JSON
            got[how] = {
                "warnings": [str(w.message)[:300] for w in caught],
                "pred": np.asarray(model.predict(x, verbose=0)).tolist(),
                "optimizer": type(opt).__name__ if opt is not None else None,
                "opt_vars": len(opt_vars),
            }
        out[kind] = got
    except Exception:
        out[kind] = {"error": traceback.format_exc()[-3000:]}
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


#: Which import comes first in the loading process, for each kind (every kind is read under one order).
ORDERS = {
    "keras-first": ("image_real", "regression", "ner", "coral", "text_fine_tuned"),
    "tfxfer-first": ("image", "image_gray", "multilabel", "text", "student", "l2sp", "pruned", "dann",
                     "fine_tuned", "text_partly_unfrozen"),
}


def _save(kind, folder):
    """Build, train and save one kind into ``folder``; return what the loading process must reproduce."""
    model, x = _build(kind)
    folder.mkdir()
    path = str(folder / f"{kind}.keras")
    if kind == "student":
        from tfxfer.distill import export_student

        export_student(model, path)
    else:
        model.save(path)
    np.save(folder / "x.npy", x.astype(str) if x.dtype == object else x, allow_pickle=False)
    opt = getattr(model, "optimizer", None)
    return {
        "pred": np.asarray(model.predict(x, verbose=0)),
        "optimizer": type(opt).__name__ if opt is not None else None,
        "opt_vars": [np.asarray(v) for v in opt.variables] if opt is not None and opt.built else None,
    }


def _check(kind, folder, expected, result):
    if "error" in result:
        raise AssertionError(f"{kind} did not load:\n{result['error']}")
    for how, got in result.items():
        bad = [w for w in got["warnings"] if any(b in w for b in _BAD_WARNINGS)]
        assert not bad, f"{kind} via {how}: {bad}"
        np.testing.assert_allclose(got["pred"], expected["pred"], rtol=1e-5, atol=1e-6, err_msg=f"{kind} via {how}")
        if expected["opt_vars"] is not None:
            assert got["optimizer"] == expected["optimizer"], (kind, how, got["optimizer"])
            with np.load(folder / f"{how}_opt.npz") as saved:
                got_vars = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            assert got["opt_vars"] == len(got_vars) == len(expected["opt_vars"]), (kind, how)
            for a, b in zip(got_vars, expected["opt_vars"]):
                np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=f"{kind} optimizer via {how}")


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_saved_models_load_in_a_fresh_process_with_their_optimizer(tmp_path, order):
    expected, skipped = {}, []
    for kind in ORDERS[order]:
        try:
            expected[kind] = _save(kind, tmp_path / kind)
        except pytest.skip.Exception as reason:  # an optional dependency missing: that kind only
            skipped.append(f"{kind}: {reason}")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-c", _LOADER, order, str(tmp_path), *expected], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert sorted(results) == sorted(expected)
    failures = []
    for kind in expected:
        try:
            _check(kind, tmp_path / kind, expected[kind], results[kind])
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, "\n\n".join(failures)
    if skipped:
        pytest.skip("; ".join(skipped))
