"""`tfxfer predict` / `tfxfer evaluate` on awkward inputs: ``evaluate --limit`` draws a seeded
stratified sample of every class (and says so), not the first class of a folder; data holding only some of
the model's classes, even a single one, is evaluated on those."""

import csv
import json

import numpy as np
import pytest

from tests.helpers import brightness_folder, brightness_run, save_png
from tfxfer import cli


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return brightness_run(tmp_path_factory.mktemp("run") / "good")


@pytest.fixture
def folder(tmp_path):
    return brightness_folder(tmp_path / "data")


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
        save_png(tmp_path / f"{i}.png", value)
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


# --- predict: an unreadable file in a folder is a counted skip ------------------------------------------

@pytest.fixture
def mixed(tmp_path):
    """Two good images, an empty .png and a text file named .jpg in one folder."""
    root = tmp_path / "mixed"
    save_png(root / "a.png", 20)
    save_png(root / "b.png", 230)
    (root / "c_empty.png").write_bytes(b"")
    (root / "d_text.jpg").write_bytes(b"hello, not an image")
    return root


def test_predict_skips_unreadable_files_found_in_a_folder(run, mixed, capsys):
    assert cli.main(["predict", str(run), str(mixed), "-q"]) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [str(mixed / "a.png"), str(mixed / "b.png")]
    assert lines[0].split(": ")[1].startswith("dark") and lines[1].split(": ")[1].startswith("bright")
    assert "skipped 2 file(s) (1 empty_file, 1 not_an_image)" in err and "c_empty.png (empty_file)" in err
    assert cli.main(["predict", str(run), str(mixed), "--json", "-q"]) == 0
    doc = _json(capsys)
    assert [r["image"] for r in doc["results"]] == [str(mixed / "a.png"), str(mixed / "b.png")]
    assert [(s["path"].rsplit("/", 1)[-1], s["reason"]) for s in doc["skipped"]] == [
        ("c_empty.png", "empty_file"), ("d_text.jpg", "not_an_image")]


def test_predict_refuses_an_unreadable_file_named_explicitly(run, mixed, capsys):
    assert cli.main(["predict", str(run), str(mixed / "a.png"), str(mixed / "c_empty.png"), "-q"]) == 1
    assert "c_empty.png: not a readable image (empty_file: 0 bytes)" in capsys.readouterr().err
    (mixed / "a.png").unlink()
    (mixed / "b.png").unlink()
    assert cli.main(["predict", str(run), str(mixed), "--json", "-q"]) == 1
    doc = _json(capsys)
    assert doc["error"]["type"] == "DataError" and "No readable image" in doc["error"]["message"]
    assert "2 skipped: 1 empty_file, 1 not_an_image" in doc["error"]["message"]


# --- predict: a batch at a time -------------------------------------------------------------------------

def test_predict_decodes_predicts_and_prints_a_batch_at_a_time(run, tmp_path, monkeypatch, capsys):
    from tfxfer.cli import predict as predict_cli
    from tfxfer.recipes import image_inputs
    from tfxfer.recipes.inference import LoadedModel

    for i in range(5):
        save_png(tmp_path / "five" / f"{i}.png", 20 + 50 * i)
    events = []
    read_one, model_predict = image_inputs._read_one, LoadedModel.predict

    def reading(path, **kwargs):
        events.append(("read", path))
        return read_one(path, **kwargs)

    def predicting(self, images, **kwargs):
        events.append(("predict", len(images)))
        return model_predict(self, images, **kwargs)

    monkeypatch.setattr(predict_cli, "PREDICT_BATCH", 2)
    monkeypatch.setattr(image_inputs, "_read_one", reading)
    monkeypatch.setattr(LoadedModel, "predict", predicting)
    assert cli.main(["predict", str(run), str(tmp_path / "five"), "-q"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [str(tmp_path / "five" / f"{i}.png") for i in range(5)]
    assert [n for what, n in events if what == "predict"] == [2, 2, 1]
    assert [what for what, _ in events] == ["read", "read", "predict"] * 2 + ["read", "predict"]  # interleaved
    events.clear()
    assert cli.main(["predict", str(run), str(tmp_path / "five"), "--json", "-q"]) == 0
    assert len(_json(capsys)["results"]) == 5 and [n for what, n in events if what == "predict"] == [2, 2, 1]


def test_evaluate_predicts_a_batch_at_a_time(run, folder, monkeypatch, capsys):
    """Only predictions and labels outlive a batch: the model never sees more than PREDICT_BATCH images."""
    from tfxfer.cli import predict as predict_cli
    from tfxfer.recipes.inference import LoadedModel

    sizes, model_predict = [], LoadedModel.predict

    def predicting(self, images, **kwargs):
        sizes.append(len(images))
        return model_predict(self, images, **kwargs)

    monkeypatch.setattr(predict_cli, "PREDICT_BATCH", 5)
    monkeypatch.setattr(LoadedModel, "predict", predicting)
    assert cli.main(["evaluate", str(run), str(folder), "--json", "-q"]) == 0
    doc = _json(capsys)
    assert sizes == [5, 5, 2] and doc["metrics"]["num_examples"] == 12 and doc["metrics"]["accuracy"] == 1.0
    sizes.clear()
    assert cli.main(["evaluate", str(run), str(folder), "--limit", "7", "--json", "-q"]) == 0  # a sample
    doc = _json(capsys)
    assert sizes == [5, 2] and doc["metrics"]["num_examples"] == 7 and doc["sample"]["of"] == 12
    sizes.clear()
    assert cli.main(["evaluate", str(run), str(folder), "--tta", "--json", "-q"]) == 0  # warm-up, plain, flips
    doc = _json(capsys)
    assert max(sizes) <= 5 and doc["tta"]["accuracy"] == 1.0 and doc["metrics"]["num_examples"] == 12


# --- evaluate: data holding only some of the model's classes ---------------------------------------------

def test_evaluate_maps_a_subset_of_the_classes_by_name(tmp_path, capsys):
    """A 3-class model on data with 2 of its classes: labels mapped by name; an unknown class is refused."""
    import keras

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(keras.layers.GlobalAveragePooling2D()(inputs))
    # brightness -> "bright" above ~0.5, "dark" below; "fox" never wins
    outputs = keras.layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers.Constant(
        [[-8.0, 8.0, 0.0]] * 3), bias_initializer=keras.initializers.Constant([10.0, -10.0, -20.0]))(x)
    keras.Model(inputs, outputs).save(tmp_path / "m.keras")
    (tmp_path / "labels.json").write_text(json.dumps({"class_names": ["dark", "bright", "fox"]}))
    for i in range(3):  # folders in the other order: bright is class 0 of the data, 1 of the model
        save_png(tmp_path / "data" / "bright" / f"{i}.png", 230 - i)
        save_png(tmp_path / "data" / "dark" / f"{i}.png", 20 + i)
    assert cli.main(["evaluate", str(tmp_path / "m.keras"), str(tmp_path / "data"), "--json", "-q"]) == 0
    metrics = _json(capsys)["metrics"]
    assert metrics["accuracy"] == 1.0 and metrics["num_examples"] == 6
    assert {c["name"]: c["support"] for c in metrics["per_class"]} == {"dark": 3, "bright": 3, "fox": 0}
    save_png(tmp_path / "data" / "wolf" / "0.png", 120)
    assert cli.main(["evaluate", str(tmp_path / "m.keras"), str(tmp_path / "data"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "class(es) ['wolf'] are not among the model's classes ['dark', 'bright', 'fox']" in err


def test_evaluate_a_folder_or_table_holding_a_single_class(run, tmp_path, capsys):
    """Only ``dark/`` (to measure its recall): evaluated, the absent class shown with no support, not refused
    as training data is (a single class); a one-class table with --groups too."""
    for i in range(3):
        save_png(tmp_path / "data" / "dark" / f"{i}.png", 20 + i)
    assert cli.main(["evaluate", str(run), str(tmp_path / "data"), "--json", "-q"]) == 0
    doc = _json(capsys)
    assert doc["metrics"]["num_examples"] == 3 and doc["metrics"]["accuracy"] == 1.0
    assert doc["metrics"]["per_class"] == [
        {"name": "bright", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
        {"name": "dark", "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}]
    assert doc["chance"]["applicable"] is False  # one class present: chance cannot be judged, not flagged
    assert cli.main(["evaluate", str(run), str(tmp_path / "data"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "bright                  0.0000  0.0000  0.0000        0" in out and "nan" not in out.lower()
    with open(tmp_path / "t.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "site"]] + [[f"data/dark/{i}.png", "dark", "ab"[i % 2]]
                                                                for i in range(3)])
    assert cli.main(["evaluate", str(run), str(tmp_path / "t.csv"), "--groups", "site", "--json", "-q"]) == 0
    doc = _json(capsys)
    assert doc["groups"]["sizes"] == {"a": 2, "b": 1} and doc["metrics"]["per_class"][1]["support"] == 3


def test_evaluate_a_text_table_holding_a_single_label(tmp_path, capsys):
    """A text classifier on a one-label CSV, with and without --groups: evaluated, not refused."""
    from tests.factories import tiny_text_classifier, tiny_text_encoder

    model = tiny_text_classifier(2, encoder=tiny_text_encoder(sequence_length=8, num_layers=1))
    model.save(tmp_path / "model.keras")
    (tmp_path / "labels.json").write_text(json.dumps({"class_names": ["neg", "pos"]}))
    (tmp_path / "r.csv").write_text("text,label,site\ngood film,pos,a\ngreat plot,pos,b\nfine music,pos,a\n")
    for extra in ([], ["--groups", "site"]):
        assert cli.main(["evaluate", str(tmp_path / "model.keras"), str(tmp_path / "r.csv"), *extra,
                         "--json", "-q"]) == 0
        doc = _json(capsys)
        assert doc["metrics"]["num_examples"] == 3
        assert [(c["name"], c["support"]) for c in doc["metrics"]["per_class"]] == [("neg", 0), ("pos", 3)]
    assert doc["groups"]["sizes"] == {"a": 2, "b": 1}
