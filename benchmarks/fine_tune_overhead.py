"""tfxfer `fine_tune` (staged unfreezing + discriminative rates + warmup) vs a hand-written
plain-Keras loop doing the same stages on the same model and data.

Each side runs in its own subprocess so peak memory (ru_maxrss) is measured separately. Epoch
times are compared stage by stage in the unfreezing phase (tracing epochs excluded on both
sides: the first epoch of each stage). Targets (issue 2): epoch time ratio <= 1.05, peak memory
ratio <= 1.10.

    python benchmarks/fine_tune_overhead.py [--images 512] [--size 96] [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import peak_rss_mib, print_table, write_result  # noqa: E402

STAGES = (1, 2, 3)  # top groups unfrozen in each stage
EPOCHS_PER_STAGE = 3


def _data(images, size):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (images, size, size, 3)).astype("float32"), rng.integers(0, 5, images)


def _timer_callback():
    import keras

    class Times(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = {}

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times[epoch] = time.perf_counter() - self._t

    return Times()


def run_tfxfer(args):
    import keras

    from tfxfer.models import build_model
    from tfxfer.train.fine_tune import fine_tune

    x, y = _data(args.images, args.size)
    keras.utils.set_random_seed(0)
    model = build_model(args.backbone, 5, input_size=(args.size, args.size), weights=None)
    timer = _timer_callback()
    stages = {i * EPOCHS_PER_STAGE: n for i, n in enumerate(STAGES)}
    fine_tune(model, (x, y), head_epochs=0, epochs=EPOCHS_PER_STAGE * len(STAGES), stages=stages, base_lr=1e-3,
              warmup_epochs=0, layer_decay=0.5, batch_size=32, callbacks=[timer], verbose=0)
    return timer.times


def run_plain(args):
    """What a careful user writes by hand: per stage, set trainable flags, recompile, fit."""
    import keras

    from tfxfer.models import build_model

    x, y = _data(args.images, args.size)
    keras.utils.set_random_seed(0)
    model = build_model(args.backbone, 5, input_size=(args.size, args.size), weights=None)
    backbone = model.layers[2]
    names = [l.name for l in backbone.layers]
    from tfxfer.freezing import layer_groups

    groups = [g for g in layer_groups(model) if g != "head"]
    group_layers = {g: [l.name for l in layer_groups(model)[g]] for g in groups}
    timer = _timer_callback()
    ds = __import__("tensorflow").data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(32)
    for i, n in enumerate(STAGES):
        unfrozen = {name for g in groups[len(groups) - n:] for name in group_layers[g]}
        backbone.trainable = True
        for layer in backbone.layers:
            layer.trainable = layer.name in unfrozen and not isinstance(layer, keras.layers.BatchNormalization)
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(ds, initial_epoch=i * EPOCHS_PER_STAGE, epochs=(i + 1) * EPOCHS_PER_STAGE, callbacks=[timer],
                  verbose=0)
    del names
    return timer.times


def child(args):
    times = run_tfxfer(args) if args.child == "tfxfer" else run_plain(args)
    print("RESULT " + json.dumps({"times": times, "peak_rss_mib": peak_rss_mib()}))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per side; the fastest counts")
    parser.add_argument("--child", choices=["tfxfer", "plain"])
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    results = {}
    for _ in range(args.repeats):  # alternate sides so background load hits both alike
        for side in ("plain", "tfxfer"):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--images", str(args.images),
                   "--size", str(args.size), "--backbone", args.backbone]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            line = next(l for l in out.splitlines() if l.startswith("RESULT "))
            run = json.loads(line[len("RESULT "):])
            if side not in results:
                results[side] = run
            else:
                best = results[side]
                best["times"] = {e: min(t, run["times"][e]) for e, t in best["times"].items()}
                best["peak_rss_mib"] = max(best["peak_rss_mib"], run["peak_rss_mib"])
    rows = []
    for i, n in enumerate(STAGES):
        steady = [i * EPOCHS_PER_STAGE + k for k in range(1, EPOCHS_PER_STAGE)]
        plain = sum(results["plain"]["times"][str(e)] for e in steady) / len(steady)
        ours = sum(results["tfxfer"]["times"][str(e)] for e in steady) / len(steady)
        rows.append({"stage": f"top {n} groups", "plain_epoch_s": plain, "tfxfer_epoch_s": ours, "ratio": ours / plain})
    epoch_ratio = sum(r["tfxfer_epoch_s"] for r in rows) / sum(r["plain_epoch_s"] for r in rows)
    mem_ratio = results["tfxfer"]["peak_rss_mib"] / results["plain"]["peak_rss_mib"]
    print_table(rows)
    print(f"\nepoch time ratio tfxfer/plain: {epoch_ratio:.3f} (target <= 1.05)")
    print(f"peak memory: tfxfer {results['tfxfer']['peak_rss_mib']:.0f} MiB, plain "
          f"{results['plain']['peak_rss_mib']:.0f} MiB, ratio {mem_ratio:.3f} (target <= 1.10)")
    write_result("fine_tune_overhead", rows, {
        "backbone": args.backbone, "images": args.images, "input_size": args.size,
        "epoch_time_ratio": round(epoch_ratio, 3), "peak_memory_ratio": round(mem_ratio, 3),
        "peak_rss_mib": {k: round(v["peak_rss_mib"], 1) for k, v in results.items()},
        "targets": {"epoch_time_ratio": 1.05, "peak_memory_ratio": 1.10},
    })


if __name__ == "__main__":
    main()
