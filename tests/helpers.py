"""Shared test helpers: tiny transfer models and data."""

from __future__ import annotations

import numpy as np


def tiny_images(n: int = 16, size: int = 32, channels: int = 3, classes: int = 2, seed: int = 0):
    """Random raw-pixel images (0-255 float32) with labels 0..classes-1 that depend on brightness."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.uniform(0, 255, size=(n, size, size, channels)).astype("float32")
    x = np.clip(x * 0.5 + (y[:, None, None, None] * 255.0 / max(classes - 1, 1)) * 0.5, 0, 255).astype("float32")
    return x, y


def tiny_model(num_classes: int = 2, *, backbone: str = "mobilenet_v2", size: int = 32, **kwargs):
    from tfxfer.models import build_model

    kwargs.setdefault("weights", None)
    return build_model(backbone, num_classes, input_size=(size, size), **kwargs)


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
