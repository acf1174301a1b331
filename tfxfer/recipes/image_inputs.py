"""The image files ``tfxfer predict`` and ``tfxfer evaluate --target`` read: listing them, counting the
ones left out, decoding them the way training pipelines do.

Example:
    >>> skip_note([{"reason": "empty_file"}, {"reason": "undecodable_name"}, {"reason": "empty_file"}])
    '2 empty_file, 1 undecodable_name'
"""

from __future__ import annotations

import collections
import os
import re

import numpy as np

from tfxfer.data.images import is_utf8_name, shown_path
from tfxfer.errors import ArgumentError, DataError, bounded_repr

#: The image loaders' reason for a file whose name is not valid UTF-8 (`tfxfer.data.SKIP_REASONS`).
UNDECODABLE_NAME = "undecodable_name"
#: The reasons `tfxfer.data.check_image_bytes` starts its message with (`tfxfer.data.SKIP_REASONS`).
_LOADER_REASONS = ("empty_file", "not_an_image", "truncated", "corrupt", "too_large", "size_mismatch")


def _undecodable(path, what: str = "name") -> dict:
    return {"path": shown_path(path), "reason": UNDECODABLE_NAME,
            "detail": f"{what} bytes {os.fsencode(os.path.basename(path))[-60:]!r} are not UTF-8"}


def image_files(inputs, *, skipped: list | None = None, named: list | None = None) -> list[str]:
    """Expand files and folders (searched recursively for images) into a sorted file list.

    Inside a folder, a file or sub-folder whose name is not valid UTF-8 is left out with the
    training loaders' reason ``undecodable_name``: one ``{"path", "reason", "detail"}`` entry
    each, appended to ``skipped`` when a list is given. A file named explicitly with such a
    name is an `ArgumentError` (rename it). ``named``, a list, receives the files given explicitly
    (not found in a folder): `iter_images` keeps an unreadable one an error rather than a skip.

    Example:
        >>> skipped = []
        >>> files = image_files(["photos/"], skipped=skipped)   # doctest: +SKIP
    """
    from tfxfer.data import IMAGE_EXTENSIONS

    skipped = [] if skipped is None else skipped
    files = []
    for item in inputs:
        item = os.path.expanduser(os.fspath(item))
        if not is_utf8_name(item) and (os.path.isdir(item) or os.path.isfile(item)):
            raise ArgumentError("inputs", item, "must be named in UTF-8 (rename the file or folder)")
        if os.path.isdir(item):
            for dirpath, dirnames, filenames in os.walk(item):
                keep = []
                for d in sorted(d for d in dirnames if not d.startswith(".")):
                    if is_utf8_name(d):
                        keep.append(d)
                    else:
                        skipped.append(_undecodable(os.path.join(dirpath, d), "folder name"))
                dirnames[:] = keep
                for f in sorted(filenames):
                    if f.startswith(".") or not f.lower().endswith(IMAGE_EXTENSIONS):
                        continue
                    if is_utf8_name(f):
                        files.append(os.path.join(dirpath, f))
                    else:
                        skipped.append(_undecodable(os.path.join(dirpath, f)))
        elif os.path.isfile(item):
            files.append(item)
            if named is not None:
                named.append(item)
        else:
            raise ArgumentError("inputs", item, "must be existing image files or folders")
    if not files:
        note = f" ({len(skipped)} skipped: {skip_note(skipped)})" if skipped else ""
        raise DataError(f"No image files found in {bounded_repr(list(inputs))}{note}")
    return files


def skip_counts(skipped) -> dict:
    """``{reason: count}`` of the loader's skips, most frequent first."""
    return dict(collections.Counter(s.get("reason", "?") for s in skipped).most_common())


def skip_note(skipped) -> str:
    """``"2 empty_file, 1 undecodable_name"``: how many skips of each reason, most first."""
    return ", ".join(f"{n} {reason}" for reason, n in skip_counts(skipped).items())


def _decode_reason(exc) -> str:
    """TensorFlow's decode error without its graph prefix and op suffix, e.g. "jpeg::Uncompress failed.
    Invalid JPEG data or crop window"."""
    text = getattr(exc, "message", None) or str(exc)
    text = re.sub(r"\{\{function_node [^}]*\}\}", "", text)
    text = re.sub(r"\s*\[Op:[^\]]*\].*", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__).rstrip(".")[:200]


def _read_one(path, *, image_size, channels: int):
    """``(float32 image, None, None)``, or ``(None, {"path", "reason", "detail"}, DataError)`` for a file
    that cannot be read: the training loaders' reason key (`tfxfer.data.SKIP_REASONS`) and the error
    naming the file."""
    import tensorflow as tf

    from tfxfer.data.scan import check_image_bytes, read_regular_file
    from tfxfer.data.tfdata import decode_file

    shown = shown_path(path)
    if not is_utf8_name(path):
        return None, _undecodable(path), DataError(f"{shown}: the file name is not valid UTF-8 (rename it)")
    try:
        status, data = check_image_bytes(read_regular_file(path))
    except OSError as exc:
        detail = f"cannot read ({exc.strerror or exc})"
        return None, {"path": shown, "reason": "unreadable", "detail": detail}, DataError(f"{shown}: {detail}")
    except DataError as exc:
        text = str(exc)
        head, _, rest = text.partition(": ")
        if head in _LOADER_REASONS:  # check_image_bytes: "<reason>: <detail>"
            skip = {"path": shown, "reason": head, "detail": rest}
        else:  # read_regular_file: not a regular file, or too big
            skip = {"path": shown, "reason": "too_large" if "bytes, more than" in text else "not_a_regular_file",
                    "detail": text}
        return None, skip, DataError(f"{shown}: not a readable image ({text})")
    blob = data if status == "convert" else b""
    try:
        image = decode_file(tf.constant(path), tf.constant(blob), image_size=tuple(image_size), channels=channels)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as exc:
        detail = _decode_reason(exc)
        return (None, {"path": shown, "reason": "corrupt", "detail": detail},
                DataError(f"{shown}: not a readable image ({detail})"))
    return np.asarray(image, dtype=np.float32), None, None


def iter_images(paths, *, image_size, channels: int, batch_size: int = 32, skipped: list | None = None,
                required=None):
    """Decode ``paths`` in batches: yields ``(paths, float32 images)`` of at most ``batch_size`` readable
    files each, in order, so a caller holds one batch of pixels at a time.

    Each file is read as `read_images` reads it. Without ``skipped`` a file that cannot be read is a
    `DataError` naming it; with a list, it is left out with the training loaders' reason (one
    ``{"path", "reason", "detail"}`` entry appended, e.g. ``empty_file``, ``not_an_image``,
    ``truncated``, ``corrupt``), except the files in ``required`` (e.g. those named explicitly on the
    command line), which stay errors.
    """
    from tfxfer.utils.validate import check_int

    check_int("batch_size", batch_size, low=1)
    required = set(required or ())
    names, images = [], []
    for path in paths:
        image, skip, error = _read_one(path, image_size=image_size, channels=channels)
        if skip is not None:
            if skipped is None or path in required:
                raise error
            skipped.append(skip)
            continue
        names.append(path)
        images.append(image)
        if len(images) == batch_size:
            yield names, np.stack(images)
            names, images = [], []
    if images:
        yield names, np.stack(images)


def read_images(paths, *, image_size, channels: int) -> np.ndarray:
    """Decode and resize image files the way training pipelines do (float32 0-255), all at once
    (`iter_images` decodes them a batch at a time).

    Each file goes through `tfxfer.data.check_image_bytes` first, as the training loaders do: a
    regular file only, the declared size capped before decoding, EXIF orientation applied, formats
    TensorFlow cannot decode converted. So a rotated phone photo gives the pixels it trained on.
    A file that cannot be read, or whose name is not valid UTF-8, is a `DataError` naming it.
    """
    out = [images for _, images in iter_images(paths, image_size=image_size, channels=channels, batch_size=256)]
    if not out:
        raise DataError("No image files to read")
    return np.concatenate(out) if len(out) > 1 else out[0]
