"""Shared test helpers that are not factories (tiny models and data: `tests.factories`)."""

from __future__ import annotations

import numpy as np


def weights_by_path(layers) -> dict:
    """{variable path: numpy copy} for every weight of ``layers``."""
    out = {}
    for layer in layers:
        for v in layer.weights:
            out[v.path] = np.array(v.numpy(), copy=True)
    return out


def wait_for_processes(procs, *, timeout: float) -> None:
    """Wait for every ``subprocess.Popen`` (stderr piped); kill any still running; fail with the
    tail of each failing process's stderr."""
    errors = []
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                errors.append(err[-3000:])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not errors, "\n---\n".join(errors)


def one_line_error(capsys, argv, code=2) -> str:
    """Run ``tfxfer argv``; assert exit ``code`` and exactly one ``tfxfer: error:`` line on stderr (no
    traceback); return that line."""
    from tfxfer import cli

    assert cli.main(argv) == code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfxfer: error: ") and "Traceback" not in captured.err, lines
    return lines[0]

