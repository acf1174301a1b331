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


VOCAB = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "!"]
         + "the a film movie plot acting music good great fine loved bad awful dull hated zoe anna visits "
           "and paris berlin london new york".split())


def make_tiny_text_preset(folder):
    """A 1-layer random BERT saved as a local keras-hub preset (what `model.backbone` accepts)."""
    from tfxfer.text import build_bert_encoder

    encoder = build_bert_encoder(VOCAB, num_layers=1, hidden_dim=16, intermediate_dim=32, num_heads=2,
                                 sequence_length=16)
    encoder.backbone.save_to_preset(str(folder))
    encoder.preprocessor.tokenizer.save_to_preset(str(folder))
    return str(folder)


def make_text_files(folder, *, seed=0):
    """``reviews.csv`` (text,label; pos/neg) and ``tags.txt`` (CoNLL token TAB tag)."""
    import csv
    import random

    rnd = random.Random(seed)
    pos = ["good film", "great movie", "loved the acting", "fine plot", "great music"]
    neg = ["bad film", "awful movie", "hated the plot", "dull acting", "bad music"]
    reviews = os.path.join(folder, "reviews.csv")
    with open(reviews, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(24):
            writer.writerow([rnd.choice(pos) + " !" * (i % 3), "pos"])
            writer.writerow([rnd.choice(neg) + " ." * (i % 3), "neg"])
    lines = []
    for i in range(30):
        city = ("paris", "berlin", "london")[i % 3]
        who = ("zoe", "anna")[i % 2]
        lines += [f"{who}\tB-person", "visits\tO", f"{city}\tB-geo-loc", ""] if i % 2 else \
            [f"{who}\tB-person", "loved\tO", "new\tB-geo-loc", "york\tI-geo-loc", ""]
    tags = os.path.join(folder, "tags.txt")
    with open(tags, "w") as f:
        f.write("\n".join(lines))
    return reviews, tags


def tiny_text_overrides(source, preset, *, extra=()):
    return [f"data.source={source}", "data.max_train=null", "data.max_eval=null", "data.validation_split=0.2",
            "data.test_split=0.2", f"model.backbone={preset}", "model.weights=null", "model.sequence_length=16",
            "train.batch_size=8", "train.head_epochs=1", "train.epochs=0", "train.base_lr=1e-2",
            "export.benchmark=false", *extra]
