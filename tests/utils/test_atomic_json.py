"""`atomic_write_json` writes strict JSON: a NaN or infinite float (Python or numpy, however deeply
nested) is null, never a NaN / Infinity token other JSON parsers refuse; the layout stays as it was."""

import json

import numpy as np

from tfxfer.utils.atomic import atomic_write_json


def _refuse(token):
    raise ValueError(f"not strict JSON: {token}")


def test_non_finite_floats_are_written_as_null(tmp_path):
    path = tmp_path / "record.json"
    atomic_write_json(path, {"loss": float("nan"), "curve": [1.5, np.float32("inf"), (np.float64("-inf"),)],
                             "lr": np.float32(0.5), "steps": np.int64(3)})
    text = path.read_text(encoding="utf-8")
    assert json.loads(text, parse_constant=_refuse) == {"loss": None, "curve": [1.5, None, [None]], "lr": 0.5,
                                                        "steps": 3}
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"  # indent 2, sorted keys
    atomic_write_json(path, {float("nan"): 1})  # a NaN key stays the "NaN" string it always was
    assert json.loads(path.read_text(encoding="utf-8")) == {"NaN": 1}
