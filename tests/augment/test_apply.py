"""augment_dataset: label mixing gives soft labels that categorical cross-entropy accepts."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer import augment
from tfxfer.errors import ArgumentError, ArgumentTypeError


def _data(n=32, classes=4):
    x = np.random.default_rng(0).uniform(0, 255, (n, 16, 16, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, np.arange(n) % classes)).batch(8)


@pytest.mark.parametrize("mixer", [lambda: augment.mixup(0.4, seed=1), lambda: augment.cutmix(1.0, seed=1)])
def test_mixing_makes_soft_labels_accepted_by_categorical_crossentropy(mixer):
    ds = augment.augment_dataset(_data(), [augment.flip(seed=0), mixer()], num_classes=4)
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert labels.shape == (32, 4)
    np.testing.assert_allclose(labels.sum(axis=1), 1.0, atol=1e-5)
    assert np.any((labels > 0.01) & (labels < 0.99))  # genuinely soft, not one-hot
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255.0),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    history = model.fit(ds, epochs=2, verbose=0)
    assert all(np.isfinite(history.history["loss"]))


def test_one_hot_labels_pass_through_mixing():
    x = np.zeros((4, 8, 8, 3), "float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.eye(4, dtype="float32"))).batch(4)
    out = augment.augment_dataset(ds, [augment.mixup()])  # no num_classes needed
    assert next(iter(out))[1].shape == (4, 4)


def test_plain_callables_and_uint8_images():
    x = np.full((4, 8, 8, 3), 10, "uint8")
    ds = tf.data.Dataset.from_tensor_slices((x, [0, 1, 0, 1])).batch(2)
    out = augment.augment_dataset(ds, lambda images: images + 1.0)
    images, labels = next(iter(out))
    assert images.dtype == tf.float32 and float(images[0, 0, 0, 0]) == 11.0 and labels.shape == (2,)


APPLY_ERRORS = [
    ({"dataset": _data().unbatch(), "augmentations": "light"}, ArgumentError, "must be batched"),
    ({"dataset": [1, 2], "augmentations": "light"}, ArgumentTypeError, "`dataset` must be a tf.data.Dataset"),
    ({"dataset": _data(), "augmentations": "heavy"}, ArgumentError, "`num_classes` is required"),
    ({"dataset": _data(), "augmentations": 3}, ArgumentTypeError, "`augmentations` must be a policy name"),
    ({"dataset": _data(), "augmentations": ["light"]}, ArgumentTypeError, r"`augmentations\[0\]` must be"),
    ({"dataset": _data().map(lambda x, y: x), "augmentations": "light"}, ArgumentError, "must yield"),
]


def test_errors():
    for kwargs, error, match in APPLY_ERRORS:
        with pytest.raises(error, match=match):
            augment.augment_dataset(**kwargs)


def test_mixes_labels_detection():
    assert augment.mixes_labels(augment.mixup()) and augment.mixes_labels(augment.cutmix())
    assert not augment.mixes_labels(augment.flip())


def test_a_tfxfer_pipeline_reseeds_its_augmentation_by_epoch():
    """fit's EpochShuffle callback puts the augmentation's random state at the epoch's start: an epoch
    replayed (a resumed run) draws the same augmentations, another epoch other ones."""
    from tfxfer.data.tfdata import array_pipeline
    from tfxfer.reliability.shuffle import attached_shuffle

    x = np.random.default_rng(0).uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    base = array_pipeline(x, np.arange(16) % 2, image_size=(16, 16), batch_size=4, training=True, seed=1)
    ds = augment.augment_dataset(base, "light", num_classes=2, seed=1, deterministic=True)
    shuffle = attached_shuffle(ds)
    assert shuffle is attached_shuffle(base)

    def epoch():
        return np.concatenate([b[0].numpy() for b in ds])

    shuffle.on_epoch_begin(2)
    first, second = epoch(), epoch()
    shuffle.on_epoch_begin(2)
    np.testing.assert_array_equal(epoch(), first)
    assert not np.array_equal(first, second)  # within an epoch the draws go on
    shuffle.on_epoch_begin(3)
    assert not np.array_equal(epoch(), first)


def test_augmentation_runs_batch_after_batch_while_op_determinism_is_on(monkeypatch):
    """The loaders and fine_tune pass no `deterministic`: it follows TensorFlow's op determinism (a seeded
    run then repeats its draws batch for batch), and stays parallel otherwise."""
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    from tfxfer.augment import augment_dataset

    data = tf.data.Dataset.from_tensor_slices((tf.zeros((4, 8, 8, 3)), tf.zeros(4, tf.int64))).batch(2)

    def map_kinds(ds):
        kinds, node = [], ds
        while node is not None:
            kinds.append(type(node).__name__)
            inputs = node._inputs()
            node = inputs[0] if inputs else None
        return [k for k in kinds if "Map" in k]

    assert map_kinds(augment_dataset(data, "light", seed=0, prefetch=False)) == ["_ParallelMapDataset"]
    monkeypatch.setattr(tf_config, "is_op_determinism_enabled", lambda: True)
    assert map_kinds(augment_dataset(data, "light", seed=0, prefetch=False)) == ["_MapDataset"]
