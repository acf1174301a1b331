"""`tfxfer predict` / `evaluate` and the model loaders on hostile inputs: non-UTF-8 file names,
damaged labels / export tables / saved language models, unreadable images, TSV tables, repeated
table rows and flags that cannot apply. Each case is a typed error naming what was wrong, or a
skip that is counted and reported, never a traceback or a silent drop."""

import inspect
import json
import math
import os
import shutil

import numpy as np
import pytest

from tfxfer import cli
from tfxfer.errors import DataError, ModelError

SIZE = 16
NAMES = ["bright", "dark"]


def _png(path, value):
    from PIL import Image

    Image.fromarray(np.full((SIZE, SIZE, 3), value, np.uint8)).save(path)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A run directory whose model tells bright from dark 16x16 images, a folder and a table of such
    images (``grp`` column alternating A / B)."""
    import keras

    root = tmp_path_factory.mktemp("hostile")
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    outputs = keras.layers.Dense(2, activation="softmax",
                                 kernel_initializer=keras.initializers.Constant([[8.0, -8.0]] * 3),
                                 bias_initializer=keras.initializers.Constant([-10.0, 10.0]))(x)
    run = root / "run"
    (run / "model").mkdir(parents=True)
    keras.Model(inputs, outputs).save(run / "model" / "model.keras")
    (run / "model" / "labels.json").write_text(json.dumps({"class_names": NAMES}))
    data = root / "data"
    rows = ["path,label,grp"]
    for c, base in (("bright", 230), ("dark", 20)):
        (data / c).mkdir(parents=True)
        for i in range(3):
            _png(data / c / f"{i}.png", base + i)
            rows.append(f"{c}/{i}.png,{c},{'AB'[i % 2]}")
    (data / "table.csv").write_text("\n".join(rows) + "\n")
    return run, data


def _copy_run(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world[0], run)
    return run


def _evaluate_json(capsys, *argv):
    code = cli.main(["evaluate", *map(str, argv), "--json", "-q", "--allow-chance"])
    return code, json.loads(capsys.readouterr().out)


# 1. non-UTF-8 file names ------------------------------------------------------------------------

def test_predict_skips_and_reports_undecodable_names_in_folders(world, tmp_path, capsys):
    run, data = world
    folder = os.fsencode(tmp_path / "photos")
    os.makedirs(folder)
    shutil.copy(os.fsencode(data / "bright" / "0.png"), os.path.join(folder, b"caf\xe9.png"))
    shutil.copy(os.fsencode(data / "bright" / "1.png"), os.path.join(folder, b"ok.png"))
    shown = os.fsdecode(folder)
    assert cli.main(["predict", str(run), shown, "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [os.path.basename(r["image"]) for r in doc["results"]] == ["ok.png"]
    assert [s["reason"] for s in doc["skipped"]] == ["undecodable_name"]
    assert doc["skipped"][0]["path"].endswith("caf\\xe9.png")
    assert cli.main(["predict", str(run), shown]) == 0
    captured = capsys.readouterr()
    assert "ok.png: bright" in captured.out and "skipped 1 file(s) (1 undecodable_name)" in captured.err


def test_predict_refuses_an_explicit_undecodable_name(world, tmp_path, capsys):
    run, data = world
    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    shutil.copy(os.fsencode(data / "bright" / "0.png"), path)
    assert cli.main(["predict", str(run), os.fsdecode(path)]) == 2
    err = capsys.readouterr().err
    assert "`inputs` must be named in UTF-8" in err and "Traceback" not in err
    from tfxfer.recipes.image_inputs import read_images

    with pytest.raises(DataError, match="not valid UTF-8"):
        read_images([os.fsdecode(path)], image_size=(SIZE, SIZE), channels=3)


# 2-3. labels.json beside the model --------------------------------------------------------------

@pytest.mark.parametrize("content, problem", [
    (b'{"class_names": \n', "not valid JSON"),
    (b'{"class_names": ["\xff", "b"]}', "not UTF-8"),
    (b'["bright", "dark"]', "a JSON list, not a dict"),
    (b'{"class_names": "bright"}', "must be a list of texts"),
])
def test_damaged_labels_file_is_a_data_error_naming_it(world, tmp_path, content, problem):
    from tfxfer.recipes.inference import open_model

    run = _copy_run(world, tmp_path)
    (run / "model" / "labels.json").write_bytes(content)
    with pytest.raises(DataError, match=f"labels file {run / 'model' / 'labels.json'} is damaged: .*{problem}"):
        open_model(run)


@pytest.mark.parametrize("names", [["only"], ["a", "b", "c"]])
def test_class_names_must_match_the_model_outputs(world, tmp_path, names, capsys):
    run = _copy_run(world, tmp_path)
    labels = run / "model" / "labels.json"
    labels.write_text(json.dumps({"class_names": names}))
    assert cli.main(["predict", str(run), str(world[1] / "bright" / "0.png")]) == 1
    err = capsys.readouterr().err
    assert f"labels file {labels} names {len(names)} class(es) but the model" in err and "has 2 outputs" in err


# 4-5. unreadable images and TSV tables in evaluate ----------------------------------------------

def test_evaluate_reports_the_files_it_skipped(world, tmp_path, capsys):
    run, data = world
    folder = tmp_path / "data"
    shutil.copytree(data / "bright", folder / "bright")
    shutil.copytree(data / "dark", folder / "dark")
    (folder / "bright" / "zero.png").write_bytes(b"")
    (folder / "dark" / "text.png").write_text("not an image")
    code, doc = _evaluate_json(capsys, run, folder)
    assert code == 0 and doc["metrics"]["num_examples"] == 6
    assert doc["metrics"]["skipped"] == 2
    assert doc["metrics"]["skip_reasons"] == {"empty_file": 1, "not_an_image": 1}
    assert cli.main(["evaluate", str(run), str(folder), "-q", "--allow-chance"]) == 0
    assert "(6 images, 2 skipped: 1 empty_file, 1 not_an_image)" in capsys.readouterr().out


def test_evaluate_reads_an_image_tsv_table(world, tmp_path, capsys):
    run, data = world
    table = data / "table.tsv"
    table.write_text((data / "table.csv").read_text().replace(",", "\t"))
    code, doc = _evaluate_json(capsys, run, table)
    assert code == 0 and doc["metrics"]["num_examples"] == 6 and doc["metrics"]["accuracy"] == 1.0
    code, doc = _evaluate_json(capsys, run, table, "--groups", "grp", "--bootstrap", "10")
    assert code == 0 and doc["groups"]["groups"] == ["A", "B"] and doc["groups"]["column"] == "grp"


# 6. a damaged export table in a run directory ---------------------------------------------------

@pytest.mark.parametrize("content, problem", [("[]", "a JSON list, not a dict"), ('{"deliver": "ex', "not valid JSON"),
                                              ('{"deliver": 3}', "`deliver` must be a file name")])
def test_damaged_export_table_is_an_error_naming_it(world, tmp_path, content, problem, capsys):
    from tfxfer.recipes.inference import delivered_file

    run = _copy_run(world, tmp_path)
    (run / "export").mkdir()
    table = run / "export" / "table.json"
    table.write_text(content)
    with pytest.raises(DataError, match=f"export table {table} .*{problem}"):
        delivered_file(run)
    assert cli.main(["evaluate", str(run), str(world[1]), "-q"]) == 1
    assert f"export table {table}" in capsys.readouterr().err


# 7. a table listing a file twice ----------------------------------------------------------------

def test_repeated_row_keeps_its_first_group_as_the_loader_keeps_its_first_row(world, tmp_path):
    from tfxfer.recipes.audit_data import image_table_groups
    from tfxfer.recipes.inference import evaluation_data

    data = world[1]
    table = data / "dup.csv"
    table.write_text((data / "table.csv").read_text() + "bright/0.png,bright,B\n")
    skipped = []
    _, labels, _ = evaluation_data(str(table), image_size=(SIZE, SIZE), channels=3, skipped=skipped)
    assert len(labels) == 6 and [s["reason"] for s in skipped] == ["bad_row"]
    groups = image_table_groups(str(table), "grp", files=[str(data / "bright" / "0.png")], count=1)
    assert list(groups) == ["A"]  # line 2's group, not the repeat's "B"


# 8-9. flags checked before any work -------------------------------------------------------------

def test_too_few_permutations_fail_up_front(world, capsys, monkeypatch):
    import tfxfer.recipes.inference as inference
    from tfxfer.adapt.shift import detect_shift
    from tfxfer.cli.predict import MIN_PERMUTATIONS

    defaults = inspect.signature(detect_shift).parameters
    assert MIN_PERMUTATIONS == math.ceil(2 / defaults["alpha"].default) and defaults["method"].default == "both"

    def no_model(*args, **kwargs):
        raise AssertionError("the model must not be opened")

    monkeypatch.setattr(inference, "open_model", no_model)
    run, data = world
    assert cli.main(["evaluate", str(run), str(data), "--target", str(data / "bright"), "--permutations", "20"]) == 2
    assert "`--permutations` must be an int in [200, 100000]. Received: --permutations=20" in capsys.readouterr().err


@pytest.mark.parametrize("split, problem", [("bogus", 'must be "train", "val" or "test"'),
                                            ("val", "applies to a packaged data set only")])
def test_split_that_cannot_apply_is_refused(world, split, problem, capsys, monkeypatch):
    import tfxfer.recipes.inference as inference

    monkeypatch.setattr(inference, "open_model", lambda *a, **k: pytest.fail("the model must not be opened"))
    run, data = world
    assert cli.main(["evaluate", str(run), str(data), "--split", split]) == 2
    err = capsys.readouterr().err
    assert f"`--split` {problem}" in err and f"--split={split!r}" in err


# 10. a truncated image --------------------------------------------------------------------------

def test_truncated_image_gives_a_clean_reason(world, tmp_path):
    from tfxfer.recipes.image_inputs import read_images

    path = tmp_path / "cut.png"
    blob = (world[1] / "bright" / "0.png").read_bytes()
    path.write_bytes(blob[:len(blob) - 20])
    with pytest.raises(DataError) as info:
        read_images([str(path)], image_size=(SIZE, SIZE), channels=3)
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable image (") and "function_node" not in message
    assert "[Op:" not in message and "PNG" in message


# 11. damaged language model folders -------------------------------------------------------------

def _tiny_meta():
    from tests.causal_lm.helpers import tiny_tokens

    config = {"vocabulary_size": len(tiny_tokens()), "num_layers": 1, "num_query_heads": 2,
              "num_key_value_heads": 1, "hidden_dim": 8, "intermediate_dim": 16, "context_length": 16}
    tokenizer = {"tokens": tiny_tokens(), "merges": [], "pre": "gpt-2"}
    return {"format": "tfxfer-causal-lm", "version": 1, "name": "tiny", "config": config, "tokenizer": tokenizer,
            "lora_rank": None}


@pytest.mark.parametrize("case, problem", [
    ("invalid_json", "not valid JSON"),
    ("no_config", "`config` must be an object"),
    ("bad_config_key", "unknown keys \\['layers'\\]"),
    ("truncated_weights", "causal_lm.weights.h5 cannot be read"),
])
def test_damaged_saved_language_model_is_a_model_error_naming_the_folder(tmp_path, case, problem):
    from tfxfer.causal_lm import load_causal_lm

    folder = tmp_path / "saved"
    folder.mkdir()
    meta = _tiny_meta()
    if case == "no_config":
        del meta["config"]
    if case == "bad_config_key":
        meta["config"]["layers"] = meta["config"].pop("num_layers")
    text = json.dumps(meta)
    (folder / "causal_lm.json").write_text(text[:40] if case == "invalid_json" else text)
    (folder / "causal_lm.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(ModelError, match=f"^{folder}: .*{problem}"):
        load_causal_lm(folder)


def test_damaged_conversion_cache_is_converted_again(tmp_path):
    from tests.causal_lm.helpers import write_tiny_gguf
    from tfxfer.causal_lm import load_causal_lm

    path = tmp_path / "tiny.gguf"
    write_tiny_gguf(path, num_layers=1, hidden=8, heads=2, kv_heads=1, ffn=16)
    first = load_causal_lm(str(path), cache_dir=tmp_path / "cache")
    cache = tmp_path / "cache" / "causal_lm"
    (weights,) = [f for f in os.listdir(cache) if f.endswith(".h5")]
    (cache / weights).write_bytes((cache / weights).read_bytes()[:500])
    again = load_causal_lm(str(path), cache_dir=tmp_path / "cache")
    ids = np.asarray([[1, 40, 71, 3]], "int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    np.testing.assert_allclose(again.backbone(inputs), first.backbone(inputs), atol=1e-6)
    assert (cache / weights).stat().st_size > 500


def test_hugging_face_config_that_is_not_json_is_a_model_error(tmp_path):
    from tfxfer.causal_lm import load_causal_lm

    (tmp_path / "config.json").write_text('{"model_type": "llama",')
    with pytest.raises(ModelError, match=f"{tmp_path / 'config.json'} is damaged: not valid JSON"):
        load_causal_lm(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelError, match="config.json' has no vocab_size, num_hidden_layers"):
        load_causal_lm(tmp_path)
