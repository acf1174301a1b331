"""group_metrics / group_balanced_weights on hostile inputs: missing and mixed group values, outputs
that are not probabilities, labels that are not class ids. Every case is a typed error or a right number."""

import math

import numpy as np
import pytest

from tfxfer.errors import ArgumentTypeError, DataError
from tfxfer.fairness import MISSING_GROUP, group_balanced_weights, group_metrics
from tfxfer.metrics import check_probabilities, class_ids

Y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
P = np.array([0, 1, 1, 1, 0, 0, 0, 1])
G = np.array(["a"] * 4 + ["b"] * 4)


def test_none_groups_are_one_missing_group_not_overall():
    report = group_metrics(Y, P, ["a", None, "a", None, "b", "b", None, "a"], n_bootstrap=0)
    assert report.groups == [MISSING_GROUP, "a", "b"]
    assert report.sizes == {MISSING_GROUP: 3, "a": 3, "b": 2, None: 8}
    assert report.value(MISSING_GROUP, "accuracy").value == pytest.approx((Y == P)[[1, 3, 6]].mean())
    assert report.overall["accuracy"].value == pytest.approx((Y == P).mean())
    assert [row["group"] for row in report.to_rows()] == [MISSING_GROUP, "a", "b", "overall"]
    assert any("None or NaN" in note for note in report.notes)


def test_nan_groups_are_one_missing_group():
    groups = [1.0, np.nan, 2.0, np.nan, 1.0, 2.0, np.nan, 1.0]
    report = group_metrics(Y, P, groups, n_bootstrap=20)
    assert report.groups == [MISSING_GROUP, 1.0, 2.0]
    assert report.sizes[MISSING_GROUP] == 3
    assert not any(math.isnan(report.values[g]["accuracy"].value) for g in report.groups)
    weights = group_balanced_weights(groups)
    assert weights[1] == weights[3] == weights[6]  # the three missing values share one group


def test_numeric_groups_sort_as_numbers():
    report = group_metrics(Y, P, [10, 2, 10, 2, 10, 2, 10, 2], n_bootstrap=0)
    assert report.groups == [2, 10]
    assert report.value(2, "accuracy").value == pytest.approx((Y == P)[1::2].mean())


@pytest.mark.parametrize("call", [
    lambda g: group_metrics(Y, P, g, n_bootstrap=0),
    lambda g: group_balanced_weights(g),
], ids=["group_metrics", "group_balanced_weights"])
def test_numbers_mixed_with_strings_are_refused(call):
    with pytest.raises(ArgumentTypeError, match=r"numbers or strings, not both.*groups\[1\]='1' \(str\)"):
        call([1, "1", 1, "1", 2, 2, 1, "1"])


def test_a_group_named_missing_beside_missing_values_is_refused():
    with pytest.raises(DataError, match=r"missing values.*'\(missing\)'"):
        group_metrics(Y, P, ["(missing)", None] * 4, n_bootstrap=0)


def test_sigmoid_column_is_probability_of_class_one():
    sig = np.array([0.2, 0.8, 0.7, 0.9, 0.1, 0.3, 0.4, 0.6])[:, None]
    report = group_metrics(Y, sig, G, n_bootstrap=0)
    assert report.overall["accuracy"].value == pytest.approx(((sig[:, 0] > 0.5) == Y).mean())  # 0.75
    assert "ece" in report.metrics and 0.0 <= report.overall["ece"].value <= 1.0
    with pytest.raises(DataError, match=r"P\(class 1\).*row 0 is 3.0"):
        group_metrics(Y, np.full((8, 1), 3.0), G, n_bootstrap=0)


@pytest.mark.parametrize("predictions, match", [
    (np.array([[3.0, -2.0]] * 8), r"`predictions` must be class probabilities.*logits"),
    (np.array([[0.9, 0.9]] * 8), r"row 0 sums to 1.8"),
    (np.array([[np.nan, np.nan]] * 8), r"row 0 holds NaN"),
    (np.array([0.6, 0.4] * 4), r"`predictions` must be integer class ids; found 0.6"),
    (np.array(["x"] * 8), r"`predictions` must be class probabilities or class ids; got dtype <U1"),
], ids=["logits", "not-summing-to-1", "nan", "fractional-ids", "strings"])
def test_outputs_that_are_not_probabilities_or_ids_are_refused(predictions, match):
    with pytest.raises(DataError, match=match):
        group_metrics(Y, predictions, G, n_bootstrap=0)


@pytest.mark.parametrize("labels, predictions, match", [
    (np.array([0, 1, np.nan, 1, 0, 1, 0, 1]), P, r"`labels` contains NaN or Inf \(first at example 2\)"),
    (np.array([-1, 1] * 4), P, r"`labels` must be class ids >= 0; found -1 at example 0"),
    (np.array(["cat", "dog"] * 4), P, r"`labels` must be integer class ids.*<U3.*np.unique"),
    (np.array([0, 1, 2, 3] * 2), np.eye(2)[P], r"`labels` holds class 3 but `predictions` cover 2 classes"),
    (np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]], np.eye(2)[P], r"one-hot rows of 3 classes but `predictions` have 2"),
], ids=["nan", "negative", "names", "beyond-predictions", "one-hot-wider"])
def test_labels_that_are_not_class_ids_are_refused(labels, predictions, match):
    with pytest.raises(DataError, match=match):
        group_metrics(labels, predictions, G, n_bootstrap=0)


def test_string_labels_map_through_class_names():
    names = ["cat", "dog"]
    report = group_metrics(np.array(names)[Y], P, G, class_names=names, n_bootstrap=0)
    assert report.overall["accuracy"].value == pytest.approx((Y == P).mean())
    assert "recall[dog]" in report.metrics
    with pytest.raises(DataError, match=r"'bird', which is not one of `class_names`"):
        group_metrics(["cat", "bird"] * 4, P, G, class_names=names, n_bootstrap=0)


def test_class_ids_and_check_probabilities_directly():
    assert class_ids([1.0, 0.0, True]).tolist() == [1, 0, 1]
    with pytest.raises(DataError, match=r"`y` must be integer class ids; found 1.5 at example 1"):
        class_ids([0.0, 1.5], name="y")
    assert check_probabilities([[0.25, 0.75]]).tolist() == [[0.25, 0.75]]
    with pytest.raises(DataError, match=r"`p` must be class probabilities.*got an array of shape \(2,\)"):
        check_probabilities([0.5, 0.5], name="p")
