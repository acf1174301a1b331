"""Read what a pipeline run left in its directory (the report's only input), and the record formats
of the optional audit files.

The report never needs the process that trained the model: every number and figure comes from the
JSON / NPZ files the stages wrote, so a report can be rebuilt from a run directory at any time.

Optional records (each rendered as its own report section when present; read from the path given
first, else from the run folder's top level; a malformed one is listed in ``run["problems"]`` and
its section says so, the report is still written):

``eval/groups.json`` -- a bias audit (`groups_record`; written by ``tfxfer evaluate RUN DATA
--groups COLUMN --save``)::

    {"column": "module_type", "data": "elpv", "split": "test",
     "metrics": ["accuracy", "recall[functional]", ..., "fpr", "fnr", "ece"],
     "groups": ["mono", "poly"], "sizes": {"mono": 131, "poly": 131},
     "rows": [{"group": "mono", "n": 131, "accuracy": 0.91, "accuracy_low": 0.86, "accuracy_high": 0.95, ...},
              ..., {"group": "overall", ...}],
     "gaps": {"accuracy": {"value", "low", "high", "worst_group", "best_group"}, ...},
     "confidence_level": 0.95, "n_bootstrap": 1000, "positive_class": 1, "notes": [...]}

``eval/shift.json`` -- shift detection between the evaluation data and unlabelled deployment data
(`shift_record`; ``tfxfer evaluate RUN DATA --target TARGET --save``): `tfxfer.adapt.ShiftResult`
as a dict plus where the data came from::

    {"source": "elpv", "target": "photos/", "split": "test", "shifted": true, "p_value": 0.004,
     "alpha": 0.01, "tests": [{"name": "classifier", "statistic": 0.71, "p_value": 0.002,
     "permutations": 500, "n_source": 262, "n_target": 300, "note": ""}, ...],
     "n_source": 262, "n_target": 300, "feature_dim": 1280,
     "per_class": [{"label": 0, "name": "functional", "n_source", "n_target", "source_confidence",
                    "target_confidence", "drop"}, ...],
     "source_confidence", "target_confidence", "source_accuracy", "expected_target_accuracy",
     "target_accuracy" (null without target labels), "notes": [...], "verdict": "Shift detected: ..."}

``adapt/adaptation.json`` -- a recipe's ``adapt:`` stage::

    {"method": "coral", "target": "elpv poly cells",
     "source_only": {"accuracy": 0.78, ...}, "adapted": {"accuracy": 0.83, ...},
     "oracle": {"accuracy": 0.88, ...} or null, "shift": <a shift.json record> or null,
     "notes": ["..."], "stopped": false}

``notes`` and ``stopped`` (optional: records written before them lack both): ``stopped`` is true when the
method diverged or collapsed (the last good weights were kept) or changed nothing; the report then warns.

Every metric dict maps a metric name to a number; the report shows each metric the three share,
and for ``accuracy`` the share of the source-only-to-oracle gap the adaptation closed.

Example:
    >>> import tempfile
    >>> load_run(tempfile.mkdtemp())["history"] is None
    True
    >>> check_record("adaptation", {"method": "adabn", "target": "t", "source_only": {"accuracy": 0.7},
    ...                             "adapted": {"accuracy": 0.8}, "oracle": None, "shift": None})
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.report.run_files import check_file

FILES = {
    "manifest": "manifest.json",
    "data": "data/summary.json",
    "history": "model/history.json",
    "metrics": "eval/metrics.json",
    "misclassified": "eval/misclassified.json",
    "export": "export/table.json",
    "gate": "export/gate.json",
}


#: Files that mark a folder as a run directory: ``tfxfer run`` writes config.yaml first, manifest.json
#: when a stage ends (`is_run_dir`).
RUN_MARKERS = ("manifest.json", "config.yaml")

#: Optional records: name -> paths tried in order (relative to the run folder).
RECORDS = {
    "groups": ("eval/groups.json", "groups.json"),
    "shift": ("eval/shift.json", "shift.json"),
    "adaptation": ("adapt/adaptation.json", "adaptation.json"),
}


def _is_number(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _metric_dict(value, key: str) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in value.items()):
        return f"`{key}` must map metric names to numbers"
    return None


def check_record(kind: str, record) -> str | None:
    """What is wrong with an optional record (``"groups"``, ``"shift"`` or ``"adaptation"``), or None.

    Example:
        >>> check_record("groups", {"column": "site", "rows": "x"})
        '`rows` must be a list of objects with "group" and "n"'
    """
    if not isinstance(record, dict):
        return f"a {type(record).__name__}, not an object"
    if kind == "groups":
        rows = record.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "group" in r and "n" in r for r in rows):
            return '`rows` must be a list of objects with "group" and "n"'
        if not isinstance(record.get("metrics"), list) or not isinstance(record.get("gaps", {}), dict):
            return "`metrics` must be a list and `gaps` an object"
        return None
    if kind == "shift":
        if not isinstance(record.get("shifted"), bool) or not _is_number(record.get("p_value")):
            return "`shifted` must be true or false and `p_value` a number"
        if not isinstance(record.get("tests", []), list) or not isinstance(record.get("per_class", []), list):
            return "`tests` and `per_class` must be lists"
        return None
    if kind == "adaptation":
        if not isinstance(record.get("method"), str):
            return "`method` must be a string"
        for key in ("source_only", "adapted"):
            problem = _metric_dict(record.get(key), key)
            if problem:
                return problem
        if record.get("oracle") is not None:
            problem = _metric_dict(record["oracle"], "oracle")
            if problem:
                return problem
        if record.get("shift") is not None:
            problem = check_record("shift", record["shift"])
            if problem:
                return f"`shift`: {problem}"
        return None
    raise ValueError(f"unknown record kind {kind!r}; known: {', '.join(RECORDS)}")


def groups_record(report, *, column: str, data: str, split: str | None = None) -> dict:
    """The ``groups.json`` record of a `tfxfer.fairness.GroupReport` (see the module docstring)."""
    def plain(value):
        return None if isinstance(value, float) and value != value else value

    gaps = {m: {"value": plain(g.value), "low": plain(g.low), "high": plain(g.high),
                "worst_group": None if g.worst_group is None else str(g.worst_group),
                "best_group": None if g.best_group is None else str(g.best_group)} for m, g in report.gaps.items()}
    rows = [{k: plain(v) for k, v in row.items()} for row in report.to_rows()]
    return {"column": str(column), "data": str(data), "split": split, "metrics": list(report.metrics),
            "groups": [str(g) for g in report.groups], "sizes": {str(g): report.sizes[g] for g in report.groups},
            "rows": rows, "gaps": gaps, "confidence_level": report.confidence_level,
            "n_bootstrap": report.n_bootstrap, "positive_class": report.positive_class, "notes": list(report.notes)}


def shift_record(result, *, source: str, target: str, split: str | None = None, class_names=None) -> dict:
    """The ``shift.json`` record of a `tfxfer.adapt.ShiftResult` (see the module docstring)."""
    out = {"source": str(source), "target": str(target), "split": split, **result.to_dict()}
    names = list(class_names or [])
    for row in out.get("per_class", []):
        label = row.get("label")
        row["name"] = str(names[label]) if isinstance(label, int) and 0 <= label < len(names) else str(label)
    return out


def is_run_dir(path) -> bool:
    """Whether ``path`` is a folder holding one of `RUN_MARKERS` (what ``tfxfer run`` leaves in a run).

    Example:
        >>> import tempfile
        >>> is_run_dir(tempfile.mkdtemp())
        False
    """
    path = os.fspath(path)
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, m)) for m in RUN_MARKERS)


def _json(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _unreadable(exc: BaseException) -> str:
    """Why a file could not be read, in one short line."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def unreported_problems(run: dict) -> list[str]:
    """The files `load_run` could not use and no section reports (an optional record's problem is shown
    in its own section): one line each, for the top of the HTML and Markdown reports.

    Example:
        >>> unreported_problems({"problems": ["eval/metrics.json: not readable JSON; left out of the report",
        ...                                   "eval/groups.json: a JSON list, not an object; left out of the report"]})
        ['eval/metrics.json: not readable JSON; left out of the report']
    """
    shown = tuple(path for paths in RECORDS.values() for path in paths)
    unfinished = unfinished_sentence(run) if "manifest" in run else None  # `load_run` always sets it
    return [*([unfinished] if unfinished else []), *(p for p in run.get("problems") or [] if not p.startswith(shown))]


#: Manifest statuses of a run that finished (its gate passed, or failed with the files written).
FINISHED = ("ok", "gate_failed")


def unfinished_sentence(run: dict) -> str | None:
    """None for a finished run, else one line that says it did not finish (first in both reports: its
    files may be a mix of this attempt's and an earlier run's).

    Example:
        >>> unfinished_sentence({"manifest": {"status": "running"}})[:48]
        'manifest.json: the run did not finish (status: r'
        >>> unfinished_sentence({"manifest": {"status": "ok"}}) is None
        True
    """
    manifest = run.get("manifest")
    status = manifest.get("status") if isinstance(manifest, dict) else None
    if status in FINISHED:
        return None
    why = {"running": "it was stopped before its end (killed, or still running)",
           "interrupted": "it was interrupted", "failed": "a stage failed"}.get(status, "no manifest says it ended")
    error = manifest.get("error") if isinstance(manifest, dict) else None
    return (f"manifest.json: the run did not finish (status: {status or 'unknown'}; {why}"
            + (f": {error}" if error else "") + "); files below may be from an earlier run. "
            "Re-run it (add --resume to continue)")


def _object(run_dir: str, rel: str, *, shape: str, required: bool, problems: list):
    """The JSON object in ``run_dir/rel`` (None when the file is missing). A file that is not UTF-8
    JSON, holds something other than an object or fails `check_file` for ``shape`` (a field of the
    wrong type) raises `ArgumentError` naming it if ``required``, else is listed in ``problems`` and
    read as missing."""
    path = os.path.join(run_dir, rel)
    try:
        value = _json(path)
    except (OSError, ValueError, RecursionError) as exc:  # not UTF-8, not JSON (a truncated write), unreadable
        problem = f"not readable JSON ({_unreadable(exc)})"
    else:
        problem = None if value is None else check_file(shape, value)
        if problem is None:
            return value
    if required:
        raise ArgumentError("run_dir", run_dir, f"holds a {rel} that tfxfer cannot use: {problem}",
                            hint=f"Restore {rel} from a backup, or delete it to report from the other files")
    problems.append(f"{rel}: {problem}; left out of the report")
    return None


def _config(run_dir: str):
    """``(text, mapping)`` of ``run_dir/config.yaml`` ((None, None) when missing); `ArgumentError` naming
    the file when it is not UTF-8 YAML holding a mapping whose ``model``, ``data`` and ``export`` are
    mappings."""
    import yaml

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        config = yaml.safe_load(text)
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:
        problem = f"not readable YAML ({_unreadable(exc)})"
    else:
        problem = None if config is None else check_file("config", config)
        if problem is None:
            return text, config
        problem = problem.replace("a JSON", "a YAML").replace("not an object", "not a mapping")
    raise ArgumentError("run_dir", run_dir, f"holds a config.yaml that tfxfer cannot use: {problem}",
                        hint="Restore config.yaml (the resolved recipe the run saved), or delete it")


def _merge_distill(history: dict, extra: dict) -> dict:
    """The training curves continued by distillation's (``distill/history.json``)."""
    merged = {k: list(v) for k, v in history["history"].items()}
    length = max((len(v) for v in merged.values()), default=0)
    for key, values in extra["history"].items():
        merged.setdefault(key, [None] * length)
        merged[key] = merged[key] + list(values)
    return dict(history, history=merged, stages=history.get("stages", []) + extra.get("stages", []),
                lr_steps=history.get("lr_steps", []) + extra.get("lr_steps", []))


def load_run(run_dir) -> dict:
    """``{"run_dir", "config", "manifest", "data", "history", "metrics", "misclassified",
    "thumbnails", "export", "gate", "groups", "shift", "adaptation", "problems"}``; a missing file
    gives None; ``problems`` lists the files that could not be used (an optional record that fails
    `check_record`, a result file that is not a JSON object or fails
    `tfxfer.report.run_files.check_file`: each is then read as missing).

    Raises:
        ArgumentError: ``manifest.json`` or ``config.yaml`` (the run's identity and status) exists
            but is not UTF-8 JSON / YAML holding an object (for the manifest: with its fields of the
            types `check_file` expects); the message names the file.
    """
    run_dir = os.fspath(run_dir)
    out = {"run_dir": os.path.abspath(run_dir)}
    problems = []
    for key, rel in FILES.items():
        out[key] = _object(run_dir, rel, shape=key, required=key == "manifest", problems=problems)
    out["config_text"], out["config"] = _config(run_dir)
    extra = _object(run_dir, "distill/history.json", shape="distill_history", required=False, problems=problems)
    history = out["history"]
    if history and extra:  # distillation continues the training curves
        out["history"] = _merge_distill(history, extra)
    out["problems"] = problems
    for kind, paths in RECORDS.items():
        out[kind] = None
        for rel in paths:
            path = os.path.join(run_dir, rel)
            if not os.path.isfile(path):
                continue
            try:
                record = _json(path)
            except (OSError, ValueError) as exc:  # not JSON, not UTF-8: say so in the report
                out["problems"].append(f"{rel}: not readable JSON ({str(exc).splitlines()[0][:200]})")
                break
            problem = check_record(kind, record)
            if problem:
                out["problems"].append(f"{rel}: {problem}")
            else:
                out[kind] = record
            break
    thumbs = os.path.join(run_dir, "eval", "misclassified.npz")
    out["thumbnails"] = None
    if os.path.isfile(thumbs):
        try:
            with np.load(thumbs) as z:
                out["thumbnails"] = z["thumbnails"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # damaged or foreign archive
            out["problems"].append(f"eval/misclassified.npz: not a readable thumbnail archive ({_unreadable(exc)}); "
                                   "left out of the report")
    _check_thumbnails(out)
    return out


def _check_thumbnails(run: dict) -> None:
    """Drop a thumbnail archive that is not a batch of images or that ``misclassified.json`` indexes past."""
    thumbnails, shown = run["thumbnails"], (run.get("misclassified") or {}).get("shown") or []
    if thumbnails is None:
        return
    if thumbnails.ndim != 4 or thumbnails.shape[-1] not in (1, 3, 4) or thumbnails.dtype.kind not in "buif":
        problem = f"not a batch of images (an array of shape {thumbnails.shape}, dtype {thumbnails.dtype})"
    else:
        wanted = max((s["thumbnail"] for s in shown if s.get("thumbnail") is not None), default=-1)
        if wanted < len(thumbnails):
            return
        problem = f"holds {len(thumbnails)} thumbnail(s), but eval/misclassified.json shows number {wanted}"
    run["problems"].append(f"eval/misclassified.npz: {problem}; left out of the report")
    run["thumbnails"] = None
