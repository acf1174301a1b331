"""Which folders ``tfxfer run`` may write into (``--out``).

A run writes, replaces and (with ``--force``, or when an export variant is dropped) removes files in
its run folder, so it only uses a folder that is absent, empty, or already a tfxfer run folder. A run
folder is recognised by what a run leaves in it: ``manifest.json`` holding a tfxfer manifest (an
object with ``tfxfer_manifest``, written before the first stage), or, for a run killed before that,
``config.yaml`` beside the run's ``stages/`` folder or its lock file. A folder holding only what a
starting run makes first (its lock files, the temporaries of those two files, the ``workers/worker-N``
folders of a multi-worker run) counts as empty. Any other folder with files in it (a home or
project folder) is refused with `ArgumentError` naming ``--out`` and the folder, and so is an absent
folder that cannot be made (below a file, or in a folder tfxfer cannot write into).

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> check_run_folder(folder)  # empty: fine
    >>> open(os.path.join(folder, "notes.txt"), "w").close()
    >>> try:
    ...     check_run_folder(folder)
    ... except ArgumentError as e:
    ...     print(str(e).split(". Received")[0])
    `--out` is a folder that holds other files (notes.txt) and no tfxfer run; a run writes, replaces and removes files in its folder
"""

from __future__ import annotations

import json
import os
import re

from tfxfer.errors import ArgumentError
from tfxfer.utils.lock import LOCK_NAME, TAKEOVER_NAME

#: A manifest larger than this is not read (it is not one tfxfer wrote).
MAX_MANIFEST_BYTES = 64 << 20
#: `tfxfer.utils.atomic`'s temporary of config.yaml or manifest.json (a run writing them now).
_MARKER_TEMPORARY = re.compile(r"\.(config\.yaml|manifest\.json)\.tmp-")


def _own_entry(run_dir: str, name: str) -> bool:
    """Whether entry ``name`` of ``run_dir`` is one a run makes before its manifest: the lock file (and
    the file a stale lock's takeover locks), the temporary of config.yaml or manifest.json being written, or ``workers/`` holding only ``worker-N``
    folders (multi-worker training: a worker may look while the chief starts its run)."""
    if name in (LOCK_NAME, TAKEOVER_NAME) or _MARKER_TEMPORARY.match(name):
        return True
    if name != "workers" or not os.path.isdir(os.path.join(run_dir, name)):
        return False
    try:
        return all(re.fullmatch(r"worker-\d+", e) for e in os.listdir(os.path.join(run_dir, name)))
    except OSError:
        return False


def _is_manifest(path: str) -> bool:
    try:
        if os.path.getsize(path) > MAX_MANIFEST_BYTES:
            return False
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(value, dict) and "tfxfer_manifest" in value


def is_run_folder(path) -> bool:
    """Whether folder ``path`` holds a tfxfer run (finished or not; see the module docstring).

    Example:
        >>> import tempfile
        >>> is_run_folder(tempfile.mkdtemp())
        False
    """
    path = os.fspath(path)
    if _is_manifest(os.path.join(path, "manifest.json")):
        return True
    return os.path.isfile(os.path.join(path, "config.yaml")) and (
        os.path.isdir(os.path.join(path, "stages")) or os.path.isfile(os.path.join(path, LOCK_NAME)))


def _check_creatable(run_dir: str) -> None:
    """`ArgumentError` naming ``--out`` unless absent ``run_dir`` can be made: its nearest existing
    ancestor must be a folder tfxfer can write into (``afile/sub`` would fail only after TensorFlow loads)."""
    parent = os.path.dirname(os.path.abspath(run_dir))
    while not os.path.lexists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ArgumentError("--out", run_dir, f"cannot be made: {parent} is a file, not a folder",
                            hint="Pass a new or empty folder, or the folder of an earlier run")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArgumentError("--out", run_dir, f"cannot be made: tfxfer cannot write into {parent}",
                            hint="Pass a folder you can write into")


def check_run_folder(run_dir) -> None:
    """Raise `ArgumentError` naming ``--out`` unless ``run_dir`` is absent, empty (a run's lock file and
    ``workers/`` folder aside) or a tfxfer run folder (`is_run_folder`).

    Raises:
        ArgumentError: ``run_dir`` is a file, not a folder; a folder holding other files; or absent
            and cannot be made: its nearest existing parent is a file, or a folder tfxfer cannot
            write into.
    """
    run_dir = os.fspath(run_dir)
    if not os.path.lexists(run_dir):
        _check_creatable(run_dir)
        return
    if not os.path.isdir(run_dir):
        raise ArgumentError("--out", run_dir, "is a file, not a folder",
                            hint="Pass a new or empty folder, or the folder of an earlier run")
    try:
        entries = sorted(e for e in os.listdir(run_dir) if not _own_entry(run_dir, e))
    except OSError as exc:
        raise ArgumentError("--out", run_dir, f"is a folder tfxfer cannot list ({exc.strerror or exc})") from None
    if not entries or is_run_folder(run_dir):
        return
    shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
    raise ArgumentError("--out", run_dir, f"is a folder that holds other files ({shown}) and no tfxfer run; a run "
                        "writes, replaces and removes files in its folder",
                        hint="Pass a new or empty folder (e.g. runs/<name>), or the folder of an earlier run")


__all__ = ["check_run_folder", "is_run_folder"]
