"""Atomic writes: an interrupted write never leaves a half-written file at the final path.

Example:
    >>> import os, tempfile
    >>> from tfxfer.utils.atomic import atomic_path, atomic_write_bytes
    >>> d = tempfile.mkdtemp()
    >>> atomic_write_bytes(os.path.join(d, "a.bin"), b"hello")
    >>> with atomic_path(os.path.join(d, "m.keras")) as tmp:
    ...     open(tmp, "wb").write(b"x")
    1
    >>> sorted(os.listdir(d))
    ['a.bin', 'm.keras']
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from typing import Iterator


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    The temporary name keeps the final suffix (Keras checks ``.keras`` / ``.weights.h5``). With
    ``directory=True`` the temporary path is a directory (SavedModel) and an existing directory at
    ``path`` is replaced only after the new one is complete. On any exception the temporary file or
    directory is removed and the previous artefact at ``path`` is left untouched.
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    suffix = "".join(base.partition(".")[1:]) if not directory else ""
    tmp_dir = tempfile.mkdtemp(prefix=f".{base.split('.')[0]}.tmp-", dir=parent)
    tmp = os.path.join(tmp_dir, "artefact" + suffix)
    if directory:
        os.makedirs(tmp)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"Nothing was written to the temporary path {tmp!r} for {path!r}")
        if directory:
            backup = None
            if os.path.exists(path):
                backup = path + ".old-" + os.path.basename(tmp_dir)
                os.replace(path, backup)
            os.replace(tmp, path)
            if backup:
                shutil.rmtree(backup, ignore_errors=True)
        else:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        _fsync_dir(parent)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def strict_json_value(value):
    """``value`` made fit for strict JSON: every NaN or infinite float value (Python or numpy) becomes
    None and numpy scalars Python numbers, through dicts, lists and tuples; anything else (a numpy
    array, a path) is left as is.

    Example:
        >>> import numpy as np
        >>> strict_json_value({"a": [1.0, float("nan")], "b": (np.float32("inf"), np.int64(3), "x")})
        {'a': [1.0, None], 'b': [None, 3, 'x']}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):  # a NaN key stays the "NaN" string json.dumps made of it
        return {json.dumps(k) if isinstance(k, float) and not math.isfinite(k) else k: strict_json_value(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json_value(v) for v in value]
    if getattr(value, "ndim", None) == 0 and hasattr(value, "dtype") and hasattr(value, "item"):  # numpy scalars
        return strict_json_value(value.item())
    return value


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int = 2) -> None:
    """Write ``obj`` as strict JSON to ``path`` atomically (sorted keys, UTF-8): a NaN or infinite
    float, Python or numpy, is written as ``null`` (`strict_json_value`), never as the ``NaN`` /
    ``Infinity`` tokens that JSON parsers outside Python refuse; other objects JSON cannot hold are
    written as their ``str()``."""
    text = json.dumps(strict_json_value(obj), indent=indent, sort_keys=True, default=str, allow_nan=False)
    atomic_write_text(path, text + "\n")
