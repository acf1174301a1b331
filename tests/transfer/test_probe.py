"""Negative-transfer probe: the verdict flips with which features carry the signal."""

import numpy as np
import pytest

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.transfer import (
    ProbeReport,
    probe_backbone,
    probe_features,
    probe_text,
    tfidf_accuracy,
    verdict_from_accuracies,
)


@pytest.fixture
def feature_sets(rng):
    y = np.arange(400) % 4
    informative = 2.0 * np.eye(4)[y] + rng.normal(size=(400, 4))
    informative = np.concatenate([informative, rng.normal(size=(400, 12))], axis=1)
    random = rng.normal(size=(400, 16))
    return informative, random, y


def test_verdict_flips_with_the_informative_features(feature_sets):
    informative, random, y = feature_sets
    helps = probe_features(informative, {"random_weights": random}, y)
    assert helps.verdict == "transfer_helps" and helps.remedies == []
    assert helps.pretrained_accuracy > 0.8 and helps.controls["random_weights"] < 0.45
    assert 0.15 < helps.chance_accuracy < 0.35
    hurts = probe_features(random, {"random_weights": informative}, y)
    assert hurts.verdict == "negative_transfer"
    assert any("nfreeze" in r for r in hurts.remedies) and any("backbone" in r for r in hurts.remedies)
    same = probe_features(informative, {"random_weights": informative + 1e-6}, y)
    # a tie on 120 test examples cannot rule out a 2-point gain: undecided, not "no gain"
    assert same.verdict == "inconclusive" and abs(same.gain) < same.threshold
    assert "on 120 test examples" in same.detail and same.examples_needed > 120
    text = hurts.to_markdown()
    assert "negative_transfer" in text and "Remedies" in text and "random_weights" in text
    assert hurts.to_dict()["best_control"] == "random_weights"


def test_verdict_thresholds_by_hand():
    # Agresti-Caffo: p = (81/102, 71/102), se = sqrt((p1 q1 + p2 q2) / 102), threshold 2 se * 102/100
    p1, p2 = 81 / 102, 71 / 102
    report = verdict_from_accuracies(0.8, {"random_weights": 0.7}, num_test=100)
    assert report.threshold == pytest.approx(2 * np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 102) * 102 / 100)
    assert report.verdict == "inconclusive" and report.examples_needed > 100
    assert verdict_from_accuracies(0.8, {"random_weights": 0.7}, num_test=10_000).verdict == "transfer_helps"
    assert verdict_from_accuracies(0.8, {"a": 0.5, "b": 0.95}, num_test=10_000).verdict == "negative_transfer"
    assert verdict_from_accuracies(0.9, {"a": 0.85}, num_test=10**6, margin=0.1).verdict == "no_clear_gain"
    assert verdict_from_accuracies(0.8, {"a": 0.8}, num_test=10**5).verdict == "no_clear_gain"
    assert isinstance(report, ProbeReport) and report.best_control == "random_weights"


def test_text_probe_against_tfidf(rng):
    vocab = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(vocab, size=6)) for _ in range(300)]
    labels = np.arange(300) % 2
    # an "encoder" that understands the (hidden) label vs TF-IDF on label-free random words
    oracle = lambda t: np.eye(2)[labels] * 2.0 + rng.normal(size=(len(t), 2))  # noqa: E731
    noise = lambda t: rng.normal(size=(len(t), 8))  # noqa: E731
    report = probe_text(texts, labels, encode=oracle, encode_control=noise)
    assert report.verdict == "transfer_helps"
    assert set(report.controls) == {"random_weights", "tfidf"} and report.controls["tfidf"] < 0.7
    # words that give the label away: TF-IDF wins over a noise encoder
    telling = [t + (" great" if l else " awful") for t, l in zip(texts, labels)]
    assert tfidf_accuracy(telling[:200], labels[:200], telling[200:], labels[200:]) == 1.0
    assert probe_text(telling, labels, encode=noise).verdict == "negative_transfer"


def test_image_probe_runs_both_backbones(tiny_specs, bright_dark_images):
    report = probe_backbone(bright_dark_images, tiny_specs[1], weights=None, input_size=(16, 16), test_fraction=0.5)
    assert set(report.controls) == {"random_weights"}
    assert report.num_train == 30 and report.num_test == 30
    assert report.verdict in ("transfer_helps", "no_clear_gain", "negative_transfer", "inconclusive")
    assert 0.0 <= report.pretrained_accuracy <= 1.0 and report.controls["random_weights"] > 0.5  # brightness is easy


def test_errors(feature_sets):
    informative, random, y = feature_sets
    with pytest.raises(ArgumentError, match="test_fraction"):
        probe_features(informative, {"r": random}, y, test_fraction=1.5)
    with pytest.raises(ArgumentTypeError, match="at least one control"):
        probe_features(informative, {}, y)
    with pytest.raises(DataError, match="rows"):
        probe_features(informative, {"r": random[:10]}, y)
    with pytest.raises(ArgumentError, match="margin"):
        verdict_from_accuracies(0.5, {"r": 0.5}, num_test=10, margin=2)
    with pytest.raises(ArgumentError, match="num_test"):
        verdict_from_accuracies(0.5, {"r": 0.5}, num_test=0)
    with pytest.raises(ArgumentTypeError, match="controls"):
        verdict_from_accuracies(0.5, {}, num_test=10)
    with pytest.raises(ArgumentTypeError, match="strings"):
        probe_text([1, 2, 3], [0, 1, 0], encode=lambda t: np.zeros((3, 2)))
    with pytest.raises(ArgumentTypeError, match="encode"):
        probe_text(["a", "b"], [0, 1], encode="bert")


@pytest.mark.parametrize("options, name", [
    ({"max_samples": 0}, "max_samples"), ({"max_samples": 2}, "max_samples"), ({"max_samples": 2.5}, "max_samples"),
    ({"batch_size": 0}, "batch_size"), ({"batch_size": -1}, "batch_size"), ({"batch_size": "32"}, "batch_size"),
    ({"test_fraction": 1.0}, "test_fraction"), ({"seed": -1}, "seed")])
def test_image_probe_options_are_checked_before_any_feature(tiny_specs, bright_dark_images, options, name):
    with pytest.raises(ArgumentError, match=f"`{name}`"):
        probe_backbone(bright_dark_images, tiny_specs[1], weights=None, input_size=(16, 16), **options)


def test_image_probe_on_the_fewest_examples(tiny_specs, bright_dark_images):
    report = probe_backbone(bright_dark_images, tiny_specs[1], weights=None, input_size=(16, 16), max_samples=3,
                            batch_size=1, test_fraction=0.3)
    assert (report.num_train, report.num_test) == (2, 1) and report.verdict == "inconclusive"
