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



def brightness_run(run, *, kernel=(8.0, -8.0), bias=(-10.0, 10.0), names=("bright", "dark")):
    """A hand-set model (mean brightness -> two classes; by default bright if pixel > 106) saved as a run
    saves it (``model/model.keras`` + ``labels.json``) under ``run``; returns ``run``."""
    import json

    import keras

    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    outputs = keras.layers.Dense(2, activation="softmax", name="head",
                                 kernel_initializer=keras.initializers.Constant([list(kernel)] * 3),
                                 bias_initializer=keras.initializers.Constant(list(bias)))(x)
    (run / "model").mkdir(parents=True)
    keras.Model(inputs, outputs).save(run / "model" / "model.keras")
    (run / "model" / "labels.json").write_text(json.dumps({"class_names": list(names)}))
    return run


def save_png(path, value, *, size: int = 20) -> None:
    """A flat ``size`` x ``size`` RGB PNG of gray ``value`` at ``path`` (folders made)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def brightness_folder(root):
    """``root/bright/`` and ``root/dark/`` with 6 flat PNGs each (gray 225-230 and 20-25), for
    `brightness_run` models; returns ``root``."""
    for i in range(6):
        save_png(root / "bright" / f"{i}.png", 230 - i)
        save_png(root / "dark" / f"{i}.png", 20 + i)
    return root
