"""Tiny data and overrides that make a recipe run end to end in about a minute on 2 cores."""

import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def recipe(name: str) -> str:
    return os.path.join(ROOT, "pipelines", f"{name}.yaml")


def make_image_folder(root, *, classes=("circle", "square", "stripes"), per_class=10, size=24, seed=0):
    """Class sub-folders of small synthetic PNGs (distinct patterns + noise), one broken file and
    one duplicated image, so the data summary has something to report."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    patterns = {
        "circle": ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2),
        "square": (abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4),
        "stripes": (xx // 3) % 2 == 0,
    }
    for c, name in enumerate(classes):
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            base = patterns.get(name, (xx + c) % (c + 2) == 0).astype(np.float32) * 200
            image = np.clip(base[..., None] + rng.normal(0, 25, (size, size, 3)) + 20 * c, 0, 255).astype(np.uint8)
            Image.fromarray(image).save(os.path.join(folder, f"{i:02d}.png"))
    open(os.path.join(root, classes[0], "broken.jpg"), "wb").close()
    return str(root)


def tiny_overrides(folder, *, extra=()):
    return [f"data.source={folder}", "data.max_train=null", "data.max_eval=null", "data.validation_split=0.2",
            "data.test_split=0.2", "model.weights=null", "model.input_size=[32, 32]", "train.head_epochs=1",
            "train.epochs=1", "train.batch_size=8", "export.num_calibration=16", "export.bench_runs=2",
            "export.threads=[1]", "export.thresholds.int8.max_accuracy_drop=100", *extra]
