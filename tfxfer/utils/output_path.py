"""`check_output_file`: the path a function will write one file to, checked before any work.

A folder at that path, a parent that is a file, or a folder that cannot be written would otherwise
fail only at the final rename -- after a conversion, a QAT fine-tuning or a gate -- with a bare
``IsADirectoryError`` / ``PermissionError``. Missing parent folders are fine (the writers make them).

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_output_file("path", os.path.join(folder, "new", "m.tflite")) == os.path.join(folder, "new", "m.tflite")
    True
    >>> check_output_file("path", folder)
    Traceback (most recent call last):
    ...
    tfxfer.errors.ArgumentError: `path` is a folder: it must be the path of the file to write. Received: path=...
"""

from __future__ import annotations

import os
import tempfile

from tfxfer.errors import ArgumentError, ArgumentTypeError


def check_output_file(name: str, path, *, suffix: str | None = None) -> str:
    """``path`` as a string if a file can be written there, else `ArgumentError` naming ``name``.

    Checked: the type (`ArgumentTypeError`), ``suffix`` if given, that ``path`` is not a folder, that its
    nearest existing parent is a folder, and that a file can be created in it (tried: a temporary file
    made and removed at once, as permissions alone do not say so for root or read-only mounts).
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentTypeError(name, path, "a file path" + (f" ending in {suffix}" if suffix else ""))
    path = os.fspath(path)
    if not isinstance(path, str):
        raise ArgumentTypeError(name, path, "a file path given as text, not bytes")
    if suffix and not path.endswith(suffix):
        raise ArgumentError(name, path, f"must end in {suffix}")
    if os.path.isdir(path):
        raise ArgumentError(name, path, "is a folder: it must be the path of the file to write")
    probe = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ArgumentError(name, path, f"cannot be written: {probe!r} is a file, not a folder")
    try:
        handle, tmp = tempfile.mkstemp(prefix=".tfxfer-write-check-", dir=probe)
    except OSError as exc:
        raise ArgumentError(name, path, f"cannot be written: no file can be created in {probe!r} "
                                        f"({exc.strerror or type(exc).__name__})") from exc
    os.close(handle)
    os.remove(tmp)
    return path
