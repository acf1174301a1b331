"""The serving graph's EXIF orientation (`tfxfer.export.exif`) reads what Pillow reads and turns the
pixels the way ``ImageOps.exif_transpose`` does: every orientation, JPEG and PNG, both byte orders,
XMP fallback, damaged blocks, inside a traced ``tf.function``."""

import io
import struct
import warnings

import numpy as np
import pytest

from tfxfer.export.exif import exif_orientation, upright

PIXELS = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)  # every pixel different, not square


def _save(fmt, *, orientation=None, **kw):
    from PIL import Image

    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif
    out = io.BytesIO()
    Image.fromarray(PIXELS).save(out, format=fmt, **kw)
    return out.getvalue()


def _with_app1(jpeg: bytes, payload: bytes) -> bytes:
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _big_endian_exif(orientation, kind=3):
    value = struct.pack(">HH", orientation, 0) if kind == 3 else struct.pack(">I", orientation)
    entries = struct.pack(">HHI4s", 0x010F, 2, 4, b"abc\0") + struct.pack(">HHI", 0x0112, kind, 1) + value
    return b"Exif\0\0" + b"MM\0*" + struct.pack(">IH", 8, 2) + entries + struct.pack(">I", 0)


def _pillow(data):
    from PIL import Image, ImageOps

    image = Image.open(io.BytesIO(data))
    return image.getexif().get(0x0112, 1), ImageOps.exif_transpose(image)


@pytest.fixture(scope="module")
def traced():
    import tensorflow as tf

    return tf.function(exif_orientation, input_signature=[tf.TensorSpec([], tf.string)])


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_every_orientation_is_read_and_applied_as_pillow_does(fmt, traced):
    import tensorflow as tf
    from PIL import Image

    turn = tf.function(upright, input_signature=[tf.TensorSpec([None, None, 3], tf.uint8),
                                                 tf.TensorSpec([], tf.int32)])
    methods = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
               5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}
    for orientation in range(1, 10):
        data = _save(fmt, orientation=orientation, **({"quality": 95} if fmt == "JPEG" else {}))
        expected, _ = _pillow(data)
        got = int(traced(tf.constant(data)))
        assert got == expected == orientation, orientation
        # the turn itself, on the same decoded pixels (TensorFlow's and Pillow's JPEG decoders differ)
        decoded = tf.io.decode_image(data, channels=3).numpy()
        method = methods.get(orientation)
        want = np.asarray(Image.fromarray(decoded).transpose(method)) if method is not None else decoded
        np.testing.assert_array_equal(turn(tf.constant(decoded), got).numpy(), want, err_msg=str(orientation))
    if fmt == "PNG":  # exactly what the device runner and the loaders see (same pixels, same turn)
        data = _save(fmt, orientation=6)
        _, pillow = _pillow(data)
        np.testing.assert_array_equal(turn(tf.io.decode_image(data, channels=3), 6).numpy(),
                                      np.asarray(pillow.convert("RGB")))


@pytest.mark.parametrize("orientation,kind", [(3, 3), (6, 3), (8, 4)])
def test_big_endian_blocks_and_long_values(orientation, kind, traced):
    import tensorflow as tf

    data = _with_app1(_save("JPEG"), _big_endian_exif(orientation, kind))
    assert _pillow(data)[0] == orientation
    assert int(traced(tf.constant(data))) == orientation


def test_xmp_orientation_is_the_fallback(traced):
    import tensorflow as tf
    from PIL import PngImagePlugin

    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
    jpeg = _save("JPEG", xmp=xmp)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    png = _save("PNG", pnginfo=info)
    both = _with_app1(jpeg, _big_endian_exif(3))  # an EXIF entry wins over XMP
    for data, want in ((jpeg, 6), (png, 6), (both, 3)):
        assert _pillow(data)[0] == want
        assert int(traced(tf.constant(data))) == want


def test_damaged_absent_and_foreign_blocks_read_as_upright(traced):
    import tensorflow as tf

    cases = {
        "empty": b"",
        "soi only": b"\xff\xd8",
        "truncated block": _with_app1(_save("JPEG"), _big_endian_exif(6)[:20]),
        "offset past the end": _with_app1(_save("JPEG"), b"Exif\0\0MM\0*" + struct.pack(">I", 4000) + b"\0" * 8),
        "bad byte order": _with_app1(_save("JPEG"), b"Exif\0\0XX\0*" + _big_endian_exif(6)[10:]),
        "segment length past the end": _save("JPEG")[:2] + b"\xff\xe1\xff\xf0Exif\0\0",
        "no exif": _save("JPEG"),
        "png cut short": _save("PNG", orientation=6)[:40],
        "gif": _save("GIF"),
        "bmp": _save("BMP"),
    }
    for name, data in cases.items():
        assert int(traced(tf.constant(data))) == 1, name


def test_mutated_exif_blocks_agree_with_pillow(traced):
    """Random byte flips in and cuts of an EXIF-carrying JPEG: wherever Pillow reads an orientation
    that turns the picture (2..8), the graph reads the same; elsewhere both leave the picture as is."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    base = _with_app1(_save("JPEG"), _big_endian_exif(6))
    checked = 0
    for i in range(60):
        data = bytearray(base)
        for _ in range(2):
            data[rng.integers(2, 64)] = rng.integers(0, 256)
        data = bytes(data[: rng.integers(8, len(data))]) if i % 2 else bytes(data)
        try:
            with warnings.catch_warnings():  # "Corrupt EXIF data": what the test is about
                warnings.simplefilter("ignore")
                expected = _pillow(data)[0]
        except Exception:  # Pillow cannot open it: serving's decoder refuses it too
            continue
        turns = expected if isinstance(expected, int) and 2 <= expected <= 8 else 1
        got = int(traced(tf.constant(data)))
        assert (got if 2 <= got <= 8 else 1) == turns, (i, expected, got)
        checked += 1
    assert checked > 20

