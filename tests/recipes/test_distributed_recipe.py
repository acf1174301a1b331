"""Recipes under tf.distribute and with deterministic ops: ``train.strategy: mirrored`` over two
logical CPU devices and ``multi_worker_mirrored`` across two worker processes on 127.0.0.1 both finish
with a gated TFLite file and train the same model as one device (stated tolerance: rtol 1e-3 on the
per-epoch losses; replicas sum gradients in a different order than one device);
``train.deterministic: true`` makes two runs identical down to the TFLite bytes.

The one-device run is made once per module, with ``train.deterministic: true``: it is the baseline of
the distributed runs and the first of the two deterministic runs (the second is a fresh process of
its own, so the pair still shares nothing but the input folder), and delivers the int8 file. The
distributed runs export float32 only (their gated file). The latency benchmark is off: no test here
reads it, and the gate does not depend on it."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import wait_for_processes
from tests.recipes.helpers import recipe, tiny_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD = """
import sys
import tensorflow as tf
if sys.argv[1] == "two-cpus":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfxfer.cli import main
sys.exit(main(sys.argv[2:]))
"""
SAME = ["model.dropout=0.0"]  # replicas would draw other dropout masks than one device
FAST = ["export.benchmark=false"]  # latency is not asserted here (nor part of the gate)
DETERMINISTIC = ["train.deterministic=true"]
# The distributed runs are compared on their training only: they deliver their gated float32 file (the
# int8 conversion after training does not depend on the strategy; the deterministic pair keeps it).
FLOAT32 = ["export.variants=[float32]", "export.deliver=float32"]


def _argv(folder, out, *extra):
    return ["run", recipe("quick"), "--out", out, "-q", "--allow-chance"] + [
        a for s in [*tiny_overrides(folder), *SAME, *FAST, *extra] for a in ("--set", s)]


def _child(script, mode, argv, env=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]), **(env or {})}
    return subprocess.Popen([sys.executable, str(script), mode, *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait(procs, timeout=600):
    wait_for_processes(procs, timeout=timeout)


def _history(run_dir):
    with open(os.path.join(run_dir, "model", "history.json")) as f:
        return json.load(f)


def _ok(run_dir):
    with open(os.path.join(run_dir, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["status"] == "ok" and manifest["gate"]["passed"] is True
    assert os.path.isfile(os.path.join(run_dir, manifest["gate"]["deliver"]))
    return manifest


@pytest.fixture(scope="module")
def single_device(image_folder, tmp_path_factory):
    script = tmp_path_factory.mktemp("child") / "child.py"
    script.write_text(CHILD)
    out = str(tmp_path_factory.mktemp("single") / "run")
    _wait([_child(script, "one-cpu", _argv(image_folder, out, *DETERMINISTIC))])
    return script, out


def _assert_same_training(history, single):
    assert history["stages"] == single["stages"]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(history["history"][key], single["history"][key], rtol=1e-3)


@pytest.mark.slow
def test_mirrored_recipe_on_two_logical_cpus(image_folder, tmp_path, single_device):
    script, single_out = single_device
    single = _history(single_out)
    out = str(tmp_path / "run")
    _wait([_child(script, "two-cpus", _argv(image_folder, out, "train.strategy=mirrored", *FLOAT32))])
    _ok(out)
    history = _history(out)
    assert history["strategy"] == {"name": "mirrored", "replicas": 2}
    _assert_same_training(history, single)


@pytest.mark.slow
def test_multi_worker_recipe_on_two_processes(image_folder, tmp_path, single_device):
    from tfxfer.reliability import local_tf_configs

    script, single_out = single_device
    single = _history(single_out)
    out = str(tmp_path / "run")
    argv = _argv(image_folder, out, "train.strategy=multi_worker_mirrored", *FLOAT32)
    _wait([_child(script, "one-cpu", argv, env={"TF_CONFIG": config}) for config in local_tf_configs(2)])
    chief, worker = out, os.path.join(out, "workers", "worker-1")
    _ok(chief), _ok(worker)
    h_chief, h_worker = _history(chief), _history(worker)
    assert h_chief["strategy"] == {"name": "multi_worker_mirrored", "replicas": 2}
    np.testing.assert_allclose(h_chief["history"]["loss"], h_worker["history"]["loss"], rtol=1e-6)
    _assert_same_training(h_chief, single)


@pytest.mark.slow
def test_deterministic_recipe_runs_are_identical(image_folder, tmp_path, single_device):
    """``train.deterministic: true``: two fresh processes give identical losses and identical files.
    The first is the module's one-device run; the second is started here, after it has finished."""
    from tfxfer.recipes.fingerprint import file_sha256

    script, first = single_device
    second = str(tmp_path / "run")
    # one after the other (the first ran in the fixture): the second must not reuse anything of the first
    _wait([_child(script, "one-cpu", _argv(image_folder, second, *DETERMINISTIC))])
    outs = [first, second]
    manifests = [_ok(out) for out in outs]
    assert all(m["config"]["train"]["deterministic"] is True for m in manifests)
    assert [m["stages"]["finetune"]["status"] for m in manifests] == ["done", "done"]  # both trained
    assert _history(outs[0])["history"] == _history(outs[1])["history"]
    files = [os.path.join(out, m["gate"]["deliver"]) for out, m in zip(outs, manifests)]
    assert file_sha256(files[0]) == file_sha256(files[1])
