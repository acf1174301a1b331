"""`tfxfer evaluate --target FOLDER` counts the target files it leaves out (a name that is not UTF-8, an
empty or damaged image) with their reason, as the evaluation data's skips are counted: never a silent drop."""

import json
import os

import numpy as np
import pytest

from tfxfer import cli

SIZE = 8


def _png(path, value):
    from PIL import Image

    Image.fromarray(np.full((SIZE, SIZE, 3), value, np.uint8)).save(path)


@pytest.fixture
def world(tmp_path):
    """A run directory (a bright / dark classifier on 8x8 images), its evaluation folder, and a target
    folder of 4 images plus one whose name is the bytes b"\\xff.png" and an empty file."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    (tmp_path / "run" / "model").mkdir(parents=True)
    keras.Model(inputs, outputs).save(tmp_path / "run" / "model" / "model.keras")
    (tmp_path / "run" / "model" / "labels.json").write_text(json.dumps({"class_names": ["bright", "dark"]}))
    for c, base in (("bright", 230), ("dark", 20)):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(3):
            _png(tmp_path / "data" / c / f"{i}.png", base + i)
    target = os.fsencode(tmp_path / "deploy")
    os.makedirs(target)
    for i, name in enumerate([b"0.png", b"1.png", b"2.png", b"3.png", b"\xff.png"]):
        _png(os.path.join(target, name), 100 + 5 * i)
    open(os.path.join(target, b"4.png"), "wb").close()  # an empty file: a counted skip, as in training
    return tmp_path / "run", tmp_path / "data", os.fsdecode(target)


def test_evaluate_target_counts_files_named_in_bytes_that_are_not_utf8(world, capsys):
    from tfxfer.cli.audit import shift_lines

    run, data, target = world
    argv = ["evaluate", str(run), str(data), "--target", target, "--permutations", "200", "-q", "--allow-chance"]
    assert cli.main([*argv, "--json"]) == 0
    shift = json.loads(capsys.readouterr().out)["shift"]
    assert shift["n_target"] == 4
    assert shift["target_skipped"] == 2
    assert shift["target_skip_reasons"] == {"undecodable_name": 1, "empty_file": 1}
    assert "  target: 2 file(s) skipped (1 undecodable_name, 1 empty_file)" in shift_lines(shift).splitlines()
