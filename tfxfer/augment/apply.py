"""Apply augmentation inside a tf.data pipeline (training data only).

Augmentation runs in ``dataset.map`` on batches, in parallel with training, so the model you
train and export never contains a random op. Label-mixing augmentations (MixUp, CutMix) turn
class-id labels into one-hot vectors first and return soft labels: compile the model with
``categorical_crossentropy`` (or ``binary_crossentropy`` for multi-hot labels).

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfxfer.augment import augment_dataset
    >>> x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype("float32")
    >>> y = np.arange(8) % 4
    >>> ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    >>> aug = augment_dataset(ds, "heavy", num_classes=4, seed=0)
    >>> images, labels = next(iter(aug))
    >>> tuple(images.shape), tuple(labels.shape)
    ((4, 16, 16, 3), (4, 4))
"""

from __future__ import annotations

import weakref
from typing import Callable, Sequence

import keras
import tensorflow as tf

from tfxfer.augment.policies import policy
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.reliability.inputs import LABEL_OUT_OF_RANGE
from tfxfer.utils.validate import check_int

#: Class names of layers that mix labels (Keras 3 core and keras-cv).
LABEL_MIXING = frozenset({"MixUp", "CutMix", "FourierMix", "MosaicMix", "Mosaic"})


def mixes_labels(layer) -> bool:
    """True for augmentations that also mix labels (MixUp, CutMix, ...)."""
    return type(layer).__name__ in LABEL_MIXING or bool(getattr(layer, "mixes_labels", False))


def resolve_augmentations(augmentations, *, seed=None) -> list:
    """A policy name, one layer/callable, or a sequence of them -> list of layers/callables."""
    if augmentations is None:
        return []
    if isinstance(augmentations, str):
        return policy(augmentations, seed=seed)
    if isinstance(augmentations, keras.layers.Layer) or callable(augmentations):
        return [augmentations]
    if isinstance(augmentations, Sequence):
        items = list(augmentations)
        for i, item in enumerate(items):
            if not callable(item):
                raise ArgumentTypeError(f"augmentations[{i}]", item, "a Keras layer or a callable")
        return items
    raise ArgumentTypeError("augmentations", augmentations,
                            "a policy name, a Keras layer, a callable or a list of them")


def _one_hot(labels, num_classes):
    if labels.shape.rank == 2 and labels.shape[-1] == 1:  # (batch, 1) class ids (keras.datasets' shape)
        labels = tf.squeeze(labels, -1)
    if labels.dtype.is_integer or labels.shape.rank == 1:
        if num_classes is None:
            raise ArgumentError(
                "num_classes", None,
                "is required when a label-mixing augmentation (MixUp, CutMix) meets class-id labels",
            )
        ids = tf.cast(labels, tf.int32)
        checks = [tf.debugging.assert_non_negative(ids, message=LABEL_OUT_OF_RANGE),
                  tf.debugging.assert_less(ids, int(num_classes), message=LABEL_OUT_OF_RANGE)]
        with tf.control_dependencies(checks):  # tf.one_hot turns an id out of range into a row of zeros
            return tf.one_hot(tf.identity(ids), int(num_classes), dtype=tf.float32)
    return tf.cast(labels, tf.float32)


def _without_colour(layers, channels):
    """``layers`` with the saturation and hue jitter of `keras.layers.RandomColorJitter` dropped for
    gray (1-channel) images, which have neither (RGB-to-HSV needs 3 channels); brightness and
    contrast jitter stay."""
    if channels != 1:
        return layers
    out = []
    for layer in layers:
        if isinstance(layer, keras.layers.RandomColorJitter):
            config = layer.get_config()
            if config.get("saturation_factor") is not None or config.get("hue_factor") is not None:
                config.update(saturation_factor=None, hue_factor=None)
                layer = keras.layers.RandomColorJitter.from_config(config)
        out.append(layer)
    return out


def augment_batch(images, labels, layers: Sequence[Callable], *, num_classes=None):
    """Run ``layers`` on one batch (training mode); returns (images clipped to 0-255, labels)."""
    images = tf.cast(images, tf.float32)
    for layer in layers:
        if mixes_labels(layer):
            labels = _one_hot(labels, num_classes)
            out = layer({"images": images, "labels": labels}, training=True)
            images, labels = out["images"], tf.cast(out["labels"], tf.float32)
        elif isinstance(layer, keras.layers.Layer):
            images = layer(images, training=True)
        else:
            images = layer(images)
    # some layers (noise fills, colour jitter) overshoot: keep the 0-255 contract of tfxfer images
    return tf.clip_by_value(images, 0.0, 255.0), labels


def seed_generators(layers) -> list:
    """Every `keras.random.SeedGenerator` of ``layers`` and their sublayers, in a fixed order."""
    found = []
    for layer in layers:
        if isinstance(layer, keras.layers.Layer):
            for sub in layer._flatten_layers(include_self=True, recursive=True):
                found.extend(g for g in getattr(sub, "_seed_generators", []) if g not in found)
    return found


def reseed(layers, seed: int, epoch: int) -> None:
    """Put the random state of ``layers`` at the start of ``epoch`` for ``seed``: the draws of an
    epoch then depend on (seed, epoch) only, not on how many batches were augmented before."""
    for i, generator in enumerate(seed_generators(layers)):
        state = generator.state
        value = [(int(seed) * 1_000_003 + i) % (2**31 - 1), int(epoch) * 2**24]
        state.assign(tf.constant(value, dtype=state.dtype))


def augment_dataset(dataset: tf.data.Dataset, augmentations, *, num_classes: int | None = None,
                    seed: int | None = None, prefetch: bool = True,
                    deterministic: bool | None = None) -> tf.data.Dataset:
    """Augment a batched ``(images, labels)`` dataset in tf.data.

    Args:
        dataset: batched dataset of ``(images, labels)`` with float or uint8 images in 0-255.
        augmentations: a policy name ("none", "light", "medium", "heavy"), a Keras layer or
            callable, or a list of them (applied in order). Layers are created once, outside
            the map function, as tf.data requires.
        num_classes: needed when labels are class ids and a label-mixing layer is present.
        seed: seed for the layers of a named policy.
        prefetch: add ``prefetch(AUTOTUNE)`` at the end.
        deterministic: augment batches one after another so that a seeded pipeline repeats
            exactly; False augments batches in parallel (faster, random draws then depend on
            thread timing). None (the default, what the loaders and `fine_tune` pass): one after
            another while TensorFlow's op determinism is on (`tfxfer.reliability.enable_determinism`,
            a recipe's ``train.deterministic``), else in parallel. A tfxfer pipeline's `EpochShuffle`, when ``fit`` runs it as a
            callback, also reseeds the layers at each epoch (`reseed`): with ``deterministic``, a
            resumed run then draws the augmentations of the uninterrupted one.

    Returns:
        The augmented dataset; images float32 0-255, labels unchanged unless mixed (then soft).

    Raises:
        ArgumentError: the dataset is not batched, or ``num_classes`` is missing for mixing.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ArgumentTypeError("dataset", dataset, "a tf.data.Dataset")
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ArgumentError("dataset", spec, "must yield (images, labels) pairs")
    if spec[0].shape.rank != 4:
        raise ArgumentError("dataset", spec[0].shape,
                            "must be batched: images of rank 4 (batch, height, width, channels); call .batch() first")
    from tfxfer.reliability.shuffle import attached_shuffle, carry_shuffle  # a tfxfer pipeline's epoch order

    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, low=1)
    layers = _without_colour(resolve_augmentations(augmentations, seed=seed), spec[0].shape[-1])
    if not layers:
        return carry_shuffle(dataset, dataset.prefetch(tf.data.AUTOTUNE)) if prefetch else dataset
    ids = spec[1].shape.rank == 1 or (spec[1].shape.rank == 2 and spec[1].shape[-1] == 1)
    if any(mixes_labels(layer) for layer in layers) and ids and num_classes is None:
        raise ArgumentError(
            "num_classes", None,
            "is required when a label-mixing augmentation (MixUp, CutMix) meets class-id labels",
        )
    shuffle = attached_shuffle(dataset)
    if shuffle is not None:  # weak: a dropped augmented dataset's layers are not kept alive by the shuffle
        refs, base = [weakref.ref(layer) for layer in layers if isinstance(layer, keras.layers.Layer)], seed
        base = shuffle.seed if base is None else base
        shuffle.add_epoch_hook(lambda epoch: reseed([r() for r in refs if r() is not None], base, epoch))
    if deterministic is None:
        from tensorflow.python.framework import config as tf_config  # no public query of op determinism

        deterministic = bool(tf_config.is_op_determinism_enabled())
    ds = dataset.map(lambda x, y: augment_batch(x, y, layers, num_classes=num_classes),
                     num_parallel_calls=None if deterministic else tf.data.AUTOTUNE)
    return carry_shuffle(dataset, ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds)
