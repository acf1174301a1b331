"""The benchmark scripts still fit the library they measure.

`make bench` is not part of the tests (each script runs for minutes to hours), so an API change could
break one unnoticed until someone re-measures. This reads every ``benchmarks/*.py`` without running it:
each import (function-level ones too) resolves, every tfxfer call binds to the real signature and the
attributes read on tfxfer results exist (`tests.api_calls`), and ``--help`` parses in a subprocess for
one script that imports TensorFlow only inside ``main``.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api_calls import check_attributes, check_block

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))


def test_there_are_benchmark_scripts():
    assert len(SCRIPTS) >= 15 and "vs_hand_written.py" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_benchmark_script_fits_the_api(name, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # they import _common and each other by file name,
    monkeypatch.syspath_prepend(str(BENCHMARKS.parent / "export"))  # and the device scripts
    code = (BENCHMARKS / name).read_text(encoding="utf-8")
    try:
        call_problems = check_block(code)[1]
        read_problems = check_attributes(code)[1]
    except ImportError as error:
        pytest.fail(f"benchmarks/{name}: {error}")
    assert call_problems + read_problems == []


def test_a_benchmark_script_answers_help():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "recipes.py"), "--help"], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0 and "--recipes" in result.stdout, result.stderr[-2000:]
