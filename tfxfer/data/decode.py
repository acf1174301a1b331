"""THE decode and resize of an image: encoded bytes -> RGB -> (grayscale) -> model size, as uint8.

Training pipelines, ``tfxfer predict`` / ``evaluate``, the SavedModel's serving signatures and the
TensorFlow-free device runner (``export/litert_runner.py``, which re-implements these steps in
numpy + Pillow and is tested pixel for pixel against this module) all bring a picture to the
model the same way (DESIGN.md items 15 and 16):

1. decode to RGB first (`decode_rgb`: JPEG incl. CMYK, PNG 8/16-bit, palette and alpha (dropped),
   GIF's first frame, BMP), because libjpeg cannot turn CMYK into grayscale and GIF refuses
   ``channels=1``; 16-bit samples become 8-bit by dropping the low byte. JPEGs use libjpeg's
   accurate integer DCT (`JPEG_DCT_METHOD`), Pillow's and libjpeg's default, so TensorFlow and the
   device runner get the same pixels (TensorFlow's own default, the fast DCT, differs from Pillow by
   up to 18 grey levels on quality-95 JPEGs);
2. grayscale models: ``round(0.2989 R + 0.5870 G + 0.1140 B)`` (`to_channels`);
3. `resize_pixels`: bilinear with half-pixel centres and **no** antialiasing (what every model
   tfxfer trained has seen), rounded and clipped to 0-255.

TIFF and WebP are read by the file loaders through Pillow (tfxfer.data.scan converts them); the
serving signature refuses them with a clear error, as TensorFlow cannot decode them.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfxfer.data.decode import resize_pixels, to_channels
    >>> image = tf.constant(np.full((4, 4, 3), 200, np.uint8))
    >>> resize_pixels(to_channels(image, 1), (2, 2)).numpy()[..., 0].tolist()
    [[200, 200], [200, 200]]
"""

from __future__ import annotations

import tensorflow as tf

#: Weights of the RGB -> grayscale conversion (tf.image.rgb_to_grayscale's, ITU-R 601).
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)
#: How pixels are resized everywhere (the device runner reproduces it in numpy).
RESIZE_METHOD, RESIZE_ANTIALIAS = "bilinear", False
#: The inverse DCT of every JPEG decode: libjpeg's accurate integer method (JDCT_ISLOW), which Pillow
#: (the device runner, the loaders' conversions) uses too; ``tf.io.decode_image`` has no such option
#: and uses the fast one.
JPEG_DCT_METHOD = "INTEGER_ACCURATE"


def decode_rgb(data):
    """Encoded image bytes (a scalar string tensor) -> uint8 ``[h, w, 3]`` (first frame of a GIF).

    JPEGs are decoded with `JPEG_DCT_METHOD` (pixel for pixel what Pillow gives), every other format
    by ``tf.io.decode_image``.
    """
    data = tf.convert_to_tensor(data, dtype=tf.string)
    image = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=3, dct_method=JPEG_DCT_METHOD),
        lambda: tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False),
    )
    image.set_shape([None, None, 3])
    return image


def to_channels(image, channels: int):
    """uint8 ``[h, w, 3]`` RGB -> uint8 ``[h, w, channels]`` (1: rounded ITU-R 601 luma)."""
    if channels == 3:
        return image
    gray = tf.image.rgb_to_grayscale(tf.cast(image, tf.float32))
    return tf.cast(tf.round(gray), tf.uint8)


def resize_pixels(image, image_size, *, interpolation: str = RESIZE_METHOD):
    """``[h, w, c]`` or ``[b, h, w, c]`` pixels -> uint8 at ``image_size`` (bilinear, half-pixel centres,
    no antialiasing; rounded, clipped)."""
    height, width = image_size
    resized = tf.image.resize(tf.cast(image, tf.float32), (height, width), method=interpolation,
                              antialias=RESIZE_ANTIALIAS)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def decode_for_model(data, *, image_size, channels: int):
    """Encoded bytes -> uint8 ``[height, width, channels]``: `decode_rgb`, `to_channels`, `resize_pixels`."""
    return resize_pixels(to_channels(decode_rgb(data), channels), image_size)
