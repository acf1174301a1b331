"""Training scenarios shared by the reliability tests, in-process or as a subprocess.

As a script (``python tests/reliability/scenario.py ROLE --out result.json ...``) it runs one role in
a fresh interpreter: ``fine_tune`` (optionally ``kill -9`` itself mid-epoch), ``mirrored`` (two
logical CPU devices vs one), ``worker`` (one MultiWorkerMirroredStrategy worker; TF_CONFIG from
the environment) and ``determinism`` (seeded run + TFLite export).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# Distributed comparisons: no dropout (replicas draw different masks than one device would), two
# unfreezing stages after one head epoch, discriminative (layer-decayed) rates throughout.
DIST_KW = dict(head_epochs=1, epochs=2, stages={0: 1, 1: 3})
FT_KW = dict(head_epochs=2, epochs=4, batch_size=8, base_lr=0.05, unfreeze_lr_factor=0.2, stages={0: 1, 1: 2, 3: 4}, warmup_epochs=1, verbose=0)


def killer(epoch: int, batch: int):
    """A callback that SIGKILLs this process at (epoch, batch): a real ``kill -9`` mid-epoch."""
    import keras

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self._epoch = e

        def on_train_batch_end(self, b, logs=None):
            if self._epoch == epoch and b == batch:
                sys.stdout.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    return Kill()


def run_fine_tune(checkpoint_dir=None, *, callbacks=(), seed: int = 0, strategy=None, dropout: float = 0.1,
                  source: str = "arrays", pulls: int = 0, **overrides):
    """The reference recipe: tiny model, fine_tune with staged unfreezing and discriminative rates.

    ``source="pipeline"`` trains on a shuffled `tfxfer.data.tfdata.array_pipeline` (what recipes pass)
    instead of arrays, after ``pulls`` extra iterators were made from it (as a resumed recipe does)."""
    import keras

    from tests.factories import tiny_images, tiny_model, tiny_spec
    from tfxfer.train.fine_tune import fine_tune

    keras.utils.set_random_seed(seed)
    if strategy is not None:
        with strategy.scope():
            model = tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=dropout)
    else:
        model = tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=dropout)
    x, y = tiny_images(48, size=16, classes=3, signal="mean_colour")
    kwargs = {**FT_KW, **overrides}
    train = (x, y)
    if source == "pipeline":
        from tfxfer.data.tfdata import array_pipeline

        train = array_pipeline(x, y, image_size=(16, 16), batch_size=kwargs["batch_size"], training=True, seed=seed)
        for _ in range(pulls):
            next(iter(train))
        kwargs.setdefault("use_cached_features", True)  # no augmentation in it: caching one pass is exact
    result = fine_tune(model, train, val=(x[:12], y[:12]), checkpoint_dir=checkpoint_dir, callbacks=list(callbacks),
                       seed=seed, strategy=strategy, **kwargs)
    return model, result


def summary(model, result) -> dict:
    import numpy as np

    from tests.factories import tiny_images

    x, _ = tiny_images(48, size=16, classes=3, signal="mean_colour")
    weights = [np.asarray(v.numpy(), dtype="float64").ravel() for v in model.weights]
    return {
        "history": result.history,
        "stages": [s["trainable_groups"] for s in result.stages],
        "resumed_from": result.resumed_from,
        "weights": [w.tolist() for w in weights],
        "predictions": np.asarray(model.predict(x, verbose=0)).tolist(),
    }


def _mirrored(out):
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfxfer.reliability import get_strategy

    strategy = get_strategy("mirrored")
    model, result = run_fine_tune(strategy=strategy, dropout=0.0, **DIST_KW)
    single_model, single = run_fine_tune(dropout=0.0, **DIST_KW)
    return {"replicas": strategy.num_replicas_in_sync, "devices": list(strategy.extended.worker_devices),
            "mirrored": summary(model, result), "single": summary(single_model, single)}


def _worker(out, checkpoint_dir):
    from tfxfer.reliability import enable_determinism, get_strategy, is_chief

    enable_determinism(0)
    strategy = get_strategy("multi_worker_mirrored")
    model, result = run_fine_tune(checkpoint_dir, strategy=strategy, dropout=0.0, **DIST_KW)
    return {"replicas": strategy.num_replicas_in_sync, "chief": is_chief(strategy), **summary(model, result)}


def _determinism(out, export_path):
    from tfxfer.reliability import enable_determinism

    report = enable_determinism(0)
    # DIST_KW's shorter schedule (a head epoch, then two unfreezing stages), with dropout: bit-identical
    # reruns do not need FT_KW's longer one
    model, result = run_fine_tune(**DIST_KW)
    data = summary(model, result)
    from tfxfer.export import export_tflite

    export_tflite(model, export_path, variant="float32", sidecar=False)
    with open(export_path, "rb") as f:
        data["tflite_sha256"] = hashlib.sha256(f.read()).hexdigest()
    from ai_edge_litert.interpreter import Interpreter

    from tests.factories import tiny_images

    x, _ = tiny_images(48, size=16, classes=3, signal="mean_colour")
    interpreter = Interpreter(model_path=export_path)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    data["tflite_predictions"] = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).tolist()
    data["determinism"] = report
    return data


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["fine_tune", "mirrored", "worker", "determinism"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--checkpoint-dir")
    parser.add_argument("--kill-at", nargs=2, type=int)
    parser.add_argument("--export")
    parser.add_argument("--source", default="arrays", choices=["arrays", "pipeline"])
    args = parser.parse_args(argv)
    if args.role == "fine_tune":
        from tfxfer.recipes.training_log import LearningRateLog

        callbacks = [killer(*args.kill_at)] if args.kill_at else []
        logs = [LearningRateLog()] if args.source == "pipeline" else []  # the recipe's Stateful log
        model, result = run_fine_tune(args.checkpoint_dir, callbacks=[*callbacks, *logs], source=args.source)
        data = summary(model, result)
    elif args.role == "mirrored":
        data = _mirrored(args.out)
    elif args.role == "worker":
        data = _worker(args.out, args.checkpoint_dir)
    else:
        data = _determinism(args.out, args.export)
    with open(args.out, "w") as f:
        json.dump(data, f)


if __name__ == "__main__":
    main()
