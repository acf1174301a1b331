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


def _undecodable(path, what: str = "name") -> dict:
    return {"path": shown_path(path), "reason": UNDECODABLE_NAME,
            "detail": f"{what} bytes {os.fsencode(os.path.basename(path))[-60:]!r} are not UTF-8"}


def image_files(inputs, *, skipped: list | None = None) -> list[str]:
    """Expand files and folders (searched recursively for images) into a sorted file list.

    Inside a folder, a file or sub-folder whose name is not valid UTF-8 is left out with the
    training loaders' reason ``undecodable_name``: one ``{"path", "reason", "detail"}`` entry
    each, appended to ``skipped`` when a list is given. A file named explicitly with such a
    name is an `ArgumentError` (rename it).

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


def read_images(paths, *, image_size, channels: int) -> np.ndarray:
    """Decode and resize image files the way training pipelines do (float32 0-255).

    Each file goes through `tfxfer.data.check_image_bytes` first, as the training loaders do: a
    regular file only, the declared size capped before decoding, EXIF orientation applied, formats
    TensorFlow cannot decode converted. So a rotated phone photo gives the pixels it trained on.
    A file that cannot be read, or whose name is not valid UTF-8, is a `DataError` naming it.
    """
    import tensorflow as tf

    from tfxfer.data.scan import check_image_bytes, read_regular_file
    from tfxfer.data.tfdata import decode_file

    out = []
    for path in paths:
        shown = shown_path(path)
        if not is_utf8_name(path):
            raise DataError(f"{shown}: the file name is not valid UTF-8 (rename it)")
        try:
            status, data = check_image_bytes(read_regular_file(path))
        except OSError as exc:
            raise DataError(f"{shown}: cannot read ({exc.strerror or exc})") from None
        except DataError as exc:
            raise DataError(f"{shown}: not a readable image ({exc})") from None
        blob = data if status == "convert" else b""
        try:
            image = decode_file(tf.constant(path), tf.constant(blob), image_size=tuple(image_size), channels=channels)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as exc:
            raise DataError(f"{shown}: not a readable image ({_decode_reason(exc)})") from None
        out.append(np.asarray(image, dtype=np.float32))
    return np.stack(out)
