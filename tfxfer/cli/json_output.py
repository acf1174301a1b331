"""The one JSON document that every ``--json`` command prints, and that ``export/litert_runner.py
--json`` prints on the device too (schema ``tfxfer/1``).

Rules:

* stdout holds exactly one JSON object, on one line, and nothing else: progress, Keras epoch
  lines and warnings go to stderr. NaN and infinities are written as ``null``.
* The document is printed on success AND on failure (a usage error, an unknown name, a failed
  gate, Ctrl-C), so a script never has to parse a traceback; the process's exit status is the
  same as ``exit_code``.

Every document has these keys::

    {
      "schema": "tfxfer/1",       # changes only with an incompatible change
      "command": "predict",       # the sub-command ("litert_runner" for the device runner)
      "ok": true,                 # exit_code == 0
      "exit_code": 0,             # 0 ok, 1 error, 2 usage, 3 gate failed, 4 chance-level model,
                                  # 130 interrupted
      "error": null               # or {"type": "UnknownNameError", "message": "...", "exit_code": 2}
    }

and the command's own fields (a failed command has them only when it got that far, e.g.
``doctor``'s checks or the device runner's per-input results):

==============  ======================================================================================
command         fields
==============  ======================================================================================
predict         ``model``; ``results``: one item per input, ``{"image": path, "top": [{"index", "label",
                "probability"}, ...]}`` (best first); text and NER models ``{"text", "result"}`` (the
                printed result line, for now). The device runner adds ``"inference_ms"`` per item and
                ``"threads"``; an input it cannot read gets ``"error": {"type", "message"}``
                instead of ``"top"`` (and the document's exit_code is 1).
evaluate        ``model``, ``data``, ``split``, ``metrics`` (accuracy, macro_f1, ece, num_examples,
                per_class: [{name, precision, recall, f1, support}]; entity-level F1 for NER),
                ``chance`` (`tfxfer.metrics.chance_check`: ``flagged``, ``reasons``, ``accuracy``,
                ``chance``, ...; null for NER); with ``--groups`` ``groups`` (the ``groups.json``
                record of `tfxfer.report.run_data`), with ``--target`` ``shift`` (``shift.json``).
                A flagged model exits 4 with ``error.type`` "ChanceLevelModel" and every field present
export          ``model``, ``out``, ``report``, ``variants``: one row per exported file (variant, file,
                size_kib, latency_ms, top1_agreement, accuracy_file, accuracy_drop_pts, gate, ...)
run             ``run_dir``, ``manifest``, ``report_html``, ``report_md``, ``tflite``, ``gate_passed``,
                ``metrics``, ``stages``, ``wall_s``, ``chance`` (as for evaluate; exit 4 when flagged)
rank            ``kind`` ("image" / "text"), ``candidates`` (the ranking's rows, best first), ``best``,
                ``ranking`` (primary, cost_axis, budget, num_samples, num_classes, timings, advisory,
                ``sample``: which examples were scored, {indices, count, of, per_class, max_samples,
                max_per_class, seed, stratified}), ``probe`` (the negative-transfer verdict or null)
benchmark       ``model``, ``data``, ``split``, ``examples``, ``out``, ``report`` (its ``benchmark.json``),
                ``formats``: one row per format, the Keras reference first (format, runtime, file,
                size_bytes, accuracy, accuracy_keras, accuracy_drop_pts, drop_interval,
                top1_agreement, max_abs_error, latency_ms, p90_ms, latency_nt_ms, threads, floor
                "ref" / "pass" / "FAIL", thresholds, failures; `tfxfer.export.table.benchmark_row`).
                A format below its floor exits 3 with ``error.type`` "GateError" and every field present
datasets        ``datasets``: [{name, title, task, sizes, licence, commercial_use, package, install,
                origin, split_policy, description}]
backbones       ``backbones``: [{name, family, input_size, min_input_size, params, float32_bytes,
                weights_source, offline_weights}]
doctor          ``checks``: [{name, ok, found, expected, fix, level}]
report          ``html``, ``markdown``
==============  ======================================================================================

Example:
    >>> doc = document("backbones", backbones=[])
    >>> doc["schema"], doc["ok"], doc["error"]
    ('tfxfer/1', True, None)
    >>> from tfxfer.errors import UnknownNameError
    >>> failed = document("datasets", exit_code=2, error=UnknownNameError("data set", "elvp", ["elpv"]))
    >>> failed["ok"], failed["error"]["type"], failed["error"]["exit_code"]
    (False, 'UnknownNameError', 2)
    >>> dumps({"x": float("nan")})
    '{"x": null}'
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

SCHEMA = "tfxfer/1"


def error_object(error, *, exit_code: int) -> dict:
    """``{"type", "message", "exit_code"}`` for an exception, a message string, or such a dict."""
    if isinstance(error, Mapping):
        return {"type": str(error["type"]), "message": str(error["message"]), "exit_code": int(exit_code)}
    if isinstance(error, BaseException):
        kind, message = type(error).__name__, str(error).strip() or type(error).__name__
    else:
        kind, message = "Error", str(error)
    return {"type": kind, "message": message, "exit_code": int(exit_code)}


def document(command: str, *, exit_code: int = 0, error=None, **fields) -> dict:
    """A schema ``tfxfer/1`` document: the common keys, then ``fields``."""
    doc = {"schema": SCHEMA, "command": command, "ok": exit_code == 0, "exit_code": int(exit_code),
           "error": None if error is None else error_object(error, exit_code=exit_code)}
    doc.update(fields)
    return doc


def _plain(value):
    """``value`` with numpy scalars / arrays, tuples and NaN made JSON-safe (imports nothing)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist())
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if hasattr(value, "__fspath__"):
        return str(value)
    return str(value)


def dumps(doc: dict) -> str:
    """``doc`` as one line of strict JSON (NaN -> null, numpy values -> numbers)."""
    return json.dumps(_plain(doc), ensure_ascii=False, allow_nan=False)
