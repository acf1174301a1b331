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

import os
import re
import shutil
import stat
import tempfile
import time

from tfxfer.utils.stale import OWNER, RANDOM, STALE_AFTER_S, is_stale, owner_tag

__all__ = ["STALE_AFTER_S", "make_staging", "remove_stale_staging"]

_NAMED = re.compile(r"\..+\.export-" + OWNER + RANDOM)
_OLD = re.compile(r"\..+\.export-" + RANDOM)


def make_staging(out_dir, name: str) -> str:
    """A new, empty staging folder in ``out_dir`` for ``name``'s files (its absolute path), named with
    this process's pid and host (`tfxfer.utils.stale.owner_tag`) so that a later run can tell whether
    it is still in use."""
    return os.path.abspath(tempfile.mkdtemp(prefix=f".{name}.export-{owner_tag()}", dir=os.fspath(out_dir)))


def _is_stale(entry: str, path: str, now: float) -> bool:
    named = _NAMED.fullmatch(entry)
    if named:
        return is_stale(path, pid=int(named["pid"]), host=named["host"], now=now)
    if _OLD.fullmatch(entry):
        return is_stale(path, pid=None, host=None, now=now)
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
