"""L2-SP from recipes: `fine_tune(..., l2sp=)` and the recipe key `train.l2sp`."""

import keras
import numpy as np
import pytest

from tests.factories import make_image_folder, tiny_model, tiny_spec
from tfxfer.backbones import get_backbone
from tfxfer.errors import ArgumentError, ArgumentTypeError, ConfigError
from tfxfer.recipes import load_config
from tfxfer.recipes.config import config_to_yaml
from tfxfer.train.fine_tune import fine_tune
from tfxfer.transfer import L2SP, attach_l2sp, detach_l2sp


def _tiny_model():
    return tiny_model(3, backbone=tiny_spec(name="tiny_ft", width=8), size=16, seed=0)


def _distance(model, start):
    return sum(float(np.sum((w - s) ** 2)) for w, s in zip(get_backbone(model).get_weights(), start))


def test_fine_tune_l2sp_stays_closer_to_the_starting_backbone():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (48, 16, 16, 3)).astype("float32")
    y = np.arange(48) % 3
    distances, results = {}, {}
    for alpha in (0.0, 0.5):
        model = _tiny_model()
        start = [w.copy() for w in get_backbone(model).get_weights()]
        results[alpha] = fine_tune(model, (x, y), head_epochs=0, epochs=3, stages={0: 2}, base_lr=0.05,
                                   unfreeze_lr_factor=1.0, warmup_epochs=0, optimizer="adam", batch_size=16,
                                   verbose=0, seed=0, l2sp=alpha)
        distances[alpha] = _distance(model, start)
        # the regularizers are gone afterwards: nothing anchored is saved with the model
        assert all(not isinstance(v.regularizer, L2SP) for v in model.weights if hasattr(v, "regularizer"))
        assert not model.losses
    assert distances[0.0] > 0
    assert distances[0.5] < 0.5 * distances[0.0]
    assert results[0.0].l2sp is None and all("l2sp" not in s for s in results[0.0].stages)
    info = results[0.5].l2sp
    assert info["alpha"] == 0.5 and info["anchored"] == 2 and 0 < info["mean_drift"] <= info["max_drift"]
    assert all(s["l2sp"] == 0.5 for s in results[0.5].stages)


def test_detach_leaves_other_regularizers():
    model = _tiny_model()
    head = model.get_layer("head")
    head.kernel_regularizer = keras.regularizers.L2(0.1)
    head.kernel.regularizer = head.kernel_regularizer
    assert attach_l2sp(model, alpha=0.1) == ["conv1/kernel", "conv2/kernel"]
    assert sorted(detach_l2sp(model)) == ["conv1/kernel", "conv2/kernel"]
    assert isinstance(head.kernel.regularizer, keras.regularizers.L2) and len(model.losses) == 1
    with pytest.raises(ArgumentTypeError, match="keras.Model"):
        detach_l2sp("model")


def test_fine_tune_rejects_bad_l2sp():
    model = _tiny_model()
    x, y = np.zeros((8, 16, 16, 3), "float32"), np.arange(8) % 2
    for bad in (-0.1, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(ArgumentError, match="l2sp"):
            fine_tune(model, (x, y), head_epochs=0, epochs=1, l2sp=bad, verbose=0)


def test_recipe_key_round_trip_and_errors():
    text = "data: {source: animal_mnist}\ntrain: {l2sp: 0.01}"
    cfg = load_config(text=text)
    assert cfg.train.l2sp == 0.01
    assert load_config(text=config_to_yaml(cfg)).train.l2sp == 0.01
    assert load_config(text="data: {source: animal_mnist}").train.l2sp == 0.0
    assert load_config(text=text, overrides=["train.l2sp=0"]).train.l2sp == 0.0
    with pytest.raises(ConfigError, match=r"`train.l2sp` must be a finite number >= 0\. Received: -0.5"):
        load_config(text=text, overrides=["train.l2sp=-0.5"])
    with pytest.raises(ConfigError, match="`train.l2sp` must be a number"):
        load_config(text=text, overrides=["train.l2sp=lots"])
    with pytest.raises(ConfigError, match="image recipes only"):
        load_config(text="task: text_classification\ndata: {source: x.csv}\ntrain: {l2sp: 0.1}")
    shipped = load_config("pipelines/image_classification.yaml")
    assert shipped.train.l2sp == 0.0


@pytest.mark.slow
def test_recipe_run_records_l2sp(tmp_path):
    import json

    from tests.recipes.helpers import recipe, tiny_overrides
    from tfxfer.recipes import run_pipeline

    folder = make_image_folder(tmp_path / "images", per_class=8)
    cfg = load_config(recipe("quick"), overrides=tiny_overrides(folder, extra=[
        "train.l2sp=0.01", "data.color_mode=rgb", "quantize.enabled=false", "export.variants=[float32]",
        "export.deliver=float32", "export.benchmark=false"]))
    run_pipeline(cfg, out_dir=str(tmp_path / "run"), verbosity=0)
    with open(tmp_path / "run" / "model" / "history.json") as f:
        history = json.load(f)
    assert history["l2sp"]["alpha"] == 0.01 and history["l2sp"]["anchored"] > 10
    assert [s.get("l2sp") for s in history["stages"]] == [None, 0.01]
    reloaded = keras.saving.load_model(tmp_path / "run" / "model" / "model.keras", compile=False)
    assert not any(isinstance(getattr(v, "regularizer", None), L2SP) for v in reloaded.weights)


def test_anchors_are_removed_when_training_stops_with_an_error():
    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise RuntimeError("interrupted")

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32"), np.arange(16) % 3
    model = _tiny_model()
    with pytest.raises(RuntimeError, match="interrupted"):
        fine_tune(model, (x, y), head_epochs=0, epochs=1, stages={0: 2}, warmup_epochs=0, batch_size=8,
                  verbose=0, l2sp=0.5, callbacks=[Boom()])
    assert not model.losses
    assert all(not isinstance(getattr(v, "regularizer", None), L2SP) for v in model.weights)
