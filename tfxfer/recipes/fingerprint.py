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
    """Full sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def files_fingerprint(paths, *, root=None) -> str:
    """Hash of a list of files: each (path relative to ``root``, sha256 of its content), sorted."""
    entries = []
    for path in paths:
        rel = os.path.relpath(path, root) if root else os.fspath(path)
        entries.append((rel.replace(os.sep, "/"), file_sha256(path)))
    return fingerprint(sorted(entries), length=64)


def folder_files(folder) -> list[str]:
    """Every regular file under ``folder`` (hidden folders skipped), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(os.path.join(dirpath, name) for name in sorted(filenames))
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
