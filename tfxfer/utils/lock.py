"""An exclusive lock on a folder (one ``tfxfer run`` per run folder at a time).

`FolderLock` creates ``<folder>/.tfxfer.lock`` with ``O_CREAT | O_EXCL`` (atomic on every local
file system) and writes who holds it: pid, host, the process's start time and the command. A
second holder gets `LockedError` naming the first. A lock left by a process that no longer runs
(killed with SIGKILL, a power cut) is stale: it is detected from the pid (and, on Linux, the
process start time, so a recycled pid does not count) and taken over, with a note. Takeovers hold
an ``flock`` on ``<folder>/.tfxfer.lock.takeover`` and remove the lock only if it still holds the
stale record, so two runs restarted at once never both hold the folder. A lock held from another
host cannot be checked and is reported with the file to delete.

Example:
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with FolderLock(folder):
    ...     try:
    ...         FolderLock(folder).acquire()
    ...     except LockedError as e:
    ...         print(str(e).split(" (")[0].replace(folder, "<run>"))
    <run> is locked by another tfxfer process
    >>> import os; os.path.exists(os.path.join(folder, LOCK_NAME))
    False
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import time

from tfxfer.errors import LockedError

LOCK_NAME = ".tfxfer.lock"
#: Taking over a stale lock holds an flock on this file, beside the lock (`_takeover_guard`).
TAKEOVER_NAME = LOCK_NAME + ".takeover"
#: A lock file that holds no readable record and is older than this (seconds) is stale (a writer
#: died between creating and filling it).
UNREADABLE_STALE_S = 10.0


def _start_time(pid: int) -> str | None:
    """The process start time in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    try:
        return raw[raw.rindex(b")") + 2:].split()[19].decode()
    except (ValueError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return False
    now = _start_time(pid)
    return started is None or now is None or now == started


@contextlib.contextmanager
def _takeover_guard(folder: str):
    """Hold an exclusive ``flock`` on ``<folder>/`` `TAKEOVER_NAME` (made on the first takeover, kept): two
    runs that both found the same stale lock take it over one after the other, so the second sees the
    first's live lock instead of removing it. The kernel drops the flock of a killed process. Where
    there is no ``fcntl`` (Windows) takeovers are not serialised."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(os.path.join(folder, TAKEOVER_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


class FolderLock:
    """Hold ``<folder>/.tfxfer.lock`` while a run writes to ``folder`` (a context manager).

    Attributes:
        notes: what acquiring found (a stale lock taken over), for the run's log.
    """

    def __init__(self, folder, *, command=None):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_NAME)
        self.command = list(command) if command else None
        self.notes: list[str] = []
        self._held = False

    def _record(self) -> dict:
        return {"pid": os.getpid(), "host": socket.gethostname(), "process_start": _start_time(os.getpid()),
                "locked_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": self.command or sys.argv}

    def _read(self) -> bytes | None:
        """The lock file's bytes (its first 64 KiB), or None when it cannot be read (gone)."""
        try:
            with open(self.path, "rb") as f:
                return f.read(1 << 16)
        except OSError:
            return None

    def _holder(self, raw: bytes | None = None) -> dict | None:
        """The record in the lock file (or in its bytes ``raw``), or None when it cannot be read as one."""
        raw = self._read() if raw is None else raw
        try:
            holder = json.loads((raw or b"").decode("utf-8"))
        except ValueError:  # UnicodeDecodeError included
            return None
        if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
            return None
        return holder

    def _stale(self, holder: dict | None) -> str | None:
        """Why the current lock is stale, or None when it may be live."""
        if holder is None:
            try:
                age = time.time() - os.stat(self.path).st_mtime
            except OSError:
                return "it vanished"
            return f"it holds no readable record and is {age:.0f} s old" if age > UNREADABLE_STALE_S else None
        if holder.get("host") != socket.gethostname():
            return None  # another machine's process cannot be checked from here
        if not _alive(holder["pid"], holder.get("process_start")):
            return f"process {holder['pid']} no longer runs"
        return None

    def acquire(self) -> "FolderLock":
        os.makedirs(self.folder, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raw = self._read()
                if raw is None and not os.path.lexists(self.path):
                    continue  # released as we looked: try again
                holder = self._holder(raw) if raw is not None else None
                why = self._stale(holder)
                if why is None:
                    who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('locked_at')}: "
                           f"{' '.join(map(str, holder.get('command') or []))[:200]}" if holder else "a process "
                           "that is still writing its record")
                    raise LockedError(f"{self.folder} is locked by another tfxfer process ({who}). Wait for it to "
                                      f"finish, or use another run folder; if that process is gone (another "
                                      f"machine), delete {self.path}", holder=holder)
                with _takeover_guard(self.folder):
                    if self._read() != raw:  # another run took it over since we looked: look again
                        continue
                    try:
                        os.unlink(self.path)  # still the stale record: no live lock is removed
                    except FileNotFoundError:
                        pass
                self.notes.append(f"took over a stale lock ({why})")
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self._record(), f)
            self._held = True
            return self
        raise LockedError(f"{self.folder}: could not take the lock {self.path} (other processes keep taking it)")

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        holder = self._holder()
        if holder is None or holder.get("pid") == os.getpid():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
