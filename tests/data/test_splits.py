"""Stratified, seeded, deterministic splits."""

import numpy as np
import pytest

from tfxfer.data import random_split, stratified_split
from tfxfer.data.splits import strata_of
from tfxfer.errors import ArgumentError, DataError


def test_proportions_per_class_and_disjoint_cover():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    parts = stratified_split(labels, validation_split=0.1, test_split=0.2, seed=3)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined) == list(range(100))
    for c, n in ((0, 50), (1, 30), (2, 20)):
        assert np.sum(labels[parts["test"]] == c) == round(n * 0.2)
        assert np.sum(labels[parts["val"]] == c) == round(n * 0.1)
    assert all(np.all(np.diff(idx) > 0) for idx in parts.values())  # sorted, deterministic order


def test_same_seed_same_split_other_seed_other_split():
    labels = np.arange(200) % 4
    a = stratified_split(labels, test_split=0.25, seed=7)
    b = stratified_split(labels, test_split=0.25, seed=7)
    c = stratified_split(labels, test_split=0.25, seed=8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], c["test"])


def test_groups_are_never_split():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1])
    groups = ["g1", "g1", "g1", "x", "y", "z", "w", "v", "u", "t"]
    for seed in range(20):
        parts = stratified_split(labels, validation_split=0.3, test_split=0.3, seed=seed, groups=groups)
        where = {i: s for s, idx in parts.items() for i in idx}
        assert where[0] == where[1] == where[2]


def test_multilabel_uses_rarest_label_and_pools_rare_combinations():
    y = np.zeros((40, 3), np.float32)
    y[:, 0] = 1
    y[:10, 1] = 1
    y[0, 2] = 1  # a single example of label 2: pooled, no error
    assert strata_of(y)[0] == 2 and strata_of(y)[5] == 1 and strata_of(y)[20] == 0
    parts = stratified_split(y, test_split=0.2, seed=0)
    assert len(parts["train"]) + len(parts["test"]) == 40
    assert 1 <= y[parts["test"], 1].sum() <= 3


def test_too_small_stratum_raises_with_numbers():
    with pytest.raises(DataError, match="Class 'rare' has only 2 distinct item.*needs at least 3"):
        stratified_split(np.array([0] * 10 + [1] * 2), validation_split=0.2, test_split=0.2,
                         class_names=["common", "rare"])


SPLIT_ERRORS = [
    ({"validation_split": -0.1}, ArgumentError,
     r"`validation_split` must be a finite number in \[0, 1\). Received: validation_split=-0.1"),
    ({"test_split": "0.2"}, ArgumentError, r"`test_split` must be a finite number in \[0, 1\). Received: test_split='0.2'"),
    ({"validation_split": 0.6, "test_split": 0.4}, ArgumentError, "must be < 1"),
    ({"seed": 1.5}, ArgumentError, "`seed` must be an int. Received: seed=1.5"),
    ({"groups": ["a"]}, ArgumentError, "`groups` must have one key per item"),
]


def test_bad_arguments():
    for kwargs, error, match in SPLIT_ERRORS:
        with pytest.raises(error, match=match):
            stratified_split(np.arange(10) % 2, **kwargs)


def test_random_split_sizes():
    parts = random_split(100, validation_split=0.1, test_split=0.1, seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 80, "val": 10, "test": 10}
