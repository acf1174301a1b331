"""Content fingerprints: stable hashes of configuration, files, folders, arrays and packages.

A stage's fingerprint is the hash of its resolved configuration section plus the fingerprints of
its inputs, so an unchanged stage can be skipped and a changed input re-runs everything after it.

Example:
    >>> fingerprint({"epochs": 3, "lr": 0.001}) == fingerprint({"lr": 0.001, "epochs": 3})
    True
    >>> len(fingerprint("anything"))
    16
"""

from __future__ import annotations

import hashlib
import json
import os
import stat

import numpy as np

_CHUNK = 1 << 20


def _default(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "items"):
        return dict(value.items())
    return str(value)


def stable_json(value) -> str:
    """JSON with sorted keys and no whitespace variation (the input of `fingerprint`)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default)


def fingerprint(value, *, length: int = 16) -> str:
    """Short sha256 hex digest of any JSON-able value."""
    return hashlib.sha256(stable_json(value).encode("utf-8")).hexdigest()[:length]


def file_sha256(path) -> str:
    """Full sha256 hex digest of a regular file's bytes (at most its size when opened).

    A FIFO, a device or a socket is refused before it is opened (reading one could block forever
    or never end).

    Raises:
        DataError: ``path`` is not a regular file.
    """
    from tfxfer.errors import DataError

    path = os.fspath(path)
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise DataError(f"{path} is not a regular file (a FIFO, a device or a socket): it cannot be fingerprinted")
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{path} is not a regular file: it cannot be fingerprinted")
        left = st.st_size
        while left > 0:
            block = os.read(fd, min(left, _CHUNK))
            if not block:
                break
            digest.update(block)
            left -= len(block)
    finally:
        os.close(fd)
    return digest.hexdigest()


def files_fingerprint(paths, *, root=None) -> str:
    """Hash of a list of files: each (path relative to ``root``, sha256 of its content), sorted."""
    entries = []
    for path in paths:
        rel = os.path.relpath(path, root) if root else os.fspath(path)
        rel = os.fsencode(rel).decode("utf-8", "backslashreplace")  # any file name the OS allows
        entries.append((rel.replace(os.sep, "/"), file_sha256(path)))
    return fingerprint(sorted(entries), length=64)


def _regular(path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)  # a link is not followed: the loaders skip links too
    except OSError:
        return False


def folder_files(folder) -> list[str]:
    """Every regular file under ``folder``, sorted: hidden folders, symbolic links, FIFOs, devices
    and sockets are left out (the data loaders skip them too, so they are no part of the data)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(p for p in (os.path.join(dirpath, name) for name in sorted(filenames)) if _regular(p))
    return out


def path_fingerprint(path) -> str:
    """Fingerprint of a file or of a whole folder (file list and contents)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return files_fingerprint(folder_files(path), root=path)
    return files_fingerprint([path], root=os.path.dirname(path))


def arrays_fingerprint(*arrays) -> str:
    """Hash of numpy arrays (dtype, shape and bytes; object arrays of str hashed element-wise)."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        digest.update(f"{a.dtype.str if a.dtype != object else 'object'}{a.shape}".encode())
        if a.dtype == object:
            for item in a.ravel():
                digest.update(stable_json(item).encode("utf-8"))
                digest.update(b"\0")
        else:
            digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def package_fingerprint(distribution: str) -> str | None:
    """Hash of an installed distribution's RECORD (its file list with content hashes), or None."""
    from importlib import metadata

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    record = dist.read_text("RECORD")
    if record is None:
        return None
    lines = sorted(line for line in record.splitlines() if line and not line.split(",")[0].endswith(".pyc"))
    return fingerprint([dist.version, lines], length=64)
