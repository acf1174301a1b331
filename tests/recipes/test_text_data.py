"""Text recipe data: data.max_train / data.max_eval subsample exactly, per class, with the seeded RNG."""

import csv
import types

import numpy as np
import pytest

from tfxfer.recipes.text_data import _limit, load_text_data, per_class_quota


@pytest.mark.parametrize("counts,limit,expected", [
    ([30, 30], 59, [30, 29]),        # n - 1 keeps n - 1 (it kept 58)
    ([30, 30, 1], 10, [5, 4, 1]),    # a class of one example stays while the limit allows one each
    ([5, 3, 1], 2, [1, 1, 0]),       # fewer items than classes: the largest shares
])
def test_per_class_quota_is_exact_and_keeps_every_class(counts, limit, expected):
    assert per_class_quota(np.array(counts), limit).tolist() == expected


def test_limit_is_seeded_and_stratified():
    y = np.array([0, 1] * 30 + [2])
    x = np.array([f"text {i}" for i in range(len(y))], dtype=object)
    kept_x, kept_y = _limit(x, y, 59, 0, True)
    assert len(kept_y) == 59 and np.bincount(kept_y).tolist() == [29, 29, 1]
    assert [int(t.split()[1]) for t in kept_x] == sorted(int(t.split()[1]) for t in kept_x)  # original order
    assert np.array_equal(_limit(x, y, 7, 3, True)[0], _limit(x, y, 7, 3, True)[0])
    assert len(_limit(x, y, 7, 0, False)[1]) == 7


def test_max_eval_with_a_class_of_one_example_in_the_split(tmp_path):
    """A rare class (one example per held-out split) made max_eval fail with a DataError about a 'val' split."""
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(40):
            w.writerow([f"good film number {i}", "pos"])
            w.writerow([f"bad film number {i}", "neg"])
        for i in range(3):
            w.writerow([f"so so film number {i}", "meh"])
    data = types.SimpleNamespace(validation_split=0.2, test_split=0.2, on_leakage="warn", text_column="text",
                                 label_column="label", max_train=None, max_eval=10)
    cfg = types.SimpleNamespace(data=data, seed=0, task="text_classification")
    splits = load_text_data(cfg, types.SimpleNamespace(kind="file", value=str(path)))
    assert splits.sizes() == {"train": 49, "val": 10, "test": 10}
    assert len(np.unique(splits.eval[1])) == 3
