"""A write of a target removes the temporaries that killed writes of that same target left beside it
(dead pid on this host; another host's, or the older name form without a pid, once an hour old) and
nothing else: not a live process's temporary, not another target's, not an unrelated file."""

import os
import subprocess
import sys
import time

from tfxfer.utils.atomic import atomic_path
from tfxfer.utils.lock import _alive
from tfxfer.utils.stale import host_tag

HOURS_2 = 2 * 3600


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    assert not _alive(child.pid, None)
    return child.pid


def _leftover(folder, name, inside="artefact.keras", *, age=0.0) -> str:
    """A temporary folder as a killed write leaves it: the artefact half-written inside."""
    path = os.path.join(folder, name)
    os.makedirs(path)
    with open(os.path.join(path, inside), "wb") as f:
        f.write(b"half")
    if age:
        then = time.time() - age
        os.utime(os.path.join(path, inside), (then, then))
        os.utime(path, (then, then))
    return name


def test_a_write_removes_only_its_targets_dead_leftovers(tmp_path):
    host, dead = host_tag(), _dead_pid()
    gone = {_leftover(tmp_path, f".model.keras.tmp-{dead}-{host}-deadpid_"),
            _leftover(tmp_path, ".model.tmp-oldform1", age=HOURS_2)}
    kept = {_leftover(tmp_path, f".model.keras.tmp-{os.getpid()}-{host}-livepid_"),  # a write still running
            _leftover(tmp_path, ".model.tmp-oldform2"),  # older form, recent: may still be in use
            _leftover(tmp_path, f".other.keras.tmp-{dead}-{host}-otherdea"),  # another target's
            _leftover(tmp_path, ".other.tmp-oldform3", age=HOURS_2),
            ".notes"}
    (tmp_path / ".notes").write_text("mine")
    with atomic_path(tmp_path / "model.keras") as tmp:
        own = os.path.basename(os.path.dirname(tmp))
        with open(tmp, "wb") as f:
            f.write(b"model")
    assert not gone & set(os.listdir(tmp_path))
    assert set(os.listdir(tmp_path)) == kept | {"model.keras"}
    assert (tmp_path / "model.keras").read_bytes() == b"model" and (tmp_path / ".notes").read_text() == "mine"
    assert own.startswith(f".model.keras.tmp-{os.getpid()}-{host}-")  # named so that a later write can check it


def test_other_hosts_leftovers_go_after_an_hour_and_same_stem_targets_stay(tmp_path):
    other = "0000beef" if host_tag() != "0000beef" else "0000cafe"
    _leftover(tmp_path, f".model.keras.tmp-1-{other}-hourold_", age=HOURS_2)
    a_file = f".model.keras.tmp-{_dead_pid()}-{host_tag()}-a_file__"
    (tmp_path / a_file).write_text("a file of that name is not our folder")
    kept = {_leftover(tmp_path, f".model.keras.tmp-1-{other}-freshnow"),  # another host's, recent
            _leftover(tmp_path, ".model.tmp-weights1", inside="artefact.weights.h5", age=HOURS_2),  # model.weights.h5's
            a_file}
    with atomic_path(tmp_path / "model.keras") as tmp:
        open(tmp, "wb").close()
    assert set(os.listdir(tmp_path)) == kept | {"model.keras"}
