"""Group audit: per-group values are the plain metrics, intervals cover them, gaps name the worst group."""

import keras
import numpy as np
import pytest

from tfxfer.errors import ArgumentError, DataError
from tfxfer.fairness import audit_model, group_metrics
from tfxfer.metrics import expected_calibration_error


def _biased(rng, n=600):
    labels = rng.integers(0, 2, n)
    groups = np.array(["mono", "poly", "other"])[np.arange(n) % 3]
    error_rate = np.select([groups == "mono", groups == "poly"], [0.05, 0.35], 0.15)
    wrong = rng.random(n) < error_rate
    predicted = np.where(wrong, 1 - labels, labels)
    confidence = rng.uniform(0.55, 1.0, n)
    probs = np.stack([np.where(predicted == 0, confidence, 1 - confidence),
                      np.where(predicted == 1, confidence, 1 - confidence)], axis=1)
    return labels, probs, groups


def test_group_values_are_the_plain_metrics_of_each_group(rng):
    labels, probs, groups = _biased(rng)
    report = group_metrics(labels, probs, groups, n_bootstrap=100, class_names=["functional", "defective"])
    assert report.metrics == ["accuracy", "recall[functional]", "recall[defective]", "fpr", "fnr", "ece"]
    assert report.positive_class == 1
    for group in ("mono", "poly", "other"):
        rows = groups == group
        y, pred = labels[rows], probs[rows].argmax(axis=1)
        assert report.value(group, "accuracy").value == pytest.approx(np.mean(y == pred))
        assert report.value(group, "recall[defective]").value == pytest.approx(np.mean(pred[y == 1] == 1))
        assert report.value(group, "fpr").value == pytest.approx(np.mean(pred[y == 0] == 1))
        assert report.value(group, "fnr").value == pytest.approx(np.mean(pred[y == 1] == 0))
        assert report.value(group, "ece").value == pytest.approx(expected_calibration_error(probs[rows], y))
        assert report.sizes[group] == rows.sum()
    assert report.overall["accuracy"].value == pytest.approx(np.mean(labels == probs.argmax(axis=1)))


def test_bootstrap_intervals_cover_the_point_estimates_and_shrink_with_confidence(rng):
    labels, probs, groups = _biased(rng)
    report = group_metrics(labels, probs, groups, n_bootstrap=400)
    for group in [*report.groups, None]:
        for metric in report.metrics:
            v = report.value(group, metric)
            assert v.low <= v.value <= v.high, (group, metric, v)
            assert v.high > v.low
    gap = report.gap("accuracy")
    assert gap.low <= gap.value <= gap.high
    narrow = group_metrics(labels, probs, groups, n_bootstrap=400, confidence_level=0.5)
    wide = report.value("poly", "accuracy")
    assert narrow.value("poly", "accuracy").high - narrow.value("poly", "accuracy").low < wide.high - wide.low


def test_worst_group_gap_names_the_worst_group_in_each_direction(rng):
    labels, probs, groups = _biased(rng)
    report = group_metrics(labels, probs, groups, n_bootstrap=200)
    accuracy = report.worst_group_gap
    assert (accuracy.worst_group, accuracy.best_group) == ("poly", "mono")
    by_group = {g: report.value(g, "accuracy").value for g in report.groups}
    assert accuracy.value == pytest.approx(max(by_group.values()) - min(by_group.values()))
    assert accuracy.low > 0.15  # a real 30-point gap: its interval excludes zero
    assert report.gap("fnr").worst_group == "poly"  # lower is better: the worst has the highest rate
    assert "poly" in report.summary()


def test_rows_and_markdown_render_every_group(rng):
    labels, probs, groups = _biased(rng, n=60)
    report = group_metrics(labels, probs, groups, n_bootstrap=50)
    rows = report.to_rows()
    assert [r["group"] for r in rows] == ["mono", "other", "poly", "overall"]
    assert {"accuracy", "accuracy_low", "accuracy_high", "ece_high", "n"} <= set(rows[0])
    text = report.to_markdown()
    assert "| **overall** | 60 |" in text and "Worst-group gaps" in text
    assert any("fewer than 30" in n for n in report.notes)


def test_class_ids_without_probabilities_and_multiclass(rng):
    labels = rng.integers(0, 3, 300)
    groups = rng.integers(0, 2, 300)
    report = group_metrics(labels, labels, groups, n_bootstrap=20)
    assert report.metrics == ["accuracy", "recall[0]", "recall[1]", "recall[2]"]  # no ECE, no FPR without a positive
    assert report.value(0, "accuracy").value == 1.0 and report.gap("accuracy").value == 0.0
    with_positive = group_metrics(labels, labels, groups, positive_class=2, n_bootstrap=0)
    assert "fpr" in with_positive.metrics and np.isnan(with_positive.value(0, "fpr").low)


def test_a_class_missing_from_a_group_is_undefined_not_zero():
    labels = np.array([0, 0, 0, 1, 0, 1])
    groups = np.array(["a", "a", "a", "b", "b", "b"])
    report = group_metrics(labels, labels, groups, n_bootstrap=10)
    assert np.isnan(report.value("a", "recall[1]").value)
    assert np.isnan(report.gap("recall[1]").value)
    assert any("recall[1]" in n for n in report.notes)


def test_audit_model_predicts_then_audits(rng):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    x = rng.normal(size=(40, 3)).astype("float32")
    labels = rng.integers(0, 2, 40)
    report = audit_model(model, x, labels, np.arange(40) % 2, n_bootstrap=20)
    probs = model.predict(x, verbose=0)
    assert report.overall["accuracy"].value == pytest.approx(np.mean(probs.argmax(axis=1) == labels))


def test_bad_inputs_are_named(rng):
    labels = rng.integers(0, 2, 10)
    with pytest.raises(DataError, match="one entry per example"):
        group_metrics(labels, labels[:5], np.zeros(10))
    with pytest.raises(DataError, match="at least 2"):
        group_metrics(labels, labels, np.zeros(10))
    with pytest.raises(ArgumentError, match="`confidence_level`"):
        group_metrics(labels, labels, np.arange(10) % 2, confidence_level=1.0)
    with pytest.raises(ArgumentError, match="`positive_class`"):
        group_metrics(labels, labels, np.arange(10) % 2, positive_class=5)
    with pytest.raises(ArgumentError, match="`class_names` must have 2 names"):
        group_metrics(labels, labels, np.arange(10) % 2, class_names=["a"])
    with pytest.raises(ArgumentError, match="`predictions`"):
        group_metrics(labels, np.zeros((10, 2, 2)), np.arange(10) % 2)


def test_group_balanced_weights_equalise_groups_and_cells():
    from tfxfer.fairness import group_balanced_weights

    groups = np.array(["a"] * 6 + ["b"] * 2)
    weights = group_balanced_weights(groups)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[groups == "a"].sum() == pytest.approx(weights[groups == "b"].sum())
    labels = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    cells = group_balanced_weights(groups, labels=labels)
    totals = {(g, y): cells[(groups == g) & (labels == y)].sum() for g in "ab" for y in (0, 1)}
    assert len({round(t, 9) for t in totals.values()}) == 1
    with pytest.raises(DataError, match="`labels` has 3 entries but `groups` has 8"):
        group_balanced_weights(groups, labels=labels[:3])


def test_notes_name_classes_by_their_names():
    labels = np.array([0, 0, 1, 1, 0, 0, 0, 0])  # group "b" has no example of class 1
    groups = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
    report = group_metrics(labels, labels, groups, class_names=["cat", "dog"], n_bootstrap=0)
    assert any(n.startswith("recall[dog]: defined in fewer than two groups") for n in report.notes), report.notes
    assert not any("recall[1]" in n for n in report.notes)


def test_ece_and_gap_intervals_bracket_the_values_they_go_with():
    """ECE and gaps are biased upwards and their resamples more so: plain percentile intervals of a
    calibrated model missed their own printed ECE in 7 of 40 reports (e.g. 0.010 [0.011, 0.035])."""
    from tfxfer.fairness import group_metrics

    for seed in range(6):
        rng = np.random.default_rng(seed)
        p1 = rng.random(2000)
        y = (rng.random(2000) < p1).astype(int)
        groups = np.where(rng.random(2000) < 0.5, "a", "b")
        report = group_metrics(y, np.stack([1 - p1, p1], 1), groups, n_bootstrap=300, seed=0)
        for group in [*report.groups, None]:
            value = report.value(group, "ece")
            assert 0.0 <= value.low <= value.value <= value.high, (seed, group, value)
        for gap in report.gaps.values():
            assert 0.0 <= gap.low <= gap.value <= gap.high, (seed, gap)


def test_a_rate_gap_interval_stays_in_0_1_when_a_group_rarely_has_the_class():
    """Group b has one positive, always missed: resamples that draw it give a recall / FNR gap of 1;
    the others (b without a positive) have no gap and are left out, not scored 0 (which pushed the
    "debiased" interval up to [0.379, 1.379])."""
    labels = np.zeros(80, int)
    labels[:20] = 1
    labels[40] = 1
    predictions = labels.copy()
    predictions[40] = 0
    report = group_metrics(labels, predictions, np.array(["a"] * 40 + ["b"] * 40), n_bootstrap=1000, seed=0)
    for metric in ("recall[1]", "fnr"):
        gap = report.gap(metric)
        assert gap.value == 1.0 and (gap.low, gap.high) == (1.0, 1.0), gap


def test_n_bootstrap_is_bounded_and_resampled_in_chunks(monkeypatch):
    import importlib

    module = importlib.import_module("tfxfer.fairness.group_metrics")  # the package attribute is the function

    labels = np.arange(40) % 2
    groups = np.arange(40) % 3
    with pytest.raises(ArgumentError, match=r"`n_bootstrap` must be an int in \[0, 100000\]"):
        group_metrics(labels, labels, groups, n_bootstrap=module.MAX_BOOTSTRAP + 1)
    whole = group_metrics(labels, 1 - labels, groups, n_bootstrap=50)
    monkeypatch.setattr(module, "_CHUNK_ENTRIES", 7)  # one resample at a time
    chunked = group_metrics(labels, 1 - labels, groups, n_bootstrap=50)
    # all predictions wrong: every resample scores the same, chunked or not
    assert chunked.to_rows() == whole.to_rows() and whole.value(0, "accuracy").high == 0.0


def test_markdown_escapes_pipes_and_line_breaks_in_group_and_class_names():
    labels = np.array([0, 1, 0, 1, 0, 1])
    groups = np.array(["a|b", "a|b", "line\nbreak", "line\nbreak", "c", "c"])
    report = group_metrics(labels, np.array([0, 1, 1, 1, 0, 1]), groups, class_names=["x|y", "z"], n_bootstrap=0)
    lines = report.to_markdown().splitlines()
    table = lines[:lines.index("")]
    assert len(table) == 2 + 3 + 1  # header, rule, three groups, overall: no row broken in two
    columns = table[0].replace("\\|", "").count("|")
    assert all(row.replace("\\|", "").count("|") == columns for row in table), table
    assert "| a\\|b |" in table[2 + 0] and "| line break |" in "\n".join(table) and "recall[x\\|y]" in table[0]
