"""The hidden staging folder `tfxfer.export.export_all` writes a run into before moving its files into
``out_dir``, and the clean-up of those that earlier runs left behind.

A run removes its staging folder when it ends, failed or not; only a run killed outright (SIGKILL, the
OOM killer, a power cut) leaves one. The next `export_all` into the same folder removes such folders
(`remove_stale_staging`), and only those: a folder named as `make_staging` names them,
``.<name>.export-<pid>-<host>-<random>`` (``<host>``: 8 hex digits of the host name and pid namespace),
whose process no longer runs on this host. A run that is still writing, in this process or another one, keeps its
folder. A folder named on another host (a shared file system, where the pid cannot be checked), or of
the older form ``.<name>.export-<random>`` (no pid), is removed once nothing in it has changed for
`STALE_AFTER_S`. Anything else in ``out_dir`` is never touched.

Example:
    >>> import os, tempfile
    >>> out = tempfile.mkdtemp()
    >>> staging = make_staging(out, "model")
    >>> remove_stale_staging(out)  # its process (this one) still runs: kept
    []
    >>> os.path.isdir(staging)
    True
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time

from tfxfer.utils.lock import _alive

#: A staging folder of another host, or without a pid, untouched for this long (seconds) is stale.
STALE_AFTER_S = 3600.0

#: ``tempfile.mkdtemp``'s random part: 8 of lower-case letters, digits and "_".
_RANDOM = r"[a-z0-9_]{8}"
_NAMED = re.compile(r"\..+\.export-(?P<pid>[0-9]{1,10})-(?P<host>[0-9a-f]{8})-" + _RANDOM)
_OLD = re.compile(r"\..+\.export-" + _RANDOM)


def _host() -> str:
    """8 hex digits naming this host and its process-id namespace (two containers sharing a folder see
    different pids: each takes the other's folders for another host's)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode("utf-8", "surrogateescape")).hexdigest()[:8]


def make_staging(out_dir, name: str) -> str:
    """A new, empty staging folder in ``out_dir`` for ``name``'s files (its absolute path), named with
    this process's pid and host so that a later run can tell whether it is still in use."""
    return os.path.abspath(tempfile.mkdtemp(prefix=f".{name}.export-{os.getpid()}-{_host()}-",
                                            dir=os.fspath(out_dir)))


def _last_change(path: str) -> float:
    """The newest modification time of ``path`` and the entries right inside it."""
    newest = os.lstat(path).st_mtime
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                pass
    return newest


def _is_stale(entry: str, path: str, now: float) -> bool:
    named = _NAMED.fullmatch(entry)
    if named and named["host"] == _host():
        pid = int(named["pid"])
        return not 0 < pid < 2 ** 31 or not _alive(pid, None)
    if named or _OLD.fullmatch(entry):
        return now - _last_change(path) > STALE_AFTER_S
    return False


def remove_stale_staging(out_dir, *, now: float | None = None) -> list[str]:
    """Remove the staging folders of ``out_dir`` that no running export uses (see the module
    docstring); returns their paths. A folder that cannot be checked or removed is left as it is.

    ``now`` (seconds since the epoch, default the current time) dates the folders of the older form.
    """
    out_dir = os.fspath(out_dir)
    now = time.time() if now is None else now
    removed = []
    try:
        entries = sorted(os.listdir(out_dir))
    except OSError:
        return removed
    for entry in entries:
        if not (isinstance(entry, str) and entry.startswith(".") and ".export-" in entry):
            continue
        path = os.path.join(out_dir, entry)
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode) or not _is_stale(entry, path, now):
                continue  # a file or a link of that name, or a folder in use: not ours to remove
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.lexists(path):
            removed.append(path)
    return removed
