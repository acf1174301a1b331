"""What a candidate costs on a device: parameters, full-int8 TFLite size, LiteRT latency.

The deployable model (raw pixels -> Preprocess -> backbone -> pool -> head, as
`tfxfer.models.build_model` makes it) is converted to full-integer int8 with a small
representative set drawn from the user's own images, and timed by `tfxfer.export.benchmark_tflite`
in a separate LiteRT process at batch 1. Random weights are used for the measurement: size and
latency depend on the architecture and input size, not on the weight values.

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer.edge_cost import measure_edge_cost
    >>> images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    >>> cost = measure_edge_cost("mobilenet_v2", input_size=(32, 32), channels=3, num_classes=2,
    ...                          representative=images, runs=3)
    >>> cost["params"] > 2_000_000, 1.0 < cost["int8_size_mib"] < 4.0, cost["latency_ms"] > 0
    (True, True, True)
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from tfxfer.export import benchmark_tflite, convert_tflite
from tfxfer.models import build_model
from tfxfer.transfer.embeddings import resize_batch


def measure_edge_cost(backbone, *, input_size: tuple[int, int], channels: int, num_classes: int,
                      representative: np.ndarray, task: str = "multiclass", threads: int = 1,
                      runs: int = 20, num_calibration: int = 32) -> dict:
    """Parameter count, int8 TFLite size (MiB) and median LiteRT latency (ms, batch 1).

    Args:
        backbone: catalog name or `BackboneSpec`.
        input_size: (height, width) of the deployed model.
        channels: channels of the raw input (1 grayscale, 3 RGB).
        num_classes: outputs of the head.
        representative: raw images (any size; resized) for int8 calibration.
        task: the head's task ("multiclass", "multilabel" or "regression").
        threads: LiteRT threads for the timing.
        runs: timed invocations (after 3 untimed).
        num_calibration: images used for calibration.

    Returns:
        ``{"params", "int8_size_mib", "latency_ms", "cost_s"}``.
    """
    start = time.perf_counter()
    model = build_model(backbone, num_classes, task=task, input_size=tuple(input_size), channels=channels,
                        weights=None, dropout=0.0, freeze=False)
    params = int(model.count_params())
    calibration = resize_batch(np.asarray(representative[:num_calibration]), tuple(input_size))
    content = convert_tflite(model, variant="int8", representative_data=calibration,
                             num_calibration=len(calibration))
    with tempfile.TemporaryDirectory(prefix="tfxfer-rank-") as tmp:
        path = os.path.join(tmp, "candidate_int8.tflite")
        with open(path, "wb") as f:
            f.write(content)
        bench = benchmark_tflite(path, threads=(int(threads),), warmup=3, runs=int(runs))
    del model
    return {
        "params": params,
        "int8_size_mib": len(content) / 2**20,
        "latency_ms": float(bench.median_ms(int(threads))),
        "cost_s": time.perf_counter() - start,
    }
