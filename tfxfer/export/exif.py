"""EXIF orientation inside a TensorFlow graph, so the serving signature turns photos upright.

TensorFlow's decoders ignore EXIF, while tfxfer's loaders (training, ``tfxfer predict``) and the
device runner turn a picture the way the camera meant (Pillow's ``ImageOps.exif_transpose``). The
SavedModel's ``serving_default`` signature must do the same with nothing but graph ops, so this
module reads the orientation from the encoded bytes with `tf.io.decode_raw` and bounded loops:

* JPEG: the first ``APP1`` segment starting ``Exif\\0\\0`` (the segments before the start of scan,
  skipping fill bytes as Pillow does); when it holds no orientation entry, the XMP ``APP1`` segment's
  ``tiff:Orientation`` (Pillow's fallback);
* PNG: the first ``eXIf`` chunk; when it holds no orientation entry, an uncompressed
  ``XML:com.adobe.xmp`` ``iTXt`` chunk.

The orientation is the last ``0x0112`` entry of the TIFF block's first IFD (either byte order;
BYTE, SHORT or LONG with count 1). Anything damaged, truncated or absent reads as 1 (upright), as
Pillow and every viewer ignore a broken EXIF block; values outside 2..8 change nothing, as in
``exif_transpose``. Not read (Pillow reads them; rare): EXIF in PNG ``tEXt``/``zTXt`` "Raw profile
type exif" chunks and compressed XMP ``iTXt`` chunks.

Example:
    >>> import io, numpy as np, tensorflow as tf
    >>> from PIL import Image
    >>> from tfxfer.export.exif import exif_orientation, upright
    >>> exif = Image.Exif(); exif[0x0112] = 6
    >>> out = io.BytesIO()
    >>> Image.fromarray(np.zeros((2, 4, 3), np.uint8)).save(out, format="JPEG", exif=exif)
    >>> int(exif_orientation(tf.constant(out.getvalue())))
    6
    >>> upright(tf.zeros((2, 4, 3), tf.uint8), 6).shape.as_list()
    [4, 2, 3]
"""

from __future__ import annotations

import tensorflow as tf

#: The EXIF orientation tag.
ORIENTATION_TAG = 0x0112
_EXIF_HEADER = b"Exif\x00\x00"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEY = b"XML:com.adobe.xmp\x00"
_PAD = 64  # zero bytes appended so every fixed-size read stays inside the buffer


class _Bytes:
    """Bounds-safe reads of a uint8 buffer (int32 values; out of range reads 0, callers check ``n``)."""

    def __init__(self, data):
        raw = tf.cast(tf.io.decode_raw(data, tf.uint8), tf.int32)
        self.n = tf.size(raw)
        self.buf = tf.concat([raw, tf.zeros([_PAD], tf.int32)], 0)

    def at(self, i):
        i = tf.convert_to_tensor(i, tf.int32)
        inside = (i >= 0) & (i < self.n)
        return tf.where(inside, tf.gather(self.buf, tf.clip_by_value(i, 0, self.n + _PAD - 1)), 0)

    def starts_with(self, pos, literal: bytes, end):
        """True where ``literal`` sits at ``pos`` and ends at or before ``end``."""
        want = tf.constant(list(literal), tf.int32)
        idx = pos + tf.range(len(literal), dtype=tf.int32)
        got = tf.gather(self.buf, tf.clip_by_value(idx, 0, self.n + _PAD - 1))
        return (pos >= 0) & (pos + len(literal) <= tf.minimum(end, self.n)) & tf.reduce_all(got == want)

    def u16(self, pos, little):
        a, b = self.at(pos), self.at(pos + 1)
        return tf.where(little, a + b * 256, a * 256 + b)

    def u32(self, pos, little):
        first, second = self.u16(pos, little), self.u16(pos + 2, little)
        high, low = tf.where(little, second, first), tf.where(little, first, second)
        # values of 2**31 and more are damaged offsets or lengths here: -1, which every caller refuses
        return tf.where(high >= 32768, -1, high * 65536 + low)


def _jpeg_segments(b: _Bytes):
    """(exif_start, exif_end, xmp_start, xmp_end) of the JPEG's metadata segments (start -1: none)."""
    none = tf.constant(-1, tf.int32)

    def cond(pos, done, *_):
        return tf.logical_not(done) & (pos + 1 < b.n)

    def body(pos, done, exif_s, exif_e, xmp_s, xmp_e):
        first, marker = b.at(pos), b.at(pos + 1)
        is_marker = tf.equal(first, 0xFF)
        stop = is_marker & ((marker == 0xDA) | (marker == 0xD9))  # start of scan / end of image
        fill = is_marker & ((marker == 0xFF) | (marker == 0x00))
        bare = is_marker & ((marker == 0xD8) | (marker == 0x01) | ((marker >= 0xD0) & (marker <= 0xD7)))
        length = b.u16(pos + 2, tf.constant(False))
        seg_s, seg_e = pos + 4, pos + 2 + length
        segment = is_marker & ~stop & ~fill & ~bare
        bad = segment & ((length < 2) | (seg_e > b.n))
        app1 = segment & ~bad & tf.equal(marker, 0xE1)
        new_exif = app1 & (exif_s < 0) & b.starts_with(seg_s, _EXIF_HEADER, seg_e)
        new_xmp = app1 & b.starts_with(seg_s, _XMP_HEADER, seg_e)  # Pillow keeps the last one
        exif_s = tf.where(new_exif, seg_s + len(_EXIF_HEADER), exif_s)
        exif_e = tf.where(new_exif, seg_e, exif_e)
        xmp_s = tf.where(new_xmp, seg_s + len(_XMP_HEADER), xmp_s)
        xmp_e = tf.where(new_xmp, seg_e, xmp_e)
        step = tf.where(~is_marker, 1, tf.where(fill & tf.equal(marker, 0xFF), 1, tf.where(segment, 2 + length, 2)))
        return pos + tf.maximum(step, 1), stop | bad, exif_s, exif_e, xmp_s, xmp_e

    out = tf.while_loop(cond, body, (tf.constant(2), tf.constant(False), none, none, none, none))
    return out[2:]


def _png_chunks(b: _Bytes):
    """(exif_start, exif_end, xmp_start, xmp_end) of the PNG's ``eXIf`` and XMP ``iTXt`` chunks."""
    none = tf.constant(-1, tf.int32)
    big = tf.constant(False)

    def cond(pos, done, *_):
        return tf.logical_not(done) & (pos + 8 <= b.n)

    def body(pos, done, exif_s, exif_e, xmp_s, xmp_e):
        length = b.u32(pos, big)
        data_s = pos + 8
        data_e = data_s + length
        bad = (length < 0) | (data_e > b.n)
        end = b.starts_with(pos + 4, b"IEND", data_s)
        new_exif = ~bad & (exif_s < 0) & b.starts_with(pos + 4, b"eXIf", data_s)
        xmp = (~bad & (xmp_s < 0) & b.starts_with(pos + 4, b"iTXt", data_s)
               & b.starts_with(data_s, _PNG_XMP_KEY, data_e) & tf.equal(b.at(data_s + len(_PNG_XMP_KEY)), 0))
        exif_s, exif_e = tf.where(new_exif, data_s, exif_s), tf.where(new_exif, data_e, exif_e)
        xmp_s, xmp_e = tf.where(xmp, data_s, xmp_s), tf.where(xmp, data_e, xmp_e)
        return data_e + 4, bad | end, exif_s, exif_e, xmp_s, xmp_e

    out = tf.while_loop(cond, body, (tf.constant(len(_PNG_SIGNATURE)), tf.constant(False), none, none, none, none))
    return out[2:]


def _tiff_orientation(b: _Bytes, start, end):
    """(found, value) of the orientation entry of the TIFF block ``[start, end)``'s first IFD."""
    little = b.starts_with(start, b"II*\x00", end)
    valid = little | b.starts_with(start, b"MM\x00*", end)
    ifd = start + b.u32(start + 4, little)
    valid &= (ifd >= start + 8) & (ifd + 2 <= end)
    count = b.u16(ifd, little)
    fits = tf.maximum((end - ifd - 2) // 12, 0)  # entries wholly inside the block (Pillow stops at a short read)
    count = tf.where(valid, tf.minimum(count, fits), 0)
    entry = ifd + 2 + 12 * tf.range(count, dtype=tf.int32)
    hits = tf.cast(tf.where(tf.equal(b.u16(entry, little), ORIENTATION_TAG))[:, 0], tf.int32)
    found = tf.size(hits) > 0
    last = ifd + 2 + 12 * tf.reduce_max(tf.concat([hits, [0]], 0))  # Pillow keeps the last entry of a tag
    kind, n_values = b.u16(last + 2, little), b.u32(last + 4, little)
    value = tf.where(tf.equal(kind, 1), b.at(last + 8),
                     tf.where(tf.equal(kind, 3), b.u16(last + 8, little),
                              tf.where(tf.equal(kind, 4), b.u32(last + 8, little), -1)))
    value = tf.where(found & tf.equal(n_values, 1), value, -1)  # a tuple or unknown type: no turn
    return found, value


def _xmp_orientation(data, start, end):
    """The digit after the first ``tiff:Orientation="`` or ``tiff:Orientation>`` in ``data[start:end]``, or -1."""
    text = tf.strings.substr(data, tf.maximum(start, 0), tf.maximum(end - start, 0))
    pattern = r'tiff:Orientation(="|>)[0-9]'
    has = (start >= 0) & tf.strings.regex_full_match(text, r"(?s).*" + pattern + r".*")
    digit = tf.strings.regex_replace(text, r'(?s)^.*?tiff:Orientation(?:="|>)([0-9]).*$', r"\1")
    return tf.where(has, tf.strings.to_number(tf.where(has, digit, "1"), tf.int32), -1)


def exif_orientation(data):
    """The EXIF orientation (int32 scalar, 1 = upright) of encoded image bytes (a scalar string tensor).

    JPEG and PNG are read (see the module docstring); any other format, or a missing or damaged block,
    gives 1. Values are those of the EXIF tag (2..8 turn or mirror the picture, anything else does not).
    """
    data = tf.convert_to_tensor(data, tf.string)
    b = _Bytes(data)
    is_jpeg = b.starts_with(0, b"\xff\xd8", b.n)
    is_png = b.starts_with(0, _PNG_SIGNATURE, b.n)
    none = tf.constant(-1, tf.int32)
    exif_s, exif_e, xmp_s, xmp_e = tf.cond(
        is_jpeg, lambda: _jpeg_segments(b),
        lambda: tf.cond(is_png, lambda: _png_chunks(b), lambda: (none, none, none, none)))
    found, value = tf.cond(exif_s >= 0, lambda: _tiff_orientation(b, exif_s, exif_e),
                           lambda: (tf.constant(False), none))
    value = tf.cond(found, lambda: value, lambda: _xmp_orientation(data, xmp_s, xmp_e))
    return tf.where(value < 1, 1, value)


def upright(image, orientation):
    """``[h, w, c]`` pixels turned as EXIF ``orientation`` says (Pillow's ``exif_transpose``:
    2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
    counter-clockwise; anything else unchanged)."""
    image = tf.convert_to_tensor(image)
    orientation = tf.convert_to_tensor(orientation, tf.int32)
    turned = [
        lambda: tf.reverse(image, [1]),
        lambda: tf.reverse(image, [0, 1]),
        lambda: tf.reverse(image, [0]),
        lambda: tf.transpose(image, [1, 0, 2]),
        lambda: tf.image.rot90(image, k=3),
        lambda: tf.reverse(tf.transpose(image, [1, 0, 2]), [0, 1]),
        lambda: tf.image.rot90(image, k=1),
    ]
    index = tf.where((orientation >= 2) & (orientation <= 8), orientation - 1, 0)
    out = tf.switch_case(index, [lambda: image] + turned)
    out.set_shape([None, None, image.shape[-1]])
    return out


def decode_upright_rgb(data):
    """Encoded bytes -> uint8 ``[h, w, 3]``: `tfxfer.data.decode.decode_rgb`, then the EXIF orientation."""
    from tfxfer.data.decode import decode_rgb

    return upright(decode_rgb(data), exif_orientation(data))
