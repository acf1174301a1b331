"""Named policies and explicit augmentations run inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from tfxfer import augment
from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError


def _batches(n=8, size=16, classes=4):
    x = np.random.default_rng(0).uniform(0, 255, (n, size, size, 3)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, np.arange(n) % classes)).batch(4)


def test_policy_names_and_layers():
    assert augment.list_policies() == ["none", "flips", "light", "medium", "heavy"]
    assert augment.policy("none") == []
    assert [type(layer).__name__ for layer in augment.policy("medium", seed=0)] == [
        "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomColorJitter", "RandomErasing"]
    assert [type(layer).__name__ for layer in augment.policy("heavy")] == [
        "RandomFlip", "RandAugment", "RandomErasing", "CutMix"]
    first, second = augment.policy("light"), augment.policy("light")
    assert all(a is not b for a, b in zip(first, second))  # fresh layers every call


@pytest.mark.parametrize("name", ["light", "medium", "heavy"])
def test_policies_run_in_graph_mode_and_keep_range(name):
    ds = augment.augment_dataset(_batches(), name, num_classes=4, seed=1)
    seen_graph = []

    def spy(x, y):
        seen_graph.append(not tf.executing_eagerly())
        return x, y

    for images, labels in ds.map(spy):
        assert images.shape == (4, 16, 16, 3) and images.dtype == tf.float32
        assert float(tf.reduce_min(images)) >= -1e-3 and float(tf.reduce_max(images)) <= 255.0 + 1e-3
    assert seen_graph and all(seen_graph)  # tf.data traced the augmentation into a graph


def test_epochs_differ_and_seeded_pipelines_repeat():
    make = lambda: augment.augment_dataset(_batches(), "medium", seed=5, deterministic=True)  # noqa: E731
    ds = make()
    first = next(iter(ds))[0].numpy()
    again = next(iter(ds))[0].numpy()
    assert not np.allclose(first, again)  # new randomness every epoch
    assert np.allclose(first, next(iter(make()))[0].numpy())  # same seed, same first epoch


EXPLICIT = [
    lambda: augment.flip(), lambda: augment.rotation(0.1), lambda: augment.zoom(0.2),
    lambda: augment.translation(0.1), lambda: augment.color_jitter(hue=0.1),
    lambda: augment.rand_augment(num_ops=1), lambda: augment.random_erasing(1.0),
]


def test_explicit_augmentations_change_images():
    original = next(iter(_batches()))[0].numpy()
    for build in EXPLICIT:
        ds = augment.augment_dataset(_batches(), [build()])
        assert not np.allclose(next(iter(ds))[0].numpy(), original), build()


ARGUMENT_ERRORS = [
    (lambda: augment.policy("strong"), UnknownNameError, "Unknown augmentation policy 'strong'"),
    (lambda: augment.policy("lite"), UnknownNameError, "Did you mean: 'light'"),
    (lambda: augment.policy(3), ArgumentTypeError, "`name` must be a policy name"),
    (lambda: augment.flip("diagonal"), ArgumentError, "`mode` must be one of"),
    (lambda: augment.rotation(0.9), ArgumentError, r"`max_turn` must be a finite number in \[0, 0.5\]. Received"),
    (lambda: augment.zoom(-0.1), ArgumentError, r"`max_zoom` must be a finite number in \[0, "),
    (lambda: augment.random_erasing(1.5), ArgumentError,
     r"`probability` must be a finite number in \[0, 1\]. Received: probability=1.5"),
    (lambda: augment.mixup(0.0), ArgumentError, "`alpha` must be a finite number > 0. Received: alpha=0.0"),
    (lambda: augment.cutmix("big"), ArgumentError, "`alpha` must be a finite number > 0. Received: alpha='big'"),
    (lambda: augment.rand_augment(num_ops=0), ArgumentError, "`num_ops` must be an int >= 1"),
    (lambda: augment.color_jitter(saturation=0.8), ArgumentError, r"`saturation` must be a finite number in \[0, "),
]


def test_argument_errors():
    for call, error, match in ARGUMENT_ERRORS:
        with pytest.raises(error, match=match):
            call()


def test_flips_policy_only_flips():
    import numpy as np

    (layer,) = augment.policy("flips", seed=3)
    assert type(layer).__name__ == "RandomFlip" and layer.get_config()["mode"] == "horizontal_and_vertical"
    x = np.arange(2 * 4 * 4 * 1, dtype="float32").reshape(2, 4, 4, 1)
    outs = [np.asarray(layer(x, training=True)) for _ in range(8)]
    views = {x[0].tobytes(), x[0, ::-1].tobytes(), x[0, :, ::-1].tobytes(), x[0, ::-1, ::-1].tobytes()}
    assert all(o[0].tobytes() in views for o in outs)  # a flip of the image, never anything else
    assert len({o[0].tobytes() for o in outs}) > 1  # and random
