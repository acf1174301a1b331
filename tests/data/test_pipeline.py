"""tf.data pipeline: caching, options for tf.distribute, augmentation on train only."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.factories import make_simple_folder
from tfxfer.data import image_dataset_from_arrays, image_dataset_from_folder
from tfxfer.data.tfdata import AUTO_CACHE_BYTES, resolve_cache
from tfxfer.errors import ArgumentError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_resolve_cache(tmp_path):
    assert resolve_cache("auto", n=10, image_size=(8, 8)) == ""
    assert resolve_cache("auto", n=AUTO_CACHE_BYTES, image_size=(8, 8)) is None
    assert resolve_cache(True, n=1, image_size=(8, 8)) == "" and resolve_cache("memory", n=1, image_size=(1, 1)) == ""
    assert resolve_cache(False, n=1, image_size=(8, 8)) is None
    assert resolve_cache(str(tmp_path / "c" / "x"), n=1, image_size=(8, 8)).endswith("x")
    with pytest.raises(ArgumentError, match="`cache` must be"):
        resolve_cache(3, n=1, image_size=(8, 8))


def test_datasets_are_ready_for_tf_distribute(tmp_path):
    make_simple_folder(str(tmp_path), {"a": 3, "b": 3})
    data = image_dataset_from_folder(str(tmp_path), image_size=8, batch_size=2, test_split=0.3)
    for ds in (data.train, data.test):
        policy = ds.options().experimental_distribute.auto_shard_policy
        assert policy == tf.data.experimental.AutoShardPolicy.DATA


def test_augmentation_reaches_train_only(rng):
    x = rng.integers(0, 256, (16, 12, 12, 3), dtype=np.uint8)
    y = np.arange(16) % 2
    plain = image_dataset_from_arrays(x, y, batch_size=16, shuffle=False, test_split=0.25, seed=3)
    aug = image_dataset_from_arrays(x, y, batch_size=16, shuffle=False, test_split=0.25, augment="medium", seed=3)
    assert not np.allclose(next(iter(plain.train))[0], next(iter(aug.train))[0])
    assert np.array_equal(next(iter(plain.test))[0], next(iter(aug.test))[0])


def test_label_mixing_policy_makes_soft_labels_in_the_loader(rng):
    x = rng.integers(0, 256, (16, 12, 12, 3), dtype=np.uint8)
    data = image_dataset_from_arrays(x, np.arange(16) % 4, batch_size=16, augment="heavy", seed=0)
    _, labels = next(iter(data.train))
    assert labels.shape == (16, 4)
    np.testing.assert_allclose(labels.numpy().sum(axis=1), 1.0, atol=1e-5)


DISTRIBUTED = textwrap.dedent("""
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    sys.path.insert(0, sys.argv[2])
    from tests.factories import make_simple_folder
    from tfxfer.data import image_dataset_from_folder
    make_simple_folder(sys.argv[1], {"a": 6, "b": 6})
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    data = image_dataset_from_folder(sys.argv[1], image_size=16, batch_size=4, validation_split=0.25,
                                     augment="light", seed=0)
    with strategy.scope():
        model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data.train, validation_data=data.val, epochs=2, verbose=0)
    dist = strategy.experimental_distribute_dataset(data.train)
    per_replica = next(iter(dist))[0].values
    print("OK", strategy.num_replicas_in_sync, len(history.history["loss"]), [int(v.shape[0]) for v in per_replica])
""")


@pytest.mark.slow
def test_pipeline_trains_under_mirrored_strategy(tmp_path):
    """Two logical CPUs, MirroredStrategy: fit and experimental_distribute_dataset (~25 s, subprocess)."""
    out = subprocess.run([sys.executable, "-c", DISTRIBUTED, str(tmp_path / "d"), ROOT],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK 2 2 [2, 2]" in out.stdout


def test_training_pipeline_order_is_keyed_by_epoch_when_driven_and_new_per_iterator_otherwise(tmp_path):
    """A folder's training pipeline carries an EpochShuffle: plain iteration reshuffles every pass (as
    before), fit's callback picks the epoch's order whatever iterators came before, and the one-off
    reads (features, an int8 calibration sample) get one fixed order."""
    from tfxfer.recipes.image_data import take_images
    from tfxfer.reliability.shuffle import attached_shuffle

    make_simple_folder(tmp_path, {"a": 8, "b": 8}, size=(8, 8))
    data = image_dataset_from_folder(str(tmp_path), image_size=(8, 8), batch_size=4, seed=2, validation_split=0.0)
    shuffle = attached_shuffle(data.train)
    assert shuffle is not None

    def labels():
        return np.concatenate([y.numpy() for _, y in data.train]).tolist()

    assert len({tuple(labels()) for _ in range(4)}) > 1  # free-running: a new order per pass
    sample = take_images(data.train, 6)[1].tolist()
    shuffle.on_epoch_begin(3)
    epoch3 = labels()
    for _ in range(3):
        next(iter(data.train))  # extra iterators (a resumed run makes some) change nothing
    assert labels() == epoch3
    shuffle.on_train_end()
    assert take_images(data.train, 6)[1].tolist() == sample  # the same calibration sample
