"""Determinism: with a seed and deterministic ops, two separate runs give identical metrics,
weights and exported TFLite files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.reliability.conftest import ROOT, SCENARIO, read_json
from tfxfer.errors import ArgumentError


def test_enable_determinism_rejects_bad_seeds():
    from tfxfer.reliability import enable_determinism

    for bad in (-1, 1.5, "1", True):
        with pytest.raises(ArgumentError, match="`seed` must be an int >= 0"):
            enable_determinism(bad)


@pytest.mark.slow
def test_two_seeded_runs_are_identical_down_to_the_tflite_bytes(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    procs = [subprocess.Popen([sys.executable, SCENARIO, "determinism", "--out", str(tmp_path / f"run{i}.json"),
                               "--export", str(tmp_path / f"run{i}.tflite")],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for i in (0, 1)]
    try:
        errors = [p.communicate(timeout=400)[1][-3000:] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs), errors
    a, b = read_json(tmp_path / "run0.json"), read_json(tmp_path / "run1.json")
    assert a["determinism"]["op_determinism"] and a["determinism"]["threads_pinned"]
    assert a["history"] == b["history"]  # identical metrics, every epoch
    assert a["weights"] == b["weights"] and a["predictions"] == b["predictions"]
    assert (tmp_path / "run0.tflite").read_bytes() == (tmp_path / "run1.tflite").read_bytes()
    assert a["tflite_sha256"] == b["tflite_sha256"]
    assert a["tflite_predictions"] == b["tflite_predictions"]
