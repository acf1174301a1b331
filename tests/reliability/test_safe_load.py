"""Safe loading: .keras files in safe mode with explanations, safe YAML, safe file names."""

from __future__ import annotations

import json
import os
import zipfile

import keras
import numpy as np
import pytest

from tfxfer.errors import ArgumentError, ArgumentTypeError, ConfigError, ModelError, UnsafeFileError
from tfxfer.reliability import load_model, load_yaml, safe_filename, safe_join, scan_keras_file


def _lambda_model(path, marker):
    # A lambda whose bytecode writes a marker file whenever the layer is called (models call their
    # layers while they load): the kind of payload a shared .keras file can carry.
    touch = eval(f"lambda x: (open({marker!r}, 'w').close(), x * 2.0)[1]")  # noqa: S307 (test payload)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(touch, name="sneaky"), keras.layers.Dense(1)])
    model.save(path)
    os.remove(marker)
    return model


def test_lambda_layers_are_refused_with_an_explanation_and_an_opt_in(tmp_path):
    path, marker = str(tmp_path / "shared.keras"), str(tmp_path / "pwned.txt")
    _lambda_model(path, marker)
    report = scan_keras_file(path)
    assert not report.safe and report.unsafe[0][1] == "Lambda layer" and "sneaky" in report.unsafe[0][0]
    with pytest.raises(UnsafeFileError, match=r"Lambda layer at .*sneaky.*run anything on your machine.*"
                                              r"safe_mode=False"):
        load_model(path)
    assert not os.path.exists(marker)  # nothing from the file ran
    loaded = load_model(path, safe_mode=False)  # the explicit opt-in for a trusted file
    assert os.path.exists(marker)  # ... which is exactly what safe mode prevented
    np.testing.assert_allclose(loaded(np.ones((1, 2), "float32")).shape, (1, 1))


def test_safe_files_load_and_predict_the_same(tmp_path):
    from tests.factories import tiny_model, tiny_spec

    model = tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=0.1)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = load_model(path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert scan_keras_file(path).safe


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return str(path)


def test_broken_and_hostile_keras_files(tmp_path):
    good = tmp_path / "good.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(good)
    raw = good.read_bytes()
    (tmp_path / "trunc.keras").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelError, match="not a valid .keras file"):
        load_model(tmp_path / "trunc.keras")
    (tmp_path / "noise.keras").write_bytes(os.urandom(200))
    with pytest.raises(ModelError, match="not a valid .keras file"):
        load_model(tmp_path / "noise.keras")
    escape = _zip(tmp_path / "escape.keras", {"config.json": "{}", "../../outside.txt": "x"})
    with pytest.raises(UnsafeFileError, match="outside the extraction folder"):
        load_model(escape)
    with pytest.raises(ModelError, match="has no config.json"):
        load_model(_zip(tmp_path / "empty.keras", {"metadata.json": "{}"}))
    with pytest.raises(ModelError, match="config.json is not valid JSON"):
        load_model(_zip(tmp_path / "badjson.keras", {"config.json": "{oops"}))
    hostile = {"module": "os", "class_name": "system", "config": {"name": "rm -rf ~"}, "registered_name": None}
    with pytest.raises(ModelError, match="could not be loaded"):
        load_model(_zip(tmp_path / "os.keras", {"config.json": json.dumps(hostile)}))
    lambda_fn = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 1, "activation": {
            "class_name": "__lambda__", "config": {"value": "AAAA"}}}}]}}
    with pytest.raises(UnsafeFileError, match="serialized Python lambda"):
        load_model(_zip(tmp_path / "fn.keras", {"config.json": json.dumps(lambda_fn)}))
    (tmp_path / "w.weights.h5").write_bytes(b"\x89HDF")
    with pytest.raises(ArgumentError, match="is a weights-only file.*load_weights"):
        load_model(tmp_path / "w.weights.h5")
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF")
    with pytest.raises(ArgumentError, match="must end with .keras"):
        load_model(tmp_path / "legacy.h5")
    with pytest.raises(ArgumentError, match="must be an existing .keras file"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ArgumentError, match="not a folder"):
        load_model(tmp_path)
    with pytest.raises(ArgumentTypeError, match="`path` must be a file path"):
        load_model(42)
    with pytest.raises(ArgumentTypeError, match="`safe_mode` must be a bool"):
        load_model(good, safe_mode="no")


def test_yaml_is_read_with_the_safe_loader(tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"run: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(ConfigError, match="Python tags are refused"):
        load_yaml(hostile)
    assert not marker.exists()
    (tmp_path / "job.yaml").write_text("backbone: mobilenet_v2\nepochs: 3\n")
    assert load_yaml(str(tmp_path / "job.yaml")) == {"backbone": "mobilenet_v2", "epochs": 3}
    assert load_yaml(tmp_path / "job.yaml")["epochs"] == 3
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_yaml("a: [1, 2\nb: 3")
    (tmp_path / "latin.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_yaml(str(tmp_path / "latin.yaml"))
    with pytest.raises(ArgumentError, match="must be an existing YAML file"):
        load_yaml(str(tmp_path / "nope.yaml"))
    with pytest.raises(ArgumentTypeError, match="YAML text or a path"):
        load_yaml(b"bytes: 1")


@pytest.mark.parametrize("label", ["../../etc/passwd", "/etc/passwd", "..", ".", "", "a/../../b", "C:\\Windows\\x",
                                   "con", "NUL.txt", "x\x00y", "~/.bashrc", "😀", "a" * 500, "-rf", ".hidden"])
def test_safe_filename_never_escapes_and_stays_distinct(tmp_path, label):
    name = safe_filename(label)
    assert name and "/" not in name and "\\" not in name and "\x00" not in name
    assert name not in (".", "..") and not name.startswith((".", "-")) and len(name) <= 100
    path = safe_join(tmp_path, label, suffix=".png")
    assert os.path.dirname(path) == os.path.realpath(tmp_path)
    assert safe_filename(label + "x") != name


def test_safe_filename_keeps_plain_labels_and_safe_join_refuses_symlinks_out(tmp_path):
    assert safe_filename("cat") == "cat" and safe_filename("golden_retriever-2") == "golden_retriever-2"
    assert safe_filename(7) == "7"
    assert safe_filename("a b") != safe_filename("a_b")  # changed names carry a hash, so no collisions
    outside = tmp_path / "outside"
    outside.mkdir()
    inside = tmp_path / "run"
    inside.mkdir()
    os.symlink(outside / "cat.png", inside / "cat.png")
    with pytest.raises(UnsafeFileError, match="would be written outside"):
        safe_join(inside, "cat", suffix=".png")
    with pytest.raises(ArgumentTypeError, match="`name` must be a str"):
        safe_filename(None)


_REGISTRY_PROBE = r"""
import importlib, json, pkgutil, sys
mode = sys.argv[1]
if mode == "all":  # every tfxfer module imported: who registers what with package "tfxfer"?
    import keras
    import tfxfer
    for info in pkgutil.walk_packages(tfxfer.__path__, "tfxfer."):
        if not info.name.endswith("__main__"):  # the console entry runs on import
            importlib.import_module(info.name)
else:  # "registry": load_model in a process where nothing imported the model's classes, then only the
    # registry's own imports
    from tfxfer.reliability import load_model
    m = load_model(sys.argv[2])
    print("LOADED", type(m.layers[1]).__name__, type(m.optimizer._learning_rate).__name__)
    import keras
    from tfxfer.reliability.safe_load import register_serializables
    missing = register_serializables()
    assert not missing, missing
from tfxfer.reliability.safe_load import SERIALIZABLE_MODULES
found = {name: type(obj).__module__ if not isinstance(obj, type) else obj.__module__
         for name, obj in keras.saving.get_custom_objects().items() if name.startswith("tfxfer>")}
print(json.dumps({"found": found, "listed": list(SERIALIZABLE_MODULES)}))
"""


def _registered(mode, *args):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _REGISTRY_PROBE, mode, *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    return {**json.loads(lines[-1]), "loaded": [line.split()[1:] for line in lines if line.startswith("LOADED ")]}


@pytest.fixture(scope="module")
def fresh_load(tmp_path_factory):
    """One fresh process (an interpreter start costs ~5 s of CPU) for two checks: it first loads a model
    holding tfxfer's Preprocess and a tfxfer optimizer where nothing imported them, then lists what
    `register_serializables` registered."""
    from tfxfer.optim import WarmupSchedule
    from tfxfer.preprocess import Preprocess

    inputs = keras.Input((8, 8, 3))
    x = Preprocess("tf")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    model.compile(keras.optimizers.Adam(WarmupSchedule(peak_learning_rate=1e-3, warmup_steps=2, decay_steps=8)), "mse")
    path = str(tmp_path_factory.mktemp("fresh_load") / "m.keras")
    model.save(path)
    return _registered("registry", path)


def test_the_registry_lists_every_module_that_registers_a_tfxfer_class(fresh_load):
    """After importing every tfxfer module (fresh process), each class registered with package "tfxfer"
    comes from a module in SERIALIZABLE_MODULES, and `register_serializables` alone registers them all."""
    everything = _registered("all")
    assert everything["found"], "no tfxfer classes registered at all"
    unlisted = {name: module for name, module in everything["found"].items() if module not in everything["listed"]}
    assert not unlisted, f"registered outside SERIALIZABLE_MODULES: {unlisted}"
    assert set(everything["listed"]) == set(everything["found"].values())  # no stale entries either
    assert fresh_load["found"] == everything["found"]


def test_load_model_registers_tfxfer_classes_in_a_fresh_process(fresh_load):
    """A model holding tfxfer's Preprocess and a tfxfer optimizer loads where nothing imported them."""
    assert fresh_load["loaded"] == [["Preprocess", "WarmupSchedule"]]
