"""Atomic writes: an interrupted write never leaves a half-written file at the final path.

Each write builds its artefact in a hidden temporary folder beside the target, ``.<name>.tmp-<pid>-<host>-<random>``
(`tfxfer.utils.stale.owner_tag`), and renames it into place. Only a process killed outright (SIGKILL, the
OOM killer, a power cut) leaves that folder behind; the next write of the same target removes such
leftovers of that target, and nothing else (see `atomic_path`).

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
import re
import shutil
import stat
import tempfile
import time
from typing import Iterator

from tfxfer.utils.stale import OWNER, RANDOM, is_stale, owner_tag

#: The longest name (bytes) a temporary may take: most file systems allow 255.
_NAME_MAX = 255
#: The room the temporary's name takes beside the target's: "." + ".tmp-" + `owner_tag` + random part.
_TAIL_MAX = 1 + len(".tmp-") + len("4294967295-01234567-") + 8


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


def _exchange(a: str, b: str) -> bool:
    """Swap the paths ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False
    where the system or the file system cannot (the caller then replaces in two renames)."""
    global _RENAMEAT2
    if _RENAMEAT2 is None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            _RENAMEAT2 = getattr(libc, "renameat2", False)
        except OSError:
            _RENAMEAT2 = False
    if not _RENAMEAT2:
        return False
    at_fdcwd, rename_exchange = -100, 2
    return _RENAMEAT2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


_RENAMEAT2 = None  # the libc function, once looked up (False: not available)


def _tmp_prefix(base: str) -> str:
    """``.<base>.tmp-``, ``base`` cut (rarely) so that the temporary's whole name fits `_NAME_MAX`."""
    while len(os.fsencode(base)) > _NAME_MAX - _TAIL_MAX:
        base = base[:-1]
    return f".{base}.tmp-"


def _remove_leftovers(parent: str, base: str, artefact: str) -> None:
    """Remove from ``parent`` the temporary folders that earlier writes of ``base`` left there and no
    running process uses: named ``.<base>.tmp-<pid>-<host>-<random>`` by a process that no longer runs
    on this host, or named on another host or in the older form ``.<stem>.tmp-<random>`` (no pid; an
    older form's folder must hold nothing but ``artefact``, or it belongs to another target of the same
    stem) and untouched for `tfxfer.utils.stale.STALE_AFTER_S`. One scan of ``parent``; any entry that
    cannot be read or removed is left as it is."""
    named_prefix, old_prefix = _tmp_prefix(base), f".{base.split('.')[0]}.tmp-"
    named = re.compile(re.escape(named_prefix) + OWNER + RANDOM)
    old = re.compile(re.escape(old_prefix) + RANDOM)
    common = os.path.commonprefix([named_prefix, old_prefix])
    try:
        with os.scandir(parent) as entries:
            found = [(entry.path, named.fullmatch(entry.name)) for entry in entries
                     if entry.name.startswith(common) and (named.fullmatch(entry.name) or old.fullmatch(entry.name))]
    except OSError:
        return
    now = time.time()
    for path, owner in found:
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                continue  # a file or a link of that name: not one of ours
            if owner is None and not set(os.listdir(path)) <= {artefact}:
                continue
            if not is_stale(path, pid=owner and int(owner["pid"]), host=owner and owner["host"], now=now):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds.

    The temporary name keeps the final suffix (Keras checks ``.keras`` / ``.weights.h5``). With
    ``directory=True`` the temporary path is a directory (SavedModel) and an existing directory at
    ``path`` is replaced only after the new one is complete. On any exception the temporary file or
    directory is removed and the previous artefact at ``path`` is left untouched.

    The temporary lies in a hidden folder ``.<name>.tmp-<pid>-<host>-<random>`` beside ``path``. Before
    making it, the temporaries of earlier writes of the same ``path`` whose process was killed are
    removed (see `_remove_leftovers`); those of a write still running, here or in another process, are
    kept (two concurrent writes of one path each rename their own; the later rename wins).
    """
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    suffix = "".join(base.partition(".")[1:]) if not directory else ""
    _remove_leftovers(parent, base, "artefact" + suffix)
    tmp_dir = tempfile.mkdtemp(prefix=_tmp_prefix(base) + owner_tag(), dir=parent)
    tmp = os.path.join(tmp_dir, "artefact" + suffix)
    if directory:
        os.makedirs(tmp)
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise FileNotFoundError(f"Nothing was written to the temporary path {tmp!r} for {path!r}")
        if directory:
            if os.path.exists(path) and _exchange(tmp, path):  # one atomic swap: readers never miss `path`
                shutil.rmtree(tmp, ignore_errors=True)  # the previous artefact, now at tmp
            else:
                backup = None
                if os.path.exists(path):  # no atomic exchange here: a brief moment without `path`
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
