"""The stage runner: fingerprints, skipping unchanged stages, re-running changed ones, failures."""

import json
import os

import pytest

from tfxfer.recipes.config_loader import load_config
from tfxfer.recipes.context import RunContext
from tfxfer.recipes.runner import Runner, Stage


def _stages(calls, *, fail_in=None):
    def make(name, section):
        def run(ctx):
            calls.append(name)
            if name == fail_in:
                raise RuntimeError(f"{name} exploded")
            path = ctx.path(name, "out.txt")
            with open(path, "w") as f:
                f.write(f"{name} {len(calls)}")  # content differs per call: downstream must notice
            return {"value": len(calls), "artefacts": [ctx.rel(path)]}

        return run

    return [
        Stage("a", make("a", "data"), config=lambda c: {"data": c.section("data")["data"]}),
        Stage("b", make("b", "train"), config=lambda c: {"train": c.section("train")["train"]}, inputs=("a",)),
        Stage("c", make("c", "export"), config=lambda c: {"export": c.section("export")["export"]}, inputs=("b",)),
    ]


def _run(tmp_path, overrides=(), *, fail_in=None, force=False, calls=None):
    calls = [] if calls is None else calls
    cfg = load_config(text="data: {source: x}", overrides=list(overrides))
    ctx = RunContext(cfg, tmp_path)
    runner = Runner(ctx, force=force)
    records = {}
    for stage in _stages(calls, fail_in=fail_in):
        records[stage.name] = runner.execute(stage)
    return calls, records


def test_rerun_skips_everything_unchanged(tmp_path):
    calls, records = _run(tmp_path)
    assert calls == ["a", "b", "c"] and not any(r["skipped"] for r in records.values())
    calls, records = _run(tmp_path)
    assert calls == [] and all(r["skipped"] for r in records.values())
    record = json.loads((tmp_path / "stages" / "b.json").read_text())
    assert record["status"] == "done" and record["artefacts"] == {"b/out.txt": record["artefacts"]["b/out.txt"]}


def test_changed_section_reruns_that_stage_and_everything_after(tmp_path):
    _run(tmp_path)
    calls, _ = _run(tmp_path, ["train.epochs=7"])
    assert calls == ["b", "c"]
    calls, _ = _run(tmp_path, ["train.epochs=7", "export.bench_runs=3"])
    assert calls == ["c"]
    calls, _ = _run(tmp_path, ["train.epochs=7", "export.bench_runs=3"], force=True)
    assert calls == ["a", "b", "c"]


def test_modified_or_missing_artefact_reruns_the_stage_and_its_dependents(tmp_path):
    _run(tmp_path)
    (tmp_path / "b" / "out.txt").write_text("tampered")
    calls, _ = _run(tmp_path)
    assert calls == ["b", "c"]  # b's new output has a new hash, so c's input changed too
    os.remove(tmp_path / "c" / "out.txt")
    calls, _ = _run(tmp_path)
    assert calls == ["c"]


def test_failure_is_recorded_and_the_next_run_continues_after_finished_stages(tmp_path):
    calls = []
    with pytest.raises(RuntimeError, match="c exploded"):
        _run(tmp_path, fail_in="c", calls=calls)
    assert calls == ["a", "b", "c"]
    record = json.loads((tmp_path / "stages" / "c.json").read_text())
    assert record["status"] == "failed" and record["error"] == "RuntimeError: c exploded"
    calls, records = _run(tmp_path)
    assert calls == ["c"]
    assert records["a"]["skipped"] and records["b"]["skipped"] and not records["c"]["skipped"]


def test_probe_changes_the_fingerprint(tmp_path):
    cfg = load_config(text="data: {source: x}")
    content = {"hash": "1"}
    calls = []
    stage = Stage("data", lambda ctx: calls.append(1) or {}, config=lambda c: {}, probe=lambda ctx: dict(content))
    Runner(RunContext(cfg, tmp_path)).execute(stage)
    Runner(RunContext(cfg, tmp_path)).execute(stage)
    content["hash"] = "2"
    record = Runner(RunContext(cfg, tmp_path)).execute(stage)
    assert len(calls) == 2 and record["probe"] == {"hash": "2"}


def test_always_stages_run_every_time(tmp_path):
    cfg = load_config(text="data: {source: x}")
    calls = []
    stage = Stage("report", lambda ctx: calls.append(1) or {}, config=lambda c: {}, always=True)
    for _ in range(2):
        Runner(RunContext(cfg, tmp_path)).execute(stage)
    assert len(calls) == 2


# -- damaged stage records and the run-folder lock (issue 15) -------------------------------------
@pytest.mark.parametrize("content", [
    "{not json", "[1, 2]", '{"status": "done"}', '{"status": "done", "fingerprint": "x", "outputs": [], "artefacts": {}}',
    '{"status": "done", "fingerprint": "x", "outputs": {}, "artefacts": []}',
    '{"status": "done", "fingerprint": "x", "outputs": {}, "artefacts": {"/dev/zero": "00"}}',
    '{"status": "done", "fingerprint": "x", "outputs": {}, "artefacts": {"../../../etc/passwd": "00"}}',
    "[" * 100000,
])
def test_a_damaged_stage_record_reruns_the_stage_instead_of_crashing(tmp_path, content):
    calls = []
    _run(tmp_path, calls=calls)
    (tmp_path / "stages" / "b.json").write_text(content)
    calls.clear()
    _, records = _run(tmp_path, calls=calls)
    assert calls == ["b", "c"] and not records["b"]["skipped"]


def test_a_second_run_on_a_locked_folder_gets_a_clear_error(tmp_path):
    from tfxfer.errors import LockedError
    from tfxfer.utils.lock import LOCK_NAME, FolderLock

    with FolderLock(tmp_path, command=["tfxfer", "run", "first.yaml"]):
        with pytest.raises(LockedError, match=r"is locked by another tfxfer process \(pid \d+ on .*first\.yaml"):
            FolderLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_stale_lock_from_a_killed_process_is_taken_over(tmp_path):
    import subprocess
    import sys

    from tfxfer.utils.lock import LOCK_NAME, FolderLock

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(child.stdout)  # a pid that has exited
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": __import__("socket").gethostname(),
                                                  "process_start": None, "command": ["tfxfer", "run"]}))
    with FolderLock(tmp_path) as lock:
        assert lock.notes == [f"took over a stale lock (process {dead} no longer runs)"]
    (tmp_path / LOCK_NAME).write_text("garbage")
    os.utime(tmp_path / LOCK_NAME, (0, 0))  # unreadable and old: a writer died mid-way
    with FolderLock(tmp_path) as lock:
        assert "holds no readable record" in lock.notes[0]
    (tmp_path / LOCK_NAME).write_text("garbage")  # unreadable but fresh: may be being written now
    from tfxfer.errors import LockedError

    with pytest.raises(LockedError, match="still writing its record"):
        FolderLock(tmp_path).acquire()


def test_two_runs_taking_over_the_same_stale_lock_do_not_both_hold_it(tmp_path, monkeypatch):
    """Run B judges the lock of a killed run stale, then pauses; run A takes the lock over meanwhile. B
    must then find A's live lock, not remove it and take the folder too."""
    import socket
    import threading

    from tfxfer.errors import LockedError
    from tfxfer.utils import lock as lockmod

    (tmp_path / lockmod.LOCK_NAME).write_text(json.dumps({"pid": 999999999, "host": socket.gethostname(),
                                                          "process_start": "1"}))
    a, b = lockmod.FolderLock(tmp_path), lockmod.FolderLock(tmp_path)
    b_judged, a_done = threading.Event(), threading.Event()
    stale = lockmod.FolderLock._stale

    def slow_stale(self, holder):
        why = stale(self, holder)
        if self is b and why and not b_judged.is_set():
            b_judged.set()
            a_done.wait(10)
        return why

    monkeypatch.setattr(lockmod.FolderLock, "_stale", slow_stale)
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_raised(b.acquire)))
    thread.start()
    assert b_judged.wait(10)
    a.acquire()
    a_done.set()
    thread.join(10)
    assert a._held and not b._held and isinstance(errors[0], LockedError), errors
    assert json.loads((tmp_path / lockmod.LOCK_NAME).read_text())["pid"] == os.getpid()
    a.release()
    assert sorted(os.listdir(tmp_path)) == [lockmod.TAKEOVER_NAME]  # the takeover's flock file stays


def _raised(call):
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test checks which
        return exc
    return None


def test_run_pipeline_refuses_a_folder_another_run_holds(tmp_path):
    from tfxfer.errors import LockedError
    from tfxfer.recipes.run import run_pipeline
    from tfxfer.utils.lock import FolderLock

    cfg = load_config(text="data: {source: animal_mnist}\nmodel: {weights: null}")
    with FolderLock(tmp_path / "run"):
        with pytest.raises(LockedError):
            run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
    assert sorted(os.listdir(tmp_path / "run")) == []  # nothing was written while it was locked


def test_resume_reads_a_saved_config_re_saved_as_utf16(tmp_path):
    from tfxfer.recipes.config import config_to_yaml
    from tfxfer.recipes.run import _check_resume

    cfg = load_config(text="data: {source: animal_mnist}\nmodel: {weights: null}")
    (tmp_path / "config.yaml").write_bytes(config_to_yaml(cfg).encode("utf-16"))  # (an editor's "Unicode")
    _check_resume(cfg, str(tmp_path))  # no UnicodeDecodeError: the same recipe
