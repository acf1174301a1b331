"""Test data factory: a messy image folder with every broken-file kind, simple class folders."""

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image


def gradient(h=24, w=32, seed=0):
    """A distinct RGB image per seed (so content hashes differ)."""
    rng = np.random.default_rng(seed)
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, w)[None, :]
    a[..., 1] = np.linspace(0, 255, h)[:, None]
    a[..., 2] = rng.integers(0, 256, (h, w))  # noise: every seed gives different content
    return a


def png16_rgb(a16: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    h, w, _ = a16.shape
    raw = b"".join(b"\x00" + a16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


#: Valid files per class in the messy folder, by kind -> writer(path, seed).
def _save(mode, fmt, **kw):
    def write(path, seed):
        img = Image.fromarray(gradient(seed=seed))
        if mode == "P":
            img = img.convert("P", palette=Image.ADAPTIVE)
        elif mode == "I;16":
            img = Image.fromarray(gradient(seed=seed)[..., 2].astype(np.uint16) * 257)
        elif mode != "RGB":
            img = img.convert(mode)
        img.save(path, format=fmt, **kw)
    return write


VALID_KINDS = {
    "rgb.jpg": _save("RGB", "JPEG", quality=90),
    "gray.jpg": _save("L", "JPEG"),
    "cmyk.jpg": _save("CMYK", "JPEG"),
    "rgb.png": _save("RGB", "PNG"),
    "gray.png": _save("L", "PNG"),
    "rgba.png": _save("RGBA", "PNG"),
    "palette.png": _save("P", "PNG"),
    "gray16.png": _save("I;16", "PNG"),
    "rgb16.png": lambda path, seed: open(path, "wb").write(png16_rgb(gradient(seed=seed).astype(np.uint16) * 257)),
    "rgb.bmp": _save("RGB", "BMP"),
    "palette.bmp": _save("P", "BMP"),
    "palette.gif": _save("P", "GIF"),
    "gray16.tif": _save("I;16", "TIFF"),
}


def _jpeg_bytes(seed):
    out = io.BytesIO()
    Image.fromarray(gradient(seed=seed)).save(out, format="JPEG", quality=90)
    return out.getvalue()


def _png_bytes(seed):
    out = io.BytesIO()
    Image.fromarray(gradient(seed=seed)).save(out, format="PNG")
    return out.getvalue()


def _corrupt_jpeg(path, seed):
    data = bytearray(_jpeg_bytes(seed))
    rng = np.random.default_rng(seed)
    data[20:400] = rng.integers(0, 256, 380, dtype=np.uint8).tobytes()  # tables destroyed, magic kept
    open(path, "wb").write(bytes(data))


BROKEN_KINDS = {  # name -> (writer, expected reason)
    "corrupt.jpg": (_corrupt_jpeg, "corrupt"),
    "zero.png": (lambda p, s: open(p, "wb").close(), "empty_file"),
    "truncated.png": (lambda p, s: open(p, "wb").write(_png_bytes(s)[: len(_png_bytes(s)) // 2]), "truncated"),
    "truncated.jpg": (lambda p, s: open(p, "wb").write(_jpeg_bytes(s)[: len(_jpeg_bytes(s)) // 2]), "truncated"),
    "notreally.jpg": (lambda p, s: open(p, "w").write("this is text, not a JPEG\n"), "not_an_image"),
    ".DS_Store": (lambda p, s: open(p, "wb").write(b"\x00\x00\x00\x01Bud1" + bytes(64)), "hidden_file"),
    "readme.txt": (lambda p, s: open(p, "w").write("notes about the photos\n"), "unsupported_extension"),
}


def make_messy_folder(root, classes=("cat", "dog")):
    """Every valid kind and every broken kind in each class folder; returns expected skip counts."""
    seed = 0
    expected = {}
    for c in classes:
        folder = os.path.join(root, c)
        os.makedirs(folder, exist_ok=True)
        for name, write in VALID_KINDS.items():
            seed += 1
            write(os.path.join(folder, name), seed)
        for name, (write, reason) in BROKEN_KINDS.items():
            seed += 1
            write(os.path.join(folder, name), seed)
            expected[reason] = expected.get(reason, 0) + 1
    return expected


def make_simple_folder(root, counts, *, size=(20, 24), seed0=0):
    """``counts``: {class: n} distinct PNGs per class."""
    seed = seed0
    for c, n in counts.items():
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(n):
            seed += 1
            Image.fromarray(gradient(*size, seed=seed)).save(os.path.join(root, c, f"{i:03d}.png"))
    return root
