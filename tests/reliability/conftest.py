"""Fixtures for the reliability tests: subprocess runner, a tiny real filesystem, file snapshots."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid

import pytest

SCENARIO = os.path.join(os.path.dirname(__file__), "scenario.py")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_scenario(args, *, env=None, timeout=240, check=True):
    """Run tests/reliability/scenario.py in a fresh interpreter; returns the CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", **(env or {})}
    proc = subprocess.run([sys.executable, SCENARIO, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"scenario {args[0]} failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def read_json(path):
    with open(path) as f:
        return json.load(f)


@contextlib.contextmanager
def mounted_tmpfs(path, size: str):
    """Mount a tmpfs of ``size`` at ``path`` (root only); yields False where that is not allowed."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        yield False
        return
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True)
    if proc.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True)


@pytest.fixture
def tiny_fs(tmp_path):
    """A real 384 KiB filesystem (tmpfs) to fill up; skipped where mounting is not permitted."""
    path = str(tmp_path / f"tinyfs-{uuid.uuid4().hex[:6]}")
    with mounted_tmpfs(path, "384k") as ok:
        if not ok:
            pytest.skip("mounting a tmpfs needs root and CAP_SYS_ADMIN; the ENOSPC simulation test covers this")
        yield path


def fill_disk(directory, *, leave: int = 0):
    """Fill the filesystem holding ``directory`` until at most ``leave`` bytes are free."""
    filler = os.path.join(directory, "filler.bin")
    with open(filler, "wb") as f:
        chunk = b"\0" * 4096
        try:
            while True:
                st = os.statvfs(directory)
                if st.f_bavail * st.f_frsize <= leave + 4096:
                    break
                f.write(chunk)
                f.flush()
        except OSError:
            pass
    return filler
