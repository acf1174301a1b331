"""The stage runner: run each stage once, record it with a fingerprint, skip it when unchanged.

A `Stage` declares the configuration it depends on and the stages it reads from. Its fingerprint
is the hash of that configuration section, the *results* of its input stages (their fingerprints
plus the sha256 of the files they wrote) and, for the data stage, a content hash of the source.
Each finished stage leaves ``stages/<name>.json`` in the run directory; a later run skips the stage
when the fingerprint matches and its files are intact, so re-running an unchanged recipe redoes
nothing and an interrupted run (``--resume``) continues after the last finished stage.

A stage that runs again sees what its last finished run wrote (`previous_outputs`: its outputs and
artefacts, carried through the records of runs that did not finish), so it can remove the files it
no longer writes (the export stage does: `tfxfer.recipes.export_files`).

Example:
    >>> import tempfile
    >>> from tfxfer.recipes.config_loader import load_config
    >>> from tfxfer.recipes.context import RunContext
    >>> calls = []
    >>> stage = Stage("hello", run=lambda ctx: calls.append(1) or {"n": len(calls)},
    ...               config=lambda cfg: {"seed": cfg.seed})
    >>> ctx = RunContext(load_config(text="data: {source: x}"), tempfile.mkdtemp())
    >>> Runner(ctx).execute(stage)["skipped"], Runner(ctx).execute(stage)["skipped"], calls
    (False, True, [1])
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import time
from typing import Callable

from tfxfer.recipes.fingerprint import file_sha256, fingerprint
from tfxfer.utils.atomic import atomic_write_json

STAGES_DIR = "stages"


@dataclasses.dataclass(frozen=True)
class Stage:
    """One step of a pipeline.

    Attributes:
        name: stage name (also its record file ``stages/<name>.json``).
        run: ``run(ctx) -> dict`` of JSON-safe outputs; ``outputs["artefacts"]`` lists the files it
            wrote (relative to the run directory), which are hashed into the record.
        config: ``config(cfg) -> dict``: the resolved configuration the stage depends on.
        inputs: names of earlier stages whose results feed this one.
        probe: optional ``probe(ctx) -> dict`` of content fingerprints of outside inputs (data).
        always: run even when unchanged (cheap stages whose output reflects the whole run).
        version: bump when the stage's code changes what it writes.
    """

    name: str
    run: Callable
    config: Callable
    inputs: tuple = ()
    probe: Callable | None = None
    always: bool = False
    version: int = 1


#: A stage record larger than this is not read (it is damaged or not ours).
MAX_RECORD_BYTES = 64 << 20


def record_problem(record, *, run_dir: str) -> str | None:
    """What is wrong with a stage record read from disk, or None when it can be used.

    A usable record is a JSON object whose ``status`` and ``fingerprint`` are strings; a finished
    one (status "done") also has an ``outputs`` object and ``artefacts`` mapping relative paths
    inside the run folder to sha256 digests.

    Example:
        >>> record_problem({"status": "done", "fingerprint": "ab", "outputs": {},
        ...                 "artefacts": {"../../etc/passwd": "00"}}, run_dir="/runs/a")
        "artefact path '../../etc/passwd' leads outside the run folder"
    """
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not an object"
    for key in ("status", "fingerprint"):
        if not isinstance(record.get(key), str):
            return f"`{key}` is missing or not a string"
    if record["status"] != "done":
        return None
    if not isinstance(record.get("outputs"), dict):
        return "`outputs` is missing or not an object"
    artefacts = record.get("artefacts", {})
    if not isinstance(artefacts, dict):
        return "`artefacts` is not an object"
    root = os.path.realpath(run_dir)
    for rel, digest in artefacts.items():
        if not isinstance(digest, str):
            return f"the digest of artefact {rel[:200]!r} is not a string"
        full = os.path.realpath(os.path.join(root, rel))
        if os.path.isabs(rel) or not full.startswith(root.rstrip(os.sep) + os.sep):
            return f"artefact path {rel[:200]!r} leads outside the run folder"
    return None


def carried(record) -> dict | None:
    """``{"outputs", "artefacts"}`` of the last finished run of a stage: from ``record`` when it is done,
    else what an unfinished record carried forward (``previous``); None when there is none.

    Example:
        >>> carried({"status": "running", "previous": {"outputs": {}, "artefacts": ["export/a.tflite"]}})
        {'outputs': {}, 'artefacts': ['export/a.tflite']}
    """
    if not isinstance(record, dict):
        return None
    if record.get("status") == "done":
        return {"outputs": record.get("outputs") or {}, "artefacts": sorted(record.get("artefacts") or {})}
    previous = record.get("previous")
    return previous if isinstance(previous, dict) else None


def previous_outputs(ctx, name: str) -> dict | None:
    """What stage ``name``'s last finished run in this folder wrote (`carried`), while it runs again."""
    return ctx.memo(f"previous:{name}", lambda: None)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Runner:
    """Executes stages in a `RunContext`, skipping those whose fingerprint is unchanged."""

    def __init__(self, ctx, *, force: bool = False):
        self.ctx = ctx
        self.force = force

    def record_path(self, name: str) -> str:
        return self.ctx.path(STAGES_DIR, f"{name}.json")

    def load_record(self, name: str) -> dict | None:
        """The stage's record, or None when there is none or it is damaged (then the stage runs
        again, and the console says why)."""
        path = self.record_path(name)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                record = json.loads(f.read(MAX_RECORD_BYTES + 1))
            problem = record_problem(record, run_dir=self.ctx.run_dir)
        except (OSError, ValueError, RecursionError) as exc:
            problem = f"not readable JSON ({type(exc).__name__})"
        if problem is not None:
            self.ctx.console.detail(f"{STAGES_DIR}/{name}.json is damaged ({problem}): the stage runs again")
            return None
        return record

    def _intact(self, record: dict) -> bool:
        for rel, digest in record.get("artefacts", {}).items():
            path = self.ctx.abs(rel)
            if not os.path.isfile(path) or file_sha256(path) != digest:
                return False
        return True

    def fingerprint_of(self, stage: Stage) -> tuple[str, dict]:
        probe = stage.probe(self.ctx) if stage.probe else {}
        upstream = {}
        for name in stage.inputs:
            if name in self.ctx.records:
                upstream[name] = self.ctx.records[name]["result"]
        fp = fingerprint({"stage": stage.name, "version": stage.version, "config": stage.config(self.ctx.cfg),
                          "probe": probe, "inputs": upstream})
        return fp, probe

    def execute(self, stage: Stage) -> dict:
        """Run ``stage`` or reuse its record; returns the record (with ``skipped``)."""
        ctx, console = self.ctx, self.ctx.console
        fp, probe = self.fingerprint_of(stage)
        old = self.load_record(stage.name)
        reason = "forced" if self.force else "always runs" if stage.always else "new"
        if old is not None and not self.force and not stage.always:
            if old.get("status") != "done":
                reason = f"previous run {old.get('status', 'incomplete')}"
            elif old.get("fingerprint") != fp:
                reason = "inputs changed"
            elif not self._intact(old):
                reason = "outputs missing or modified"
            else:
                record = dict(old, skipped=True)
                ctx.outputs[stage.name] = record["outputs"]
                ctx.records[stage.name] = record
                console.stage(stage.name, "skipped", f"unchanged (fingerprint {fp})")
                return record
        console.stage(stage.name, "running", reason if console.verbosity >= 2 or reason != "new" else "")
        console.detail(f"fingerprint {fp}")
        ctx.remember(f"fingerprint:{stage.name}", fp)  # e.g. to key a stage's own checkpoints
        started = _now()
        previous = carried(old)  # kept in the records until a run of the stage finishes
        ctx.remember(f"previous:{stage.name}", previous)
        carry = {"previous": previous} if previous else {}
        atomic_write_json(self.record_path(stage.name), {"stage": stage.name, "fingerprint": fp,
                                                         "status": "running", "started": started, **carry})
        t0 = time.perf_counter()
        try:
            outputs = dict(stage.run(ctx) or {})
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            atomic_write_json(self.record_path(stage.name), {
                "stage": stage.name, "fingerprint": fp, "status": status, "started": started,
                "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                "wall_s": round(time.perf_counter() - t0, 3), **carry})
            raise
        wall = time.perf_counter() - t0
        artefacts = {rel: file_sha256(ctx.abs(rel)) for rel in outputs.pop("artefacts", [])}
        record = {"stage": stage.name, "fingerprint": fp, "status": "done", "started": started,
                  "finished": _now(), "wall_s": round(wall, 3), "probe": probe, "outputs": outputs,
                  "artefacts": artefacts, "result": fingerprint([fp, artefacts, outputs])}
        atomic_write_json(self.record_path(stage.name), record)
        record = dict(record, skipped=False)
        ctx.outputs[stage.name] = outputs
        ctx.records[stage.name] = record
        console.stage(stage.name, "done", f"{wall:.1f}s")
        return record
