"""Scale-out: strategies by name, dataset sharding, MirroredStrategy over two logical CPU devices and
MultiWorkerMirroredStrategy across two worker processes on 127.0.0.1, both against one device."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import wait_for_processes
from tests.reliability.conftest import ROOT, SCENARIO, read_json, run_scenario
from tfxfer.errors import ArgumentError, ArgumentTypeError, ConfigError
from tfxfer.reliability import (
    EpochShuffle,
    distribute_dataset,
    get_strategy,
    is_chief,
    latest_state,
    local_tf_configs,
    shard_dataset,
)
from tfxfer.reliability.distribute import fit_scope

# Stated tolerance for "matches single-device training": same data, same global batches, float32
# all-reduce of per-replica gradients (sum order differs from one device's batch reduction).
DIST_TOL = dict(rtol=1e-4, atol=1e-5)


def _assert_matches(run, single):
    assert run["stages"] == single["stages"]
    for key in single["history"]:
        np.testing.assert_allclose(run["history"][key], single["history"][key], **DIST_TOL)
    for a, b in zip(run["weights"], single["weights"]):
        np.testing.assert_allclose(a, b, **DIST_TOL)
    np.testing.assert_allclose(run["predictions"], single["predictions"], **DIST_TOL)


def test_strategies_by_name_and_their_errors(monkeypatch):
    assert get_strategy("default").num_replicas_in_sync == 1
    assert get_strategy("one_device").num_replicas_in_sync == 1
    assert get_strategy("Mirrored").num_replicas_in_sync == len(tf.config.list_logical_devices("CPU"))
    with pytest.raises(ArgumentError, match="`name` must be one of default, one_device, mirrored"):
        get_strategy("horovod")
    with pytest.raises(ArgumentTypeError, match="`name` must be a strategy name"):
        get_strategy(2)
    with pytest.raises(ArgumentError, match="`devices` must be a non-empty list"):
        get_strategy("mirrored", devices=[])
    with pytest.raises(ArgumentError, match="needs a TPU, and none answered"):
        get_strategy("tpu")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ConfigError, match="TF_CONFIG is not valid JSON"):
        get_strategy("multi_worker_mirrored")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 3}}))
    with pytest.raises(ConfigError, match="is not a member of the cluster"):
        get_strategy("multi_worker_mirrored")
    monkeypatch.setenv("TF_CONFIG", json.dumps(["x"]))
    with pytest.raises(ConfigError, match='must be a JSON object with a "cluster" mapping'):
        get_strategy("multi_worker_mirrored")
    assert is_chief(get_strategy("default"))


def test_local_cluster_configs_and_dataset_sharding():
    configs = [json.loads(c) for c in local_tf_configs(2)]
    assert [c["task"]["index"] for c in configs] == [0, 1]
    assert all(addr.startswith("127.0.0.1:") for addr in configs[0]["cluster"]["worker"])
    assert len(set(configs[0]["cluster"]["worker"])) == 2
    with pytest.raises(ArgumentError, match="`workers` must be an int >= 1"):
        local_tf_configs(0)
    with pytest.raises(ArgumentError, match="`ports` must hold 2 ports"):
        local_tf_configs(2, ports=[1])
    ds = shard_dataset(tf.data.Dataset.range(8).batch(4))
    policy = ds.options().experimental_distribute.auto_shard_policy
    assert policy == tf.data.experimental.AutoShardPolicy.DATA
    with pytest.raises(ArgumentError, match="`policy` must be one of auto, data, file, off"):
        shard_dataset(ds, policy="rows")
    with pytest.raises(ArgumentTypeError, match="`dataset` must be a tf.data.Dataset"):
        shard_dataset([1, 2])
    dist = distribute_dataset(get_strategy("default"), tf.data.Dataset.range(8).batch(4))
    assert sum(int(tf.reduce_sum(b)) for b in dist) == 28


def test_epoch_shuffle_depends_on_seed_and_epoch_only():
    shuffle = EpochShuffle(seed=5)
    ds = shuffle.apply(tf.data.Dataset.range(16), buffer_size=16)
    free = [[int(v) for v in ds] for _ in range(2)]  # no callback drives it: each iterator a new order
    assert free[0] != free[1] and sorted(free[0]) == list(range(16)) and not shuffle.driven
    shuffle.set_epoch(0)
    first = [int(v) for v in ds]
    assert first == [int(v) for v in ds] and sorted(first) == list(range(16)) and first != list(range(16))
    shuffle.on_train_end()  # fit ended: free-running again, and the fixed order of epoch 0 on demand
    assert not shuffle.driven and [int(v) for v in ds] != first
    with shuffle.fixed(0):
        assert [int(v) for v in ds] == first
    assert not shuffle.driven
    shuffle.set_epoch(3)
    third = [int(v) for v in ds]
    tf.random.set_seed(99)  # the global seed does not matter
    again = EpochShuffle(seed=5)
    ds2 = again.apply(tf.data.Dataset.range(16), buffer_size=16)
    again.set_epoch(3)
    assert [int(v) for v in ds2] == third != first
    assert int(ds.cardinality()) == 16
    with pytest.raises(ArgumentError, match="`seed` must be an int >= 0"):
        EpochShuffle(seed=-1)
    with pytest.raises(ArgumentError, match="`buffer_size` must be an int >= 1"):
        shuffle.apply(tf.data.Dataset.range(4), buffer_size=0)
    assert EpochShuffle.from_config(shuffle.get_config()).seed == 5


def test_fit_scope_is_a_plain_scope_with_one_worker():
    import keras

    strategy = get_strategy("default")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    saved = model._distribute_strategy
    with fit_scope(model, strategy):
        assert tf.distribute.get_strategy() is strategy
    assert model._distribute_strategy is saved


def test_fine_tune_refuses_a_strategy_the_model_was_not_built_under():
    from tests.factories import tiny_images, tiny_model, tiny_spec
    from tfxfer.train.fine_tune import fine_tune

    model = tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=0.1)
    x, y = tiny_images(8, size=16, classes=3, signal="mean_colour")
    other = tf.distribute.OneDeviceStrategy("/cpu:0")
    with pytest.raises(ArgumentError, match="must be the strategy the model was built under"):
        fine_tune(model, (x, y), head_epochs=1, epochs=0, strategy=other, verbose=0)
    with pytest.raises(ArgumentTypeError, match="`strategy` must be a tf.distribute.Strategy"):
        fine_tune(model, (x, y), head_epochs=1, epochs=0, strategy="mirrored", verbose=0)


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """The "mirrored" scenario, run once: training under MirroredStrategy on two logical CPUs and the same
    recipe on one device (``"single"``). Both slow tests compare against that single-device run."""
    out = tmp_path_factory.mktemp("mirrored") / "mirrored.json"
    run_scenario(["mirrored", "--out", str(out)], timeout=400)
    return read_json(out)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus_matches_one_device(mirrored):
    result = mirrored
    assert result["replicas"] == 2 and len(result["devices"]) == 2
    _assert_matches(result["mirrored"], result["single"])
    assert len(result["mirrored"]["stages"]) == 3  # head, then two unfreezing stages


@pytest.mark.slow
def test_multi_worker_mirrored_two_processes_on_loopback_match_single_worker(tmp_path, mirrored):
    checkpoints = tmp_path / "ckpt"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    procs = []
    for index, config in enumerate(local_tf_configs(2)):
        assert '"127.0.0.1:' in config  # loopback only
        procs.append(subprocess.Popen(
            [sys.executable, SCENARIO, "worker", "--out", str(tmp_path / f"w{index}.json"),
             "--checkpoint-dir", str(checkpoints)],
            cwd=ROOT, env={**env, "TF_CONFIG": config}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    wait_for_processes(procs, timeout=480)
    w0, w1 = read_json(tmp_path / "w0.json"), read_json(tmp_path / "w1.json")
    assert (w0["replicas"], w0["chief"], w1["chief"]) == (2, True, False)
    assert w0["weights"] == w1["weights"]  # every worker holds the same model
    assert latest_state(str(checkpoints / "unfreeze")).epoch == 2  # the chief checkpointed

    # The single-worker reference: the same recipe (DIST_KW, no dropout, seed 0) on one device, trained
    # once for this module by the "mirrored" scenario instead of again in this process.
    single = mirrored["single"]
    _assert_matches(w0, single)
    assert len(single["stages"]) == 3
