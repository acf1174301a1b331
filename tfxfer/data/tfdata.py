"""tf.data input pipelines: parallel decode, cache, shuffle, batch, augment, prefetch.

Order of operations (the usual tf.data performance advice, measured in
``benchmarks/input_pipeline.py``)::

    files -> [shuffle names] -> decode+resize (parallel, AUTOTUNE) -> uint8 -> cache
          -> [shuffle] -> batch -> float32 0-255 -> [augment, parallel] -> prefetch(AUTOTUNE)

Images are cached as uint8 (4x less memory than float32). Validation and test pipelines are never
shuffled or augmented, so their order is deterministic. Training pipelines shuffle with an attached
`tfxfer.reliability.EpochShuffle`: a new order for each iterator, or, when ``fit`` runs it as a callback
(`tfxfer.fine_tune` does), the order of the epoch, so a resumed run sees the same batches. Datasets carry
``auto_shard_policy=DATA`` so they can be handed to ``model.fit`` under any ``tf.distribute``
strategy (or to ``strategy.experimental_distribute_dataset``) without a sharding warning.

Example:
    >>> import numpy as np
    >>> from tfxfer.data.tfdata import array_pipeline
    >>> x = np.zeros((10, 8, 8, 3), "uint8"); y = np.arange(10) % 2
    >>> ds = array_pipeline(x, y, image_size=(16, 16), batch_size=4, training=False)
    >>> images, labels = next(iter(ds))
    >>> tuple(images.shape), images.dtype.name
    ((4, 16, 16, 3), 'float32')
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tfxfer.augment.apply import augment_dataset
from tfxfer.data.decode import decode_rgb
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.reliability.shuffle import EpochShuffle, attach_shuffle, new_seed
from tfxfer.utils.validate import check_int, is_int

AUTOTUNE = tf.data.AUTOTUNE
#: With ``cache="auto"``, data sets whose decoded uint8 images fit in this many bytes are cached
#: in memory; larger ones are not cached.
AUTO_CACHE_BYTES = 2 * 1024**3
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")


def check_image_size(image_size) -> tuple[int, int]:
    """``224`` or ``(224, 224)`` -> ``(224, 224)``; validated."""
    if is_int(image_size):
        image_size = (int(image_size), int(image_size))
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(is_int(v) for v in image_size)):
        raise ArgumentTypeError("image_size", image_size, "an int or a (height, width) pair of ints")
    if min(image_size) < 1:
        raise ArgumentError("image_size", image_size, "must be positive")
    return int(image_size[0]), int(image_size[1])


def check_batch_size(batch_size) -> int:
    return check_int("batch_size", batch_size, low=1)


def check_interpolation(interpolation) -> str:
    if interpolation not in INTERPOLATIONS:
        raise ArgumentError("interpolation", interpolation, "must be one of " + ", ".join(INTERPOLATIONS))
    return interpolation


def resolve_cache(cache, *, n: int, image_size: tuple[int, int], channels: int = 3):
    """``cache`` argument -> "" (memory), a file path, or None (no cache)."""
    if cache is None or cache is False:
        return None
    if cache is True or cache == "memory":
        return ""
    if cache == "auto":
        return "" if n * image_size[0] * image_size[1] * channels <= AUTO_CACHE_BYTES else None
    if isinstance(cache, (str, os.PathLike)):
        path = os.fspath(cache)
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        return path
    raise ArgumentError("cache", cache, 'must be "auto", "memory", True, False, None or a file path')


def resize_uint8(image, image_size, *, interpolation="bilinear", crop_to_aspect_ratio=False):
    """Resize one HxWxC image tensor to ``image_size``; returns uint8 (rounded, clipped)."""
    check_interpolation(interpolation)
    height, width = image_size
    if crop_to_aspect_ratio:
        shape = tf.shape(image)
        h, w = shape[0], shape[1]
        target = tf.cast(width, tf.float32) / tf.cast(height, tf.float32)
        crop_h = tf.minimum(h, tf.cast(tf.round(tf.cast(w, tf.float32) / target), tf.int32))
        crop_w = tf.minimum(w, tf.cast(tf.round(tf.cast(h, tf.float32) * target), tf.int32))
        image = tf.image.crop_to_bounding_box(image, (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w)
    resized = tf.image.resize(image, (height, width), method=interpolation)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def decode_file(path, blob, *, image_size, channels=3, interpolation="bilinear", crop_to_aspect_ratio=False):
    """Decode one image file (or the converted bytes in ``blob`` when non-empty) to uint8."""
    data = tf.cond(tf.strings.length(blob) > 0, lambda: blob, lambda: tf.io.read_file(path))
    # always decode to RGB (libjpeg cannot turn CMYK into grayscale), then convert if asked; the one
    # decode that serving and the device runner share (JPEGs with the accurate DCT, as Pillow decodes)
    image = decode_rgb(data)
    if channels == 1:
        image = tf.cast(tf.round(tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))), tf.uint8)
    return resize_uint8(image, image_size, interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio)


def with_distribute_options(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Shard by data (not by file) under tf.distribute; keep parallelism autotuned."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def finish_pipeline(ds, *, n, batch_size, training, seed=None, cache=None, shuffle=True,
                    shuffle_buffer=None, augment=None, num_classes=None, drop_remainder=False,
                    shuffled_before=False, shuffler=None):
    """Cache -> shuffle -> batch -> float32 -> augment -> prefetch for (uint8 image, label) elements.

    Args:
        ds: unbatched ``(image uint8, label)`` dataset of ``n`` elements.
        cache: "" (memory), a file path, or None (see `resolve_cache`).
        training: shuffle and augment only when True.
        shuffled_before: the caller already shuffled the (uncached) source each epoch.
        augment: None, a policy name or a list of layers (see `tfxfer.augment.augment_dataset`).
        shuffler: the `EpochShuffle` that orders the training data (attached to the result); a new
            one seeded with ``seed`` when None.
    Raises:
        ArgumentError: ``drop_remainder`` with a ``batch_size`` above the ``n`` training examples
            (the training data would yield no batch at all).
    """
    if training and drop_remainder and int(batch_size) > int(n):
        raise ArgumentError("batch_size", batch_size, f"must be at most the {n} examples of the `train` split when "
                            "drop_remainder=True (the training data would yield no batch)",
                            hint="Lower batch_size or pass drop_remainder=False")
    if training and shuffle and shuffler is None:
        shuffler = EpochShuffle(new_seed(seed))
    if cache is not None:
        ds = ds.cache(cache)
    if training and shuffle and (cache is not None or not shuffled_before):
        buffer = int(shuffle_buffer or min(n, 4096)) or 1
        ds = shuffler.apply(ds, buffer_size=buffer)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE,
                  deterministic=True)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=AUTOTUNE)
    if training and augment not in (None, "none"):  # attached first: the augmentation is reseeded by epoch
        ds = augment_dataset(attach_shuffle(ds, shuffler) if shuffler is not None else ds, augment, seed=seed,
                             num_classes=num_classes, prefetch=False)
    ds = with_distribute_options(ds.prefetch(AUTOTUNE))
    return attach_shuffle(ds, shuffler) if training and shuffle else ds


def file_pipeline(paths, blobs, labels, *, image_size, batch_size, training, seed=None,
                  cache="auto", shuffle=True, shuffle_buffer=None, augment=None, num_classes=None,
                  channels=3, interpolation="bilinear", crop_to_aspect_ratio=False,
                  drop_remainder=False):
    """tf.data pipeline over image files (see the module docstring for the order of operations)."""
    image_size = check_image_size(image_size)
    batch_size = check_batch_size(batch_size)
    n = len(paths)
    cache = resolve_cache(cache, n=n, image_size=image_size, channels=channels)
    labels = np.asarray(labels)
    paths, blobs = list(paths), list(blobs)
    if training and shuffle and n > 1:
        # files arrive sorted by class: put them in a seeded random order once, so that a cached
        # pipeline's bounded shuffle buffer never sees long runs of a single class
        order = np.random.default_rng(seed).permutation(n)
        paths, blobs, labels = [paths[i] for i in order], [blobs[i] for i in order], labels[order]
    ds = tf.data.Dataset.from_tensor_slices((paths, blobs, labels))
    shuffled_before, shuffler = False, (EpochShuffle(new_seed(seed)) if training and shuffle else None)
    if training and shuffle and cache is None:
        ds = shuffler.apply(ds, buffer_size=max(n, 1))
        shuffled_before = True

    def load(path, blob, label):
        image = decode_file(path, blob, image_size=image_size, channels=channels,
                            interpolation=interpolation, crop_to_aspect_ratio=crop_to_aspect_ratio)
        return image, label

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=True)
    return finish_pipeline(ds, n=n, batch_size=batch_size, training=training, seed=seed, cache=cache,
                           shuffle=shuffle, shuffle_buffer=shuffle_buffer, augment=augment,
                           num_classes=num_classes, drop_remainder=drop_remainder,
                           shuffled_before=shuffled_before, shuffler=shuffler)


def prepare_array_images(images, *, channels=3) -> np.ndarray:
    """Validate an image array and give it a channel axis: (n, h, w[, c]) with c in 1, 3, 4."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ArgumentError("x", images.shape, "must have shape (n, height, width) or (n, height, width, 1|3|4)")
    if images.shape[-1] == 4:
        images = images[..., :3]
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number):
            raise ArgumentTypeError("x", images.dtype, "a numeric array of 0-255 pixels")
        if images.size and not np.all(np.isfinite(images)):
            raise ArgumentError("x", "non-finite values", "must contain only finite pixel values")
        low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
        if low < -0.5 or high > 255.5:  # clipping would flatten them silently (16-bit images, standardised ones)
            raise ArgumentError("x", f"pixel values in [{low:g}, {high:g}] ({images.dtype})",
                                "must be raw 0-255 pixels (the model's preprocessing is inside it)",
                                hint="Scale 16-bit images to 8 bits first (x / 257) and undo any standardisation")
        if np.issubdtype(images.dtype, np.floating) and 0.0 < high <= 1.0:  # rounding leaves only 0s and 1s
            raise ArgumentError("x", f"float pixel values in [{low:g}, {high:g}]",
                                "must be raw 0-255 pixels, not scaled to 0-1", hint="Multiply by 255 first")
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    if channels == 3 and images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    elif channels == 1 and images.shape[-1] == 3:
        images = np.round(images @ np.array([0.2989, 0.587, 0.114])).astype(np.uint8)[..., None]
    return images


def array_pipeline(images, labels, *, image_size, batch_size, training, seed=None, cache="auto",
                   shuffle=True, shuffle_buffer=None, augment=None, num_classes=None, channels=3,
                   interpolation="bilinear", drop_remainder=False):
    """tf.data pipeline over an in-memory image array (0-255, any numeric dtype)."""
    image_size = check_image_size(image_size)
    batch_size = check_batch_size(batch_size)
    images = prepare_array_images(images, channels=channels)
    n = len(images)
    cache = resolve_cache(cache, n=n, image_size=image_size, channels=channels)
    needs_resize = tuple(images.shape[1:3]) != tuple(image_size)
    if not needs_resize:
        cache = None  # already in memory and at size: caching would only copy it
    labels = np.asarray(labels)
    if training and shuffle and n > 1:  # see file_pipeline: random order before any cache
        order = np.random.default_rng(seed).permutation(n)
        images, labels = images[order], labels[order]
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    shuffled_before, shuffler = False, (EpochShuffle(new_seed(seed)) if training and shuffle else None)
    if training and shuffle and cache is None:
        ds = shuffler.apply(ds, buffer_size=int(shuffle_buffer or min(n, 4096)) or 1)
        shuffled_before = True
    if needs_resize:
        ds = ds.map(lambda x, y: (resize_uint8(x, image_size, interpolation=interpolation), y),
                    num_parallel_calls=AUTOTUNE, deterministic=True)
    return finish_pipeline(ds, n=n, batch_size=batch_size, training=training, seed=seed, cache=cache,
                           shuffle=shuffle, shuffle_buffer=shuffle_buffer, augment=augment,
                           num_classes=num_classes, drop_remainder=drop_remainder,
                           shuffled_before=shuffled_before, shuffler=shuffler)
