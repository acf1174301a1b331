"""Temporaries named after the process that made them, and whether one is left over from a dead process.

A writer that builds its output in a hidden temporary beside the target and renames it into place
leaves the temporary behind only when it is killed outright (SIGKILL, the OOM killer, a power cut).
To let a later writer tell such a leftover from one still in use, the temporary's name carries
`owner_tag`: this process's pid and `host_tag`. A leftover is stale (`is_stale`) when it was named on
this host and its pid no longer runs; one named on another host (a shared file system, where the pid
cannot be checked), or with no pid at all (an older name form), is stale once nothing in it has changed
for `STALE_AFTER_S`.

Example:
    >>> import os, re, tempfile
    >>> tmp = tempfile.mkdtemp(prefix=".a.tmp-" + owner_tag())
    >>> owner = re.search(OWNER + RANDOM + "$", os.path.basename(tmp))
    >>> is_stale(tmp, pid=int(owner["pid"]), host=owner["host"])  # this process still runs
    False
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import time

from tfxfer.utils.lock import _alive

#: A temporary of another host, or without a pid, untouched for this long (seconds) is stale.
STALE_AFTER_S = 3600.0

#: ``tempfile.mkdtemp``'s random part: 8 of lower-case letters, digits and "_".
RANDOM = r"[a-z0-9_]{8}"
#: What `owner_tag` writes, as a regular expression with the groups ``pid`` and ``host``.
OWNER = r"(?P<pid>[0-9]{1,10})-(?P<host>[0-9a-f]{8})-"


def host_tag() -> str:
    """8 hex digits naming this host and its process-id namespace (two containers sharing a folder see
    different pids: each takes the other's temporaries for another host's)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:  # not Linux
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode("utf-8", "surrogateescape")).hexdigest()[:8]


def owner_tag() -> str:
    """``<pid>-<host>-``: the part of a temporary's name that says which process made it."""
    return f"{os.getpid()}-{host_tag()}-"


def last_change(path: str) -> float:
    """The newest modification time of ``path`` and, for a folder, the entries right inside it."""
    info = os.lstat(path)
    newest = info.st_mtime
    if not stat.S_ISDIR(info.st_mode):
        return newest
    with os.scandir(path) as entries:
        for entry in entries:
            try:
                newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
            except OSError:
                pass
    return newest


def is_stale(path: str, *, pid: int | None, host: str | None, now: float | None = None) -> bool:
    """Whether the temporary at ``path``, named by process ``pid`` on ``host`` (both None for a name
    without them), is left over: see the module docstring. ``now`` (seconds since the epoch, default
    the current time) dates the ones whose process cannot be checked. Raises OSError when ``path``
    cannot be read."""
    if pid is not None and host == host_tag():
        return not 0 < pid < 2 ** 31 or not _alive(pid, None)
    now = time.time() if now is None else now
    return now - last_change(path) > STALE_AFTER_S
