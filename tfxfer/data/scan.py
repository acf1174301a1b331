"""Scan image files before training: skip what cannot be read, say why, hash what can.

Each file is read once (SHA-256 of its bytes, for duplicate and leakage detection) and its header
is parsed by Pillow. Formats TensorFlow decodes exactly (JPEG incl. CMYK, PNG incl. 16-bit, palette
and alpha, GIF, 24-bit BMP, WebP) are then fully decoded once by TensorFlow itself in a parallel
tf.data pass, so the training pipeline can never hit an undecodable file. Anything else Pillow can
read (TIFF, palette/grayscale BMP, 1-bit images, ...) is converted once to an in-memory 8-bit RGB
PNG. Files that fail are classified: empty, not an image, truncated, corrupt, too large.

Example:
    >>> import os, tempfile, numpy as np
    >>> from PIL import Image
    >>> from tfxfer.data.scan import scan_images
    >>> d = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((8, 8, 3), "uint8")).save(os.path.join(d, "ok.png"))
    >>> open(os.path.join(d, "empty.jpg"), "wb").close()
    >>> result = scan_images([os.path.join(d, "ok.png"), os.path.join(d, "empty.jpg")])
    >>> len(result.ok), [s["reason"] for s in result.skipped]
    (1, ['empty_file'])
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import os
import warnings
from typing import Sequence

import numpy as np

#: Extensions (lower case) that are scanned as images; other files are skipped and counted.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_SYSTEM_FILES = {"thumbs.db", "desktop.ini", "icon\r"}
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")
# (format, mode) pairs that tf.io.decode_image turns into the same pixels Pillow does.
_TF_EXACT = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"L", "LA", "RGB", "RGBA", "P", "PA", "I;16", "I;16B", "I;16L", "I"},
    "GIF": {"P", "L", "RGB", "RGBA"},
    "BMP": {"RGB"},
    "WEBP": {"RGB", "RGBA"},
}


@dataclasses.dataclass
class ScannedImage:
    path: str
    sha256: str
    blob: bytes = b""  # non-empty when the pipeline must decode these bytes instead of the file


@dataclasses.dataclass
class ScanResult:
    ok: list  # ScannedImage, in input order
    skipped: list  # {"path", "reason", "detail"}
    converted: list  # {"path", "format", "mode", "why"}


def skip_reason_for_name(path: str) -> str | None:
    """"hidden_file" / "unsupported_extension" from the name alone, else None."""
    base = os.path.basename(path)
    if base.startswith(".") or base.lower() in _SYSTEM_FILES:
        return "hidden_file"
    if not base.lower().endswith(IMAGE_EXTENSIONS):
        return "unsupported_extension"
    return None


def _classify_load_error(exc: Exception) -> str:
    text = str(exc).lower()
    if "truncat" in text or "premature" in text:
        return "truncated"
    return "corrupt"


def to_rgb_png(image) -> bytes:
    """Pillow image (any mode) -> 8-bit RGB PNG bytes; 16-bit/32-bit/float scaled, alpha dropped."""
    image.seek(0) if getattr(image, "n_frames", 1) > 1 else None
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I":
            arr = arr / 257.0 if arr.max(initial=0) > 255 else arr
        elif arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
        from PIL import Image

        image = Image.fromarray(arr, mode="L")
    rgb = image.convert("RGB")
    out = io.BytesIO()
    rgb.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _inspect(path: str):
    """Read, hash and parse one file. Returns (status, payload) with status ok/convert/skip."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        return "skip", ("missing_file", str(exc))
    except OSError as exc:
        return "skip", ("unreadable", f"{type(exc).__name__}: {exc}")
    if not data:
        return "skip", ("empty_file", "0 bytes")
    digest = hashlib.sha256(data).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DecompressionBombWarning, palette transparency notes
        try:
            image = Image.open(io.BytesIO(data))
            fmt, mode = image.format, image.mode
        except UnidentifiedImageError:
            if data.startswith(_MAGIC):
                return "skip", ("corrupt", "image signature present but the header cannot be parsed")
            return "skip", ("not_an_image", "content is not a known image format (first bytes "
                                            f"{data[:8]!r})")
        except Image.DecompressionBombError as exc:
            return "skip", ("too_large", str(exc))
        except Exception as exc:  # Pillow raises SyntaxError/ValueError/OSError for bad headers
            return "skip", (_classify_load_error(exc), f"{type(exc).__name__}: {exc}")
        if mode in _TF_EXACT.get(fmt, ()):
            return "ok", (digest, fmt, mode)
        return _convert(image, data, digest, fmt, mode, why=f"{fmt} {mode} is not decoded exactly by TensorFlow")


def _convert(image, data, digest, fmt, mode, *, why):
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if image is None:
                image = Image.open(io.BytesIO(data))
            image.load()
            blob = to_rgb_png(image)
        except Image.DecompressionBombError as exc:
            return "skip", ("too_large", str(exc))
        except Exception as exc:  # any decode failure means the file is unusable
            return "skip", (_classify_load_error(exc), f"{type(exc).__name__}: {exc}")
    return "convert", (digest, fmt, mode, blob, why)


def _tf_decodable(paths: Sequence[str]) -> np.ndarray:
    """Boolean mask: which files tf.io.decode_image fully decodes (parallel, in C++)."""
    import tensorflow as tf

    if not paths:
        return np.zeros(0, bool)

    def decode(i, p):
        img = tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
        return i, tf.shape(img)[0] * 0  # force the full decode, keep output tiny

    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.ignore_errors().batch(1024)
    ok = np.zeros(len(paths), bool)
    for idx, _ in ds.as_numpy_iterator():
        ok[idx] = True
    return ok


def scan_images(paths: Sequence[str], *, root: str | None = None, workers: int | None = None) -> ScanResult:
    """Validate image files; see the module docstring.

    Args:
        paths: files to scan (names were already filtered with `skip_reason_for_name` or not).
        root: paths in the report are made relative to it.
        workers: threads for reading/hashing/parsing (default: CPU count + 2, at most 16).

    Returns:
        `ScanResult`; ``ok`` keeps the input order.
    """
    def rel(p):
        return os.path.relpath(p, root) if root else p

    workers = workers or min(16, (os.cpu_count() or 1) + 2)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_inspect, paths))
    skipped, converted = [], []
    records: list[ScannedImage | None] = [None] * len(paths)
    native = []
    for i, (path, (status, payload)) in enumerate(zip(paths, results)):
        if status == "skip":
            skipped.append({"path": rel(path), "reason": payload[0], "detail": payload[1]})
        elif status == "ok":
            records[i] = ScannedImage(path, payload[0])
            native.append(i)
        else:
            digest, fmt, mode, blob, why = payload
            records[i] = ScannedImage(path, digest, blob)
            converted.append({"path": rel(path), "format": fmt, "mode": mode, "why": why})
    decodable = _tf_decodable([paths[i] for i in native])
    for i, ok in zip(native, decodable):
        if ok:
            continue
        with open(paths[i], "rb") as f:
            data = f.read()
        status, payload = _convert(None, data, records[i].sha256, None, None,
                                   why="TensorFlow could not decode it; Pillow could")
        if status == "skip":
            skipped.append({"path": rel(paths[i]), "reason": payload[0], "detail": payload[1]})
            records[i] = None
        else:
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                fmt, mode = im.format, im.mode
            records[i] = ScannedImage(paths[i], payload[0], payload[3])
            converted.append({"path": rel(paths[i]), "format": fmt, "mode": mode, "why": payload[4]})
    skipped.sort(key=lambda s: s["path"])
    converted.sort(key=lambda s: s["path"])
    return ScanResult([r for r in records if r is not None], skipped, converted)
