"""The stage runner: fingerprints, skipping unchanged stages, re-running changed ones, failures."""

import json
import os

import pytest

from tfxfer.recipes.config import load_config
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
