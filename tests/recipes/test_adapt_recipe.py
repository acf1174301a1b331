"""The recipe's ``adapt:`` keys: validated strictly, run after fine-tuning, recorded in
``adaptation.json`` with exactly the report's keys, and the exported model is the plain (adapted)
classifier."""

import json
import os

import numpy as np
import pytest

from tests.factories import make_image_folder, make_text_preset, make_text_table
from tests.recipes.helpers import recipe, tiny_overrides, tiny_text_overrides
from tfxfer.errors import ConfigError
from tfxfer.recipes.config_loader import load_config

RECORD_KEYS = {"method", "target", "source_only", "adapted", "oracle", "shift", "notes", "stopped"}


@pytest.mark.parametrize("text,match", [
    ("adapt: {method: corl, target: x}", "`adapt.method` must be one of .* Did you mean 'coral'"),
    ("adapt: {method: coral}", "`adapt.target` is required"),
    ("adapt: {method: coral, target: animal_mnist}", "is the recipe's own `data.source`"),
    ("adapt: {method: dann, target: x, threshold: 1.5}", r"`adapt.threshold` must be a finite number in \(0, 1\]"),
    ("adapt: {method: dann, target: x, epochs: 0}", "`adapt.epochs` must be an integer >= 1"),
    ("adapt: {method: self_train, target: x, per_class_fraction: 0}", "`adapt.per_class_fraction`"),
    ("adapt: {method: dann, target: x}\ndistill: {enabled: true}", "would not reach it"),
    ("adapt: {method: dann, target: x}\ntrain: {strategy: mirrored}", "one device"),
    ("adapt: {methd: dann}", "unknown key `adapt.methd`. Did you mean `adapt.method`"),
])
def test_bad_adapt_keys_are_config_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(text="data: {source: animal_mnist}\n" + text)


def test_adabn_needs_batchnorm_and_ner_cannot_adapt():
    with pytest.raises(ConfigError, match="text encoders have none"):
        load_config(text="task: text_classification\ndata: {source: sentiment_movies}\n"
                         "adapt: {method: adabn, target: sentiment_tweets}")
    with pytest.raises(ConfigError, match="token_classification"):
        load_config(text="task: token_classification\ndata: {source: wnut16}\n"
                         "adapt: {method: dann, target: x.txt}")
    cfg = load_config(text="task: text_classification\ndata: {source: sentiment_movies}\n"
                           "adapt: {method: self_train, target: sentiment_tweets}")
    assert cfg.adapt.method == "self_train" and cfg.adapt.per_class_fraction == 0.2


def test_a_recipe_without_adapt_keeps_its_stage_fingerprints():
    from tfxfer.recipes.adapt_stages import adapt_config

    assert adapt_config(load_config(text="data: {source: animal_mnist}")) == {}
    on = load_config(text="data: {source: animal_mnist}\nadapt: {method: adabn, target: /tmp/x}")
    assert adapt_config(on)["adapt"]["method"] == "adabn"


def _shifted_copy(folder, target):
    """The same classes, darker and with less contrast (a real input shift)."""
    from PIL import Image

    make_image_folder(target, seed=1, broken=False)
    for cls in os.listdir(target):
        for name in os.listdir(os.path.join(target, cls)):
            path = os.path.join(target, cls, name)
            image = np.asarray(Image.open(path)).astype(np.float32)
            Image.fromarray(np.clip(image * 0.5 + 10, 0, 255).astype(np.uint8)).save(path)
    return str(target)


def test_image_recipe_adapts_with_dann_and_exports_the_plain_model(image_folder, tmp_path):
    from tfxfer.recipes import run_pipeline
    from tfxfer.reliability import load_model

    target = _shifted_copy(image_folder, tmp_path / "target")
    cfg = load_config(recipe("quick"), overrides=tiny_overrides(image_folder, extra=[
        # DANN aligns 'head_hidden' (model.hidden_units), so the backbone's unfreezing epoch is not needed
        "model.hidden_units=8", "train.epochs=0", "adapt.method=dann", f"adapt.target={target}", "adapt.epochs=1",
        # the plain model's gated file: float32 is enough (int8 calibration and latency are not looked at)
        "export.variants=[float32]", "export.deliver=float32", "export.benchmark=false"]))
    result = run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
    with open(os.path.join(result.run_dir, "adaptation.json")) as f:
        record = json.load(f)
    assert set(record) == RECORD_KEYS
    assert record["method"] == "dann" and record["target"] == target
    assert record["stopped"] is False and record["notes"][0].startswith("dann: 1 epoch(s)")
    for key in ("source_only", "adapted", "oracle"):
        assert set(record[key]) == {"accuracy", "macro_f1", "ece"}, key
        assert 0.0 <= record[key]["accuracy"] <= 1.0
    assert record["shift"]["tests"] and isinstance(record["shift"]["shifted"], bool)
    finetune = json.load(open(os.path.join(result.run_dir, "stages", "finetune.json")))
    assert "adaptation.json" in finetune["artefacts"] and finetune["outputs"]["adapt"]["notes"]
    # The saved (and exported) model is the plain classifier: no wrapper, no domain classifier.
    model = load_model(os.path.join(result.run_dir, "model", "model.keras"), compile=False)
    names = {layer.name for layer in model._flatten_layers(include_self=False, recursive=True)}
    assert not {n for n in names if "domain" in n or "reversal" in n}, names
    assert type(model).__name__ == "Functional"
    assert result.gate_passed and os.path.isfile(result.tflite)
    html = open(result.report_html, encoding="utf-8").read()
    assert 'id="adaptation-table"' in html


def test_text_recipe_self_trains_on_the_target_table(tmp_path):
    from tfxfer.recipes import run_pipeline

    preset = make_text_preset(tmp_path / "preset")
    source = make_text_table(tmp_path, seed=0)
    target = make_text_table(tmp_path, seed=1, name="target.csv")
    cfg = load_config(recipe("text_classification"), overrides=tiny_text_overrides(source, preset, extra=[
        "adapt.method=self_train", f"adapt.target={target}", "adapt.threshold=0.5", "adapt.rounds=1",
        "adapt.epochs=1", "adapt.shift=false", "export.variants=[float32]", "export.deliver=float32"]))
    result = run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
    record = json.load(open(os.path.join(result.run_dir, "adaptation.json")))
    assert set(record) == RECORD_KEYS and record["shift"] is None and record["method"] == "self_train"
    assert set(record["adapted"]) == {"accuracy", "macro_f1", "ece"}
    notes = json.load(open(os.path.join(result.run_dir, "stages", "finetune.json")))["outputs"]["adapt"]["notes"]
    assert any("self-training" in n or "stopped" in n for n in notes), notes


def test_a_target_with_other_classes_is_refused(image_folder, tmp_path):
    from tfxfer.recipes import run_pipeline

    target = make_image_folder(tmp_path / "other", classes=("circle", "square"), per_class=6, broken=False)
    cfg = load_config(recipe("quick"), overrides=tiny_overrides(image_folder, extra=[
        "train.epochs=0", "adapt.method=adabn", f"adapt.target={target}"]))
    with pytest.raises(ConfigError, match="`adapt.target`: its classes"):
        run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)


def _ctx(task="image_classification"):
    from types import SimpleNamespace

    return SimpleNamespace(cfg=SimpleNamespace(task=task, seed=0, train=SimpleNamespace(batch_size=16),
                                               adapt=SimpleNamespace(epochs=3)))


def _softmax_model(dim=4):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((dim,))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(inputs))


def test_label_shift_step_uses_validation_never_the_held_out_split():
    import keras

    from tfxfer.recipes.adapt_stages import _Domain, _label_shift

    rng = np.random.default_rng(0)
    y_source, y_target = np.arange(400) % 2, (rng.random(400) < 0.15).astype(int)  # 50/50 -> 15 % positives
    x_source = (rng.normal(size=(400, 4)) + 2.0 * y_source[:, None]).astype("float32")
    x_target = (rng.normal(size=(400, 4)) + 2.0 * y_target[:, None]).astype("float32")
    model = _softmax_model()
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy")
    model.fit(x_source, y_source, epochs=20, verbose=0)
    before = model.predict(x_target, verbose=0)[:, 1].mean()
    # held-out inputs are None: the step fails if it reads them
    source = _Domain(x_source, y_source, None, None, ["a", "b"], x_source[:200], y_source[:200])
    target = _Domain(x_target, None, None, None, ["a", "b"])
    note, applied = _label_shift(_ctx(), model, source, target)
    after = model.predict(x_target, verbose=0)[:, 1].mean()
    assert applied and "fitted on 200 source validation examples" in note and "target priors estimated by EM" in note
    assert "b 0.1" in note  # EM finds the target's ~15 % positives (the source had 50 %)
    assert abs(after - 0.15) < abs(before - 0.15) / 2  # the corrected model predicts about that share
    without_val = _Domain(x_source, y_source, None, None, ["a", "b"])
    assert "no source validation split" in _label_shift(_ctx(), _softmax_model(), without_val, target)[0]


def test_coral_input_step_retrains_the_head_on_recoloured_source_features():
    import keras

    from tfxfer.adapt import fit_coral_map
    from tfxfer.recipes.adapt_stages import _coral_input, _Domain
    from tfxfer.train.head import extract_features

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(keras.layers.Conv2D(4, 3, name="conv")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="predictions")(pooled))
    rng = np.random.default_rng(0)
    x_source = rng.uniform(0, 1, (40, 6, 6, 3)).astype("float32")
    x_target = (x_source * 3.0 + 1.0).astype("float32")  # another scale and offset: a covariate shift
    y_source = np.arange(40) % 2
    conv_before, head_before = model.get_layer("conv").get_weights(), model.get_layer("predictions").get_weights()
    source = _Domain(x_source, y_source, None, None, ["a", "b"])
    note = _coral_input(_ctx(), model, source, _Domain(x_target, None, None, None, ["a", "b"]), 0.01)
    assert note.startswith("coral_input: head retrained 3 epoch(s) at lr 0.01 on 40 source features")
    for a, b in zip(conv_before, model.get_layer("conv").get_weights()):
        np.testing.assert_array_equal(a, b)  # the backbone is untouched: only the head is trained
    assert not np.allclose(head_before[0], model.get_layer("predictions").get_weights()[0])
    assert [type(layer).__name__ for layer in model.layers][-1] == "Dense"  # nothing of CORAL stays in the model
    source_features = extract_features(model, x_source)[0]
    assert fit_coral_map(source_features, extract_features(model, x_target)[0]).dim == 4


def test_new_adapt_methods_are_accepted_and_label_shift_is_open_to_text():
    cfg = load_config(text="task: text_classification\ndata: {source: sentiment_movies}\n"
                           "adapt: {method: label_shift, target: sentiment_tweets}")
    assert cfg.adapt.method == "label_shift"
    assert load_config(text="data: {source: animal_mnist}\nadapt: {method: coral_input, target: /tmp/x}"
                       ).adapt.method == "coral_input"


def test_the_cap_on_examples_keeps_every_class_in_proportion():
    from tfxfer.recipes.adapt_stages import _limit

    y = np.array([0] * 90 + [1] * 8 + [2] * 2)  # a random 10 of these often drops class 2 (or 1)
    x = np.arange(100)
    for seed in range(20):
        xs, ys = _limit(x, y, 10, seed)
        assert len(xs) == 10 and set(ys.tolist()) == {0, 1, 2} and np.array_equal(y[xs], ys)
        assert np.all(np.diff(xs) > 0)  # a subset in the original order, no repeats
    counts = np.bincount(_limit(x, y, 50, 0)[1])
    assert counts.sum() == 50 and counts[0] > counts[1] > counts[2] >= 1
    one_hot = np.eye(3)[y]
    assert set(_limit(x, one_hot, 10, 0)[1].argmax(axis=1).tolist()) == {0, 1, 2}
    assert _limit(x, None, 10, 0)[1] is None and len(_limit(x, None, 10, 0)[0]) == 10
    assert len(set(_limit(x, y, 2, 0)[1].tolist())) == 2  # fewer places than classes: one each of two


def test_label_shift_names_a_class_missing_from_the_source_training_split():
    from types import SimpleNamespace

    import keras

    from tfxfer.recipes.adapt_stages import _Domain, _label_shift

    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    ctx = SimpleNamespace(cfg=SimpleNamespace(task="image_classification", seed=0, train=SimpleNamespace(batch_size=8)))
    names = ["a", "b", "c"]
    target = _Domain(x + 1, None, None, None, names)
    absent = _Domain(x, np.arange(40) % 2, None, None, names)  # "c" is not in the source data at all
    with pytest.raises(ConfigError, match="class 'c' has no example in the source training split"):
        _label_shift(ctx, model, absent, target)
    capped = _Domain(x[:2], np.array([0, 1]), None, None, names, train_total=40)  # adapt.max_examples: 2
    with pytest.raises(ConfigError, match=r"class 'c' has no example among the 2 source training examples kept by "
                                          r"`adapt.max_examples` \(of 40\); raise it to at least 3"):
        _label_shift(ctx, model, capped, target)


def test_the_record_says_when_the_method_stopped(tmp_path, monkeypatch):
    """A collapse (or a method that changed nothing) was only in the stage's notes; adaptation.json,
    which the report renders, had none."""
    from types import SimpleNamespace

    import keras

    import tfxfer.recipes.adapt_stages as stages

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2)).astype("float32")
    y = (x[:, 0] > 0).astype(np.int64)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.layers[-1].set_weights([np.zeros((2, 2), "float32"), np.array([5.0, -5.0], "float32")])  # all class 0
    source, target = stages._Domain(x, y, x, y, ["a", "b"]), stages._Domain(x + 1, y, x + 1, y, ["a", "b"])
    monkeypatch.setattr(stages, "load_target", lambda ctx, image_size=None: target)
    monkeypatch.setattr(stages, "source_domain", lambda ctx, data: source)
    monkeypatch.setattr(stages, "_oracle", lambda *args: None)
    quiet = lambda *args, **kwargs: None  # noqa: E731
    cfg = SimpleNamespace(task="image_classification", seed=0, data=SimpleNamespace(source="src"),
                          adapt=SimpleNamespace(method="self_train", target="tgt", shift=False, max_examples=None,
                                                learning_rate=1e-3, epochs=1, weight=1.0, threshold=0.5, rounds=2,
                                                per_class_fraction=None),
                          train=SimpleNamespace(batch_size=8, base_lr=1e-3, unfreeze_lr_factor=1.0, head_epochs=1))
    ctx = SimpleNamespace(cfg=cfg, run_dir=str(tmp_path),
                          console=SimpleNamespace(info=quiet, detail=quiet, keras_verbose=0))
    out = stages.run_adapt(ctx, model, data=None)
    record = json.load(open(tmp_path / "adaptation.json"))
    assert set(record) == RECORD_KEYS and record["stopped"] is True and out["stopped"] is True
    assert record["notes"] == out["notes"] and "pseudo-labels collapsed in round 0" in record["notes"][0]
