"""Scan image files before training: skip what cannot be read, say why, hash what can.

Each file is read once (SHA-256 of its bytes, for duplicate and leakage detection) and its header
is parsed by Pillow. Formats TensorFlow decodes exactly (JPEG incl. CMYK, PNG incl. 16-bit, palette
and alpha, GIF, 24-bit BMP, WebP) are then fully decoded once by TensorFlow itself in a parallel
tf.data pass, so the training pipeline can never hit an undecodable file. Anything else Pillow can
read (TIFF, palette/grayscale BMP, 1-bit images, ...) is converted once to an in-memory 8-bit RGB
PNG, and so is any image whose EXIF orientation is not "upright" (TensorFlow ignores EXIF; the
converted pixels are turned the way the camera meant). Files that fail are classified: empty, not
an image, truncated, corrupt, too large, size mismatch (the header and TensorFlow's decoded pixels
disagree).

Hostile files cannot hang or exhaust the scan: only regular files are opened (a FIFO, a device or
a socket, or a link to one, is skipped as ``not_a_regular_file`` before it is opened), at most the
file's own size is read, a file name that is not valid UTF-8 is skipped as ``undecodable_name``,
and an image whose header declares more than `MAX_IMAGE_PIXELS` pixels is skipped as
``too_large`` before anything is decoded. (This logic lives here until the shared decoder,
``tfxfer.data.decode``, exists.)

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
import contextlib
import dataclasses
import hashlib
import io
import os
import stat
import threading
import warnings
from typing import Sequence

import numpy as np

#: Extensions (lower case) that are scanned as images; other files are skipped and counted.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_SYSTEM_FILES = {"thumbs.db", "desktop.ini", "icon\r"}
#: Images whose header declares more pixels (width x height) are skipped before decoding (Pillow's
#: own default decompression-bomb limit, enforced here at 1x instead of Pillow's 2x).
MAX_IMAGE_PIXELS = 89_478_485
#: Files bigger than this are skipped as too large without being read.
MAX_FILE_BYTES = 512 << 20
_EXIF_ORIENTATION = 0x0112
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


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of regular file ``path``, reading at most its own size.

    A FIFO, device or socket (or a link to one) is refused before it is opened, so nothing blocks
    and nothing endless (``/dev/zero``) is read.

    Raises:
        DataError: ``path`` is not a regular file, or is bigger than ``max_bytes``.
        OSError: the file cannot be opened or read.

    Example:
        >>> read_regular_file("/dev/zero")
        Traceback (most recent call last):
        ...
        tfxfer.errors.DataError: /dev/zero is a character device, not a regular file
    """
    from tfxfer.errors import DataError

    path = os.fspath(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path} is {_file_kind(st.st_mode)}, not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)  # the file opened may not be the one checked (a swapped link)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path} is {_file_kind(st.st_mode)}, not a regular file")
        if st.st_size > max_bytes:
            raise DataError(f"{path} is {st.st_size} bytes, more than the {max_bytes} bytes read at most")
        chunks, left = [], st.st_size
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


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


def _orientation(image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a damaged EXIF block is ignored, as every viewer does
        return 1


def _inspect(path: str):
    """Read, hash and parse one file. Returns (status, payload) with status ok/convert/skip."""
    from tfxfer.errors import DataError

    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        return "skip", ("undecodable_name", f"name bytes {os.fsencode(path)[-60:]!r} are not UTF-8")
    try:
        data = read_regular_file(path)
    except FileNotFoundError as exc:
        return "skip", ("missing_file", str(exc))
    except DataError as exc:
        reason = "too_large" if "bytes, more than" in str(exc) else "not_a_regular_file"
        return "skip", (reason, str(exc))
    except OSError as exc:
        return "skip", ("unreadable", f"{type(exc).__name__}: {exc}")
    return _inspect_data(data)



_WARNINGS_LOCK = threading.RLock()  # re-entrant: _inspect_data holds it while _convert takes it again


@contextlib.contextmanager
def _quiet_pillow():
    """Silence Pillow's warnings while one image is inspected, safely from the reader threads.

    ``warnings.catch_warnings`` saves and restores the process-wide filter list, so two threads
    using it at once can restore each other's "ignore" for good (and swallow every later warning,
    a `DataWarning` about leakage included): the lock makes each save/restore pair atomic.
    """
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield

def _inspect_data(data: bytes):
    """Hash and parse one file's bytes. Returns (status, payload) with status ok/convert/skip."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        return "skip", ("empty_file", "0 bytes")
    digest = hashlib.sha256(data).hexdigest()
    with _quiet_pillow():  # DecompressionBombWarning, palette transparency notes
        try:
            image = Image.open(io.BytesIO(data))
            fmt, mode = image.format, image.mode
            width, height = image.size
        except UnidentifiedImageError:
            if data.startswith(_MAGIC):
                return "skip", ("corrupt", "image signature present but the header cannot be parsed")
            return "skip", ("not_an_image", "content is not a known image format (first bytes "
                                            f"{data[:8]!r})")
        except Image.DecompressionBombError as exc:
            return "skip", ("too_large", str(exc))
        except Exception as exc:  # Pillow raises SyntaxError/ValueError/OSError for bad headers
            return "skip", (_classify_load_error(exc), f"{type(exc).__name__}: {exc}")
        if width * height > MAX_IMAGE_PIXELS:
            return "skip", ("too_large", f"the header declares {width}x{height} = {width * height} pixels, "
                                         f"more than MAX_IMAGE_PIXELS={MAX_IMAGE_PIXELS}")
        if width < 1 or height < 1:
            return "skip", ("corrupt", f"the header declares a {width}x{height} image")
        orientation = _orientation(image)
        if orientation != 1:
            return _convert(image, data, digest, fmt, mode, why=f"EXIF orientation {orientation} applied")
        if mode in _TF_EXACT.get(fmt, ()):
            return "ok", (digest, fmt, mode, (height, width))
        return _convert(image, data, digest, fmt, mode, why=f"{fmt} {mode} is not decoded exactly by TensorFlow")


def _convert(image, data, digest, fmt, mode, *, why):
    from PIL import Image

    with _quiet_pillow():
        try:
            if image is None:
                image = Image.open(io.BytesIO(data))
            image.load()
            if _orientation(image) != 1:
                from PIL import ImageOps

                image = ImageOps.exif_transpose(image)
            blob = to_rgb_png(image)
        except Image.DecompressionBombError as exc:
            return "skip", ("too_large", str(exc))
        except Exception as exc:  # any decode failure means the file is unusable
            return "skip", (_classify_load_error(exc), f"{type(exc).__name__}: {exc}")
    return "convert", (digest, fmt, mode, blob, why)


def check_image_bytes(data: bytes) -> tuple[str, bytes]:
    """What a reader of one image (predict, serving, a device runner) must feed its decoder.

    Returns ``("ok", data)`` when TensorFlow decodes the bytes exactly as they are, or
    ``("convert", png)`` with an upright 8-bit RGB PNG in their place (EXIF orientation applied;
    TIFF, 1-bit, palette BMP, ...), the same choice the file loaders make for training. A header
    declaring more than `MAX_IMAGE_PIXELS` pixels is refused before anything is decoded.

    Raises:
        DataError: the bytes are empty, not an image, truncated, corrupt or too large; the message
            starts with the `tfxfer.data.SKIP_REASONS` key.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> out = io.BytesIO(); Image.new("RGB", (4, 2)).save(out, format="PNG")
        >>> check_image_bytes(out.getvalue())[0]
        'ok'
        >>> check_image_bytes(b"hello")
        Traceback (most recent call last):
        ...
        tfxfer.errors.DataError: not_an_image: content is not a known image format (first bytes b'hello')
    """
    from tfxfer.errors import DataError

    status, payload = _inspect_data(bytes(data))
    if status == "skip":
        raise DataError(f"{payload[0]}: {payload[1]}")
    if status == "convert":
        return "convert", payload[3]
    return "ok", bytes(data)


def _tf_decodable(paths: Sequence[str]) -> np.ndarray:
    """(height, width) TensorFlow decodes for each file, (-1, -1) where it cannot (parallel, in C++)."""
    import tensorflow as tf

    if not paths:
        return np.zeros((0, 2), np.int64)

    def decode(i, p):
        img = tf.io.decode_image(tf.io.read_file(p), channels=3, expand_animations=False)
        return i, tf.cast(tf.shape(img)[:2], tf.int64)  # forces the full decode, keeps the output tiny

    names = [os.fsencode(p) for p in paths]  # bytes: any file name the OS accepts
    ds = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), names))
    ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    ds = ds.ignore_errors().batch(1024)
    sizes = np.full((len(paths), 2), -1, np.int64)
    for idx, hw in ds.as_numpy_iterator():
        sizes[idx] = hw
    return sizes


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
            native.append((i, payload[3]))
        else:
            digest, fmt, mode, blob, why = payload
            records[i] = ScannedImage(path, digest, blob)
            converted.append({"path": rel(path), "format": fmt, "mode": mode, "why": why})
    decoded = _tf_decodable([paths[i] for i, _ in native])
    for (i, header), hw in zip(native, decoded):
        if hw[0] >= 0 and tuple(int(v) for v in hw) == tuple(header):
            continue
        if hw[0] >= 0:
            skipped.append({"path": rel(paths[i]), "reason": "size_mismatch",
                            "detail": f"the header says {header[1]}x{header[0]}, TensorFlow decoded "
                                      f"{int(hw[1])}x{int(hw[0])}"})
            records[i] = None
            continue
        try:
            data = read_regular_file(paths[i])
        except Exception as exc:  # changed since the first read (a swapped or removed file)
            skipped.append({"path": rel(paths[i]), "reason": "unreadable", "detail": f"{type(exc).__name__}: {exc}"})
            records[i] = None
            continue
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
