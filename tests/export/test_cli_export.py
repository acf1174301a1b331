"""``tfxfer export`` writes what passed and reports what failed; ``tfxfer evaluate`` on a run directory
leads with the file the run delivered."""

import argparse
import json
import os

import numpy as np
import pytest

from tfxfer.cli import main

from .conftest import CLASS_NAMES


@pytest.fixture(scope="module")
def image_folder(color_data, tmp_path_factory):
    from PIL import Image

    _, (xt, yt) = color_data
    root = tmp_path_factory.mktemp("folder")
    for i in range(40):
        folder = root / CLASS_NAMES[int(yt[i])]
        folder.mkdir(exist_ok=True)
        Image.fromarray(xt[i].astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def saved(trained_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    path = folder / "model.keras"
    trained_model.save(path)
    (folder / "labels.json").write_text(json.dumps({"class_names": CLASS_NAMES}))
    return str(path)


def test_int8_from_a_folder_needs_calibration_data_apart_from_the_gate(saved, image_folder, capsys):
    code = main(["export", saved, str(image_folder), "--out", "unused", "--no-benchmark"])
    assert code == 2
    assert "--calibration" in capsys.readouterr().err


def test_export_calibrates_on_training_images_and_records_them(saved, image_folder, color_data, tmp_path, capsys):
    from PIL import Image

    (x, y), _ = color_data
    train = tmp_path / "train"
    for i in range(24):
        (train / CLASS_NAMES[int(y[i])]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i].astype(np.uint8)).save(train / CLASS_NAMES[int(y[i])] / f"{i}.png")
    same = main(["export", saved, str(image_folder), "--calibration", str(image_folder), "--out", str(tmp_path / "o"),
                 "--no-benchmark"])
    assert same == 2 and "is the gate's own data" in capsys.readouterr().err
    out = tmp_path / "out"
    code = main(["export", saved, str(image_folder), "--calibration", str(train), "--num-calibration", "16",
                 "--out", str(out), "--no-benchmark", "--max-accuracy-drop", "100"])
    assert code == 0, capsys.readouterr().err
    side = json.loads((out / "model_int8.json").read_text())
    assert side["calibration"] == {"source": str(train), "split": None, "images": 16, "samples": 16, "seed": 0}
    assert side["gate"]["passed"] and side["gate"]["drop_verdict"] in ("pass", "undecided")
    assert "int8" in capsys.readouterr().out


def test_failed_variants_are_removed_the_rest_is_written_and_the_exit_code_is_3(trained_model, color_data,
                                                                                 tmp_path, capsys):
    from tfxfer.cli.export import _finish
    from tfxfer.export import export_all

    _, (xt, yt) = color_data
    table = export_all(trained_model, tmp_path, variants=("float32", "float16"), eval_data=(xt[:64], yt[:64]),
                       class_names=CLASS_NAMES, benchmark=False, keep_failed=True,
                       thresholds={"float16": {"min_top1_agreement": 1.01}})  # a limit nothing meets
    args = argparse.Namespace(json=False, keep_failed=False, out=str(tmp_path), model="m.keras")
    assert _finish(args, table, files_note="sidecars") == 3
    captured = capsys.readouterr()
    assert "float32" in captured.out and "FAIL" in captured.out  # the table is printed
    assert "Gate failed for float16: removed (2 files; --keep-failed keeps them)" in captured.err
    assert os.path.exists(table.exports["float32"].path) and not os.path.exists(table.exports["float16"].path)


def test_evaluate_a_run_directory_leads_with_the_delivered_file(trained_model, color_data, saved, image_folder,
                                                                tmp_path, capsys):
    import shutil

    from tfxfer.export import export_tflite

    (x, _), _ = color_data
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    shutil.copy(saved, run / "model" / "model.keras")
    shutil.copy(os.path.join(os.path.dirname(saved), "labels.json"), run / "model" / "labels.json")
    (run / "export").mkdir()
    export_tflite(trained_model, run / "export" / "m_int8.tflite", variant="int8", representative_data=x,
                  class_names=CLASS_NAMES, run_preflight=False)
    (run / "export" / "table.json").write_text(json.dumps({"deliver": "export/m_int8.tflite",
                                                           "deliver_variant": "int8"}))
    code = main(["evaluate", str(run), str(image_folder), "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"].endswith("m_int8.tflite") and doc["keras_model"].endswith("model.keras")
    assert 0.9 <= doc["top1_agreement"] <= 1.0 and doc["metrics"]["confusion"]
    assert main(["evaluate", str(run), str(image_folder)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("m_int8.tflite on") and "the delivered file; Keras model model.keras" in text
