"""Reliability and scale-out costs on this machine.

1. Per-epoch checkpointing overhead: the same fine-tuning epochs of a MobileNetV2 transfer model
   (whole backbone unfrozen, Adam: weights + two moments per variable are saved) with no callback
   (plain Keras), with Keras's own ``BackupAndRestore``, and with tfxfer's ``ResumableCheckpoint``
   (weights, optimizer state, schedule position, RNG states; atomic, fsynced). Each side is one
   ``fit`` of several epochs timed wall-clock (saves, background writes and the final wait
   included; the model is traced beforehand), the sides alternate over rounds and the fastest
   run of each is compared. The blocking cost of one save is timed directly as well, in the
   default background mode and synchronously. Target: overhead <= 5% of epoch time.
2. Two-worker vs one-worker throughput: ``MultiWorkerMirroredStrategy`` with two worker processes
   on 127.0.0.1 (same global batch, each worker computes half) against one process training
   alone. Both workers share this machine's cores, so this measures the collective overhead, not a
   speed-up: with 2 cores one worker already uses both.

    python benchmarks/reliability.py [--images 512] [--size 96] [--epochs 3] [--mw-size 64] [--steps 12]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from _common import Timer, print_table, write_result  # noqa: E402


def _data(images, size, classes=5):
    import numpy as np

    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, (images, size, size, 3)).astype("float32"), rng.integers(0, classes, images)


def _model(size, classes=5):
    import keras

    from tfxfer.freezing import unfreeze
    from tfxfer.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("mobilenet_v2", classes, input_size=(size, size), weights=None)
    unfreeze(model, fraction=1.0)
    return model


def _epoch_times():
    import keras

    class Times(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self._t)

    return Times()


def checkpoint_overhead(args) -> tuple[list, dict]:
    import keras

    from tfxfer.reliability import ResumableCheckpoint

    x, y = _data(args.images, args.size)
    model = _model(args.size)
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # trace (and build Adam's moments) once for all
    workdir = tempfile.mkdtemp(prefix="tfxfer-bench-ckpt-")
    sides = {
        "plain Keras (no checkpoint)": lambda: [],
        "keras BackupAndRestore": lambda: [keras.callbacks.BackupAndRestore(os.path.join(workdir, "bar"),
                                                                            delete_checkpoint=False)],
        "tfxfer ResumableCheckpoint": lambda: [ResumableCheckpoint(os.path.join(workdir, "rc"))],
    }
    runs = {name: [] for name in sides}
    try:
        for _ in range(args.rounds):  # alternate the sides: other load on the machine varies
            for name, make in sides.items():
                shutil.rmtree(os.path.join(workdir, "bar"), ignore_errors=True)
                shutil.rmtree(os.path.join(workdir, "rc"), ignore_errors=True)
                with Timer() as t:
                    model.fit(x, y, batch_size=32, epochs=args.epochs, verbose=0, callbacks=make())
                runs[name].append(t.seconds / args.epochs)
        best = {name: min(times) for name, times in runs.items()}
        saves, writes = [], []
        for background, times in ((True, saves), (False, writes)):
            ckpt = ResumableCheckpoint(os.path.join(workdir, f"direct-{background}"), background=background)
            ckpt.set_model(model)
            for epoch in range(3):
                with Timer() as t:
                    ckpt.save(epoch, {"loss": 1.0})
                times.append(t.seconds)
                ckpt.wait()
        size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(ckpt.saved[-1]) for f in fs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base = best["plain Keras (no checkpoint)"]
    rows = [{"part": "checkpoint", "side": name, "epoch_s": round(t, 3), "vs_plain": round(t / base, 4),
             "runs_epoch_s": [round(v, 3) for v in runs[name]]} for name, t in best.items()]
    save_s = min(saves)
    summary = {
        "checkpoint_epoch_ratio": round(best["tfxfer ResumableCheckpoint"] / base, 4),
        "backup_and_restore_epoch_ratio": round(best["keras BackupAndRestore"] / base, 4),
        "checkpoint_save_s": round(save_s, 4),
        "checkpoint_save_blocking_s_synchronous": round(min(writes), 4),
        "checkpoint_save_fraction_of_epoch": round(save_s / base, 4),
        "checkpoint_mib": round(size / 2**20, 2),
        "epoch_s_for_5pct": round(save_s / 0.05, 2),
        "epoch_s_for_5pct_synchronous": round(min(writes) / 0.05, 2),
        "model_params": int(model.count_params()),
        "target_overhead": 0.05,
        # The blocking time is the stable measure; wall-clock epoch ratios on this shared machine
        # swing by +-20% between runs (other sessions), more than the effect measured.
        "meets_target": save_s / base <= 0.05,
        "overhead_measure": "checkpoint_save_fraction_of_epoch (blocking save / plain epoch); the wall-clock "
                            "epoch ratios are reported beside it but are dominated by machine noise",
        "epochs_per_run": args.epochs,
    }
    return rows, summary


# -- multi-worker throughput ----------------------------------------------------------------------------
def worker(args) -> None:
    """One training process: alone (no TF_CONFIG) or one MultiWorkerMirroredStrategy worker."""
    import keras
    import tensorflow as tf

    from tfxfer.reliability import get_strategy, shard_dataset
    from tfxfer.reliability.distribute import fit_scope

    x, y = _data(args.images, args.size)
    multi = bool(os.environ.get("TF_CONFIG"))
    strategy = get_strategy("multi_worker_mirrored" if multi else "default")
    with strategy.scope():
        model = _model(args.size)
        model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    ds = shard_dataset(tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(args.batch))
    timer = _epoch_times()
    with fit_scope(model, strategy):
        model.fit(ds, epochs=args.epochs + 1, steps_per_epoch=args.steps, verbose=0, callbacks=[timer])
    steady = min(timer.times[1:])  # epoch 0 traces
    with open(args.out, "w") as f:
        json.dump({"epoch_s": steady, "images_per_s": args.steps * args.batch / steady,
                   "replicas": strategy.num_replicas_in_sync}, f)


def _spawn(args, out, tf_config=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = tf_config
    cmd = [sys.executable, os.path.abspath(__file__), "--role", "worker", "--out", out, "--images", str(args.images),
           "--size", str(args.size), "--epochs", str(args.epochs), "--steps", str(args.steps),
           "--batch", str(args.batch)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait(procs, timeout=600):
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(err[-3000:])


def multi_worker_throughput(args) -> tuple[list, dict]:
    from tfxfer.reliability import local_tf_configs

    tmp = tempfile.mkdtemp(prefix="tfxfer-bench-mw-")
    single_runs, two_runs = [], []
    try:
        for round_ in range(args.rounds):  # alternate the sides: other load on the machine varies
            _wait([_spawn(args, os.path.join(tmp, "single.json"))])
            single_runs.append(json.load(open(os.path.join(tmp, "single.json")))["epoch_s"])
            configs = local_tf_configs(2)
            _wait([_spawn(args, os.path.join(tmp, f"w{i}.json"), c) for i, c in enumerate(configs)])
            workers = [json.load(open(os.path.join(tmp, f"w{i}.json"))) for i in range(2)]
            two_runs.append(max(w["epoch_s"] for w in workers))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    single = {"epoch_s": min(single_runs)}
    single["images_per_s"] = args.steps * args.batch / single["epoch_s"]
    two = {"epoch_s": min(two_runs)}
    two["images_per_s"] = args.steps * args.batch / two["epoch_s"]
    rows = [
        {"part": "throughput", "side": "1 process (no strategy)", "epoch_s": round(single["epoch_s"], 3),
         "images_per_s": round(single["images_per_s"], 1), "vs_plain": 1.0},
        {"part": "throughput", "side": "2 workers, MultiWorkerMirrored, 127.0.0.1", "epoch_s": round(two["epoch_s"], 3),
         "images_per_s": round(two["images_per_s"], 1), "vs_plain": round(two["images_per_s"] / single["images_per_s"], 3)},
    ]
    summary = {"two_worker_speedup": round(two["images_per_s"] / single["images_per_s"], 3),
               "single_epoch_s_runs": [round(t, 3) for t in single_runs],
               "two_worker_epoch_s_runs": [round(t, 3) for t in two_runs], "mw_input_size": args.size,
               "global_batch": args.batch, "steps_per_epoch": args.steps, "cores": os.cpu_count()}
    return rows, summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", default="main", choices=("main", "worker"))
    parser.add_argument("--out")
    parser.add_argument("--images", type=int, default=512, help="training images (checkpoint part)")
    parser.add_argument("--size", type=int, default=96, help="input size (checkpoint part; the worker's size)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per measured fit (checkpoint part) / "
                        "measured epochs per worker run (multi-worker part)")
    parser.add_argument("--mw-size", type=int, default=64, help="input size of the multi-worker part")
    parser.add_argument("--steps", type=int, default=12, help="steps per epoch (multi-worker part)")
    parser.add_argument("--batch", type=int, default=32, help="global batch (multi-worker part)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the multi-worker part")
    args = parser.parse_args()
    if args.role == "worker":
        worker(args)
        return
    rows_ckpt, sum_ckpt = checkpoint_overhead(args)
    rows_mw, sum_mw = multi_worker_throughput(argparse.Namespace(**{**vars(args), "size": args.mw_size,
                                                                    "images": 256}))
    rows = rows_ckpt + rows_mw
    print_table(rows, ["part", "side", "epoch_s", "images_per_s", "vs_plain"])
    summary = {**sum_ckpt, **sum_mw, "images": args.images, "input_size": args.size, "backbone": "mobilenet_v2",
               "note": "2 CPU cores shared by both workers and by other sessions on this machine; two workers "
                       "cannot add compute here, any gain comes from two processes using the cores better than "
                       "one process does at this small batch, and varies with the machine's load"}
    print(json.dumps(summary, indent=1))
    write_result("reliability", rows, summary)


if __name__ == "__main__":
    main()
