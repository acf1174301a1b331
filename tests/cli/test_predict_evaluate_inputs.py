"""`tfxfer predict` / `tfxfer evaluate` on awkward inputs: ``evaluate --limit`` draws a seeded
stratified sample of every class (and says so), not the first class of a folder."""

import csv
import json

import numpy as np
import pytest

from tfxfer import cli


def _hand_model(run, *, names=("bright", "dark")):
    """Mean brightness -> two classes (bright if pixel > 106), saved as a run saves it."""
    import keras

    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="head",
                                 kernel_initializer=keras.initializers.Constant([[8.0, -8.0]] * 3),
                                 bias_initializer=keras.initializers.Constant([-10.0, 10.0]))(x)
    (run / "model").mkdir(parents=True)
    keras.Model(inputs, outputs).save(run / "model" / "model.keras")
    (run / "model" / "labels.json").write_text(json.dumps({"class_names": list(names)}))
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _hand_model(tmp_path_factory.mktemp("run") / "good")


def _save_png(path, value):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((20, 20, 3), value, np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path):
    for i in range(6):
        _save_png(tmp_path / "data" / "bright" / f"{i}.png", 230 - i)
        _save_png(tmp_path / "data" / "dark" / f"{i}.png", 20 + i)
    return tmp_path / "data"


def _json(capsys):
    return json.loads(capsys.readouterr().out)


# --- evaluate --limit: a seeded stratified sample ------------------------------------------------------

def test_evaluate_limit_samples_every_class_and_says_so(run, folder, capsys):
    assert cli.main(["evaluate", str(run), str(folder), "--limit", "4", "--json", "-q"]) == 0
    out = _json(capsys)
    assert out["sample"] == {"size": 4, "of": 12, "seed": 0}
    support = {c["name"]: c["support"] for c in out["metrics"]["per_class"]}
    assert support == {"bright": 2, "dark": 2} and out["metrics"]["num_examples"] == 4
    assert cli.main(["evaluate", str(run), str(folder), "--limit", "4", "-q"]) == 0
    assert "(4 images, a stratified sample of 12 (--limit, seed 0))" in capsys.readouterr().out
    assert cli.main(["evaluate", str(run), str(folder), "--limit", "12", "--json", "-q"]) == 0
    assert "sample" not in _json(capsys)  # all of it: no sample


def test_sample_indices_is_stratified_seeded_and_bounded():
    from tfxfer.recipes.inference import sample_indices

    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    a = sample_indices(labels, 17, seed=0)
    assert a.tolist() == sample_indices(labels, 17, seed=0).tolist() and a.tolist() == sorted(set(a.tolist()))
    assert np.bincount(labels[a]).tolist() == [9, 6, 2]  # 1 each, then the other 14 in proportion (largest remainders)
    assert len(sample_indices(labels, 2, seed=0)) == 2 and len(sample_indices(labels, 85, seed=0)) == 85
    for limit in range(1, 85):
        kept = sample_indices(labels, limit, seed=limit)
        assert len(kept) == len(set(kept.tolist())) == limit
        assert limit < 3 or set(labels[kept].tolist()) == {0, 1, 2}


def test_a_sampled_table_keeps_its_groups_aligned(tmp_path):
    """``--groups`` with ``--limit``: the group of each sampled image, not of the first rows."""
    from tfxfer.recipes.audit_data import image_groups
    from tfxfer.recipes.inference import evaluation_data

    rows = []
    for i in range(12):
        value = 200 + i if i % 2 else 10 + i
        _save_png(tmp_path / f"{i}.png", value)
        rows.append([f"{i}.png", "bright" if i % 2 else "dark", f"v{value}"])
    with open(tmp_path / "t.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "site"], *rows])
    sample = {}
    x, y, _ = evaluation_data(str(tmp_path / "t.csv"), image_size=(8, 8), channels=3, class_names=["bright", "dark"],
                              limit=5, sample_seed=3, sample=sample)
    groups = image_groups(str(tmp_path / "t.csv"), "site", split="test", limit=5, count=len(y), channels=3,
                          image_size=(8, 8), indices=sample["indices"])
    assert len(y) == 5 and sample["of"] == 12
    assert [f"v{int(round(img.mean()))}" for img in x] == list(groups)
