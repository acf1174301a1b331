"""Probe verdicts that do not mislead: frozen features losing is not "transfer does not pay";
a short fine-tune check tells the two apart and recommends fine-tuning where it wins."""

import numpy as np
import pytest

from tests.factories import REVIEW_VOCAB, tiny_text_encoder
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.transfer import probe_backbone, probe_features, probe_text, verdict_from_accuracies
from tfxfer.transfer.probe import VERDICTS, fine_tune_check_text


def test_the_fine_tune_check_decides_when_frozen_features_do_not_win():
    # MiniLM on movie snippets, roughly: frozen embeddings tie TF-IDF, fine-tuning wins by 8 points.
    unchecked = verdict_from_accuracies(0.70, {"tfidf": 0.71}, num_test=5000)
    assert unchecked.verdict == "no_clear_gain" and unchecked.recommendation == "check fine-tuning before deciding"
    assert "likely domain shift" not in VERDICTS[unchecked.verdict]
    assert unchecked.remedies[0].startswith("Before dropping this backbone, check fine-tuning")
    wins = verdict_from_accuracies(0.70, {"tfidf": 0.71}, num_test=1000, fine_tuned=0.79)
    assert wins.verdict == "fine_tuning_wins" and wins.recommendation == "fine-tune"
    assert wins.fine_tune_gain == pytest.approx(0.08) and wins.remedies[0].startswith("Fine-tune it")
    text = wins.to_markdown()
    assert "| pretrained, short fine-tune | 0.790 |" in text and "Recommendation: fine-tune." in text
    assert wins.to_dict()["recommendation"] == "fine-tune"
    lost = verdict_from_accuracies(0.60, {"tfidf": 0.71}, num_test=1000, fine_tuned=0.66)  # rules out a 2-point gain
    assert lost.verdict == "transfer_does_not_pay" and lost.recommendation == "use the control or another backbone"
    assert not any("check fine-tuning" in r for r in lost.remedies)
    helps = verdict_from_accuracies(0.90, {"tfidf": 0.71}, num_test=1000, fine_tuned=0.5)  # frozen already wins
    assert helps.verdict == "transfer_helps" and helps.fine_tune_gain is None
    with pytest.raises(ArgumentError, match="fine_tuned"):
        verdict_from_accuracies(0.7, {"tfidf": 0.7}, num_test=100, fine_tuned=1.5)


def test_probe_features_runs_the_check_only_when_needed_on_its_own_split(rng):
    y = np.arange(300) % 3
    informative = np.eye(3)[y] * 2 + rng.normal(size=(300, 3))
    noise = rng.normal(size=(300, 3))
    calls = []

    def check(train, test):
        calls.append((train, test))
        return 1.0

    assert probe_features(informative, {"random_weights": noise}, y, fine_tune=check).verdict == "transfer_helps"
    assert calls == []  # frozen features win: nothing to check
    report = probe_features(noise, {"random_weights": informative}, y, fine_tune=check)
    assert report.verdict == "fine_tuning_wins" and report.fine_tuned_accuracy == 1.0
    (train, test), = calls
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 300
    assert len(test) == report.num_test
    with pytest.raises(ArgumentTypeError, match="fine_tune"):
        probe_features(noise, {"random_weights": informative}, y, fine_tune="yes")


def test_probe_text_passes_the_split_texts_to_the_check(rng):
    vocab = [f"w{i}" for i in range(400)]
    texts = [" ".join(rng.choice(vocab, size=6)) for _ in range(300)]
    labels = np.arange(300) % 2
    truth = dict(zip(texts, labels))
    noise = lambda t: rng.normal(size=(len(t), 8))  # noqa: E731  frozen features: useless

    def learned(train_texts, train_labels, test_texts, test_labels):  # a fine-tune that learned the task
        assert all(truth[t] == y for t, y in zip(train_texts, train_labels))
        assert not set(train_texts) & set(test_texts)
        return float(np.mean([truth[t] == y for t, y in zip(test_texts, test_labels)]))

    report = probe_text(texts, labels, encode=noise, fine_tune=learned)
    assert report.verdict == "fine_tuning_wins" and report.fine_tuned_accuracy == 1.0
    report = probe_text(texts, labels, encode=noise, fine_tune=lambda *a: 0.0)
    assert report.verdict == "transfer_does_not_pay"
    report = probe_text(texts, labels, encode=noise, fine_tune=lambda *a: report.controls["tfidf"])
    assert report.verdict == "inconclusive"  # a tie on 90 test examples cannot rule out a 2-point gain


def test_fine_tune_check_text_really_fine_tunes_a_text_classifier():
    words = {1: ["good", "great", "loved", "fine"], 0: ["bad", "awful", "hated", "dull"]}
    rnd = np.random.default_rng(0)
    labels = np.arange(96) % 2
    texts = [f"the {rnd.choice(['film', 'movie', 'plot'])} {rnd.choice(words[int(y)])}" for y in labels]
    check = fine_tune_check_text(lambda: tiny_text_encoder(vocab=REVIEW_VOCAB, num_layers=1, sequence_length=8),
                                 epochs=2, head_epochs=6, batch_size=16, base_lr=1e-2, unfreeze_lr_factor=0.1)
    accuracy = check(texts[:64], labels[:64], texts[64:], labels[64:])
    assert accuracy >= 0.75  # the sentiment word gives the label away; chance is 0.5
    with pytest.raises(ArgumentError, match="epochs"):
        fine_tune_check_text(lambda: None, epochs=0)


def test_probe_backbone_with_a_fine_tune_check(tiny_specs, bright_dark_images):
    report = probe_backbone(bright_dark_images, tiny_specs[1], weights=None, input_size=(16, 16), test_fraction=0.5,
                            fine_tune_epochs=1)
    if report.verdict == "transfer_helps":
        assert report.fine_tuned_accuracy is None
    else:
        assert report.verdict in ("fine_tuning_wins", "transfer_does_not_pay", "inconclusive")
        assert 0.0 <= report.fine_tuned_accuracy <= 1.0
    with pytest.raises(ArgumentError, match="fine_tune_epochs"):
        probe_backbone(bright_dark_images, tiny_specs[1], weights=None, input_size=(16, 16), fine_tune_epochs=-1)


# -- verdicts that do not mislead on small test sets or small fine-tune gains -----------------------------
@pytest.mark.parametrize("frozen, control, fine_tuned, num_test", [
    (0.80, 0.80, 0.85, 200), (0.60, 0.60, 0.90, 10), (0.50, 0.70, 0.71, 1000), (0.80, 0.80, 0.81, 10**6)])
def test_a_fine_tune_that_beats_the_control_is_never_told_to_use_the_control(frozen, control, fine_tuned, num_test):
    report = verdict_from_accuracies(frozen, {"tfidf": control}, num_test=num_test, fine_tuned=fine_tuned)
    assert report.verdict == "inconclusive"
    assert report.recommendation.startswith("fine-tune") and "control or another" not in report.recommendation
    assert report.remedies[0].startswith("Fine-tune it") and f"{num_test} test examples" in report.detail
    assert report.to_dict()["recommendation"] == report.recommendation and report.detail in report.to_markdown()


def test_inconclusive_says_how_many_test_examples_would_decide():
    report = verdict_from_accuracies(0.80, {"tfidf": 0.80}, num_test=200, num_train=467, fine_tuned=0.85)
    assert report.examples_needed == 465 and "About 465 test examples (about 1551 examples in all" in report.detail
    bigger = verdict_from_accuracies(0.80, {"tfidf": 0.80}, num_test=report.examples_needed, fine_tuned=0.85)
    assert bigger.verdict == "fine_tuning_wins"  # the same accuracies on that many examples decide it
    assert verdict_from_accuracies(0.5, {"t": 0.5}, num_test=100, margin=0.0).examples_needed is None


@pytest.mark.parametrize("pretrained, control, num_test", [(1.0, 0.0, 2), (0.0, 1.0, 1), (1.0, 0.5, 4), (0.0, 1.0, 2)])
def test_a_handful_of_test_examples_decides_nothing(pretrained, control, num_test):
    # accuracy exactly 0 or 1 used to zero the standard error and leave only the 0.02 margin
    report = verdict_from_accuracies(pretrained, {"random_weights": control}, num_test=num_test)
    assert report.verdict == "inconclusive" and report.threshold > abs(pretrained - control)
    assert verdict_from_accuracies(pretrained, {"r": control}, num_test=num_test, fine_tuned=0.5).verdict == "inconclusive"


def test_probe_features_on_four_examples_is_inconclusive():
    y = np.array([0, 1, 0, 1])
    good = np.eye(2)[y] * 3.0
    control = np.random.default_rng(0).normal(size=(4, 5))
    report = probe_features(good, {"random_weights": control}, y, test_fraction=0.5)
    assert report.num_test == 2 and report.verdict == "inconclusive"
    flipped = probe_features(control, {"random_weights": good}, y, test_fraction=0.5, fine_tune=lambda tr, te: 0.5)
    assert flipped.verdict == "inconclusive" and flipped.recommendation != "use the control or another backbone"


def test_accuracies_are_checked():
    with pytest.raises(ArgumentError, match="pretrained"):
        verdict_from_accuracies(1.5, {"r": 0.5}, num_test=10)
    with pytest.raises(ArgumentError, match=r"controls\['r'\]"):
        verdict_from_accuracies(0.5, {"r": float("nan")}, num_test=10)


# -- probe_text takes probe_backbone's names ---------------------------------------------------------------
def _reviews():
    texts = ["good fun", "great film", "bad plot", "awful acting"] * 10
    return texts, [1, 1, 0, 0] * 10


def _noise(t):
    return np.random.default_rng(len(t)).normal(size=(len(t), 4))


def test_probe_text_takes_data_pairs_and_the_image_probe_names():
    texts, labels = _reviews()
    old = probe_text(texts, labels, encode=_noise)
    for report in (probe_text((texts, labels), encode=_noise), probe_text(data=(texts, labels), encode=_noise),
                   probe_text(texts=texts, labels=labels, encode=_noise), probe_text(texts, labels=labels, encode=_noise)):
        assert report.to_dict() == old.to_dict()
    seen = []
    subset = probe_text((texts, labels), encode=lambda t: seen.append(len(t)) or _noise(t), max_samples=20)
    assert seen == [20] and subset.num_train + subset.num_test == 20
    assert probe_text((texts, labels), encode=_noise, max_samples=1000).num_test == old.num_test


def test_probe_text_fine_tune_epochs_builds_the_check(monkeypatch):
    import tfxfer.transfer.probe as probe

    built = []

    def fake_check(make_encoder, **options):
        built.append(options)
        return lambda *split: 1.0

    monkeypatch.setattr(probe, "fine_tune_check_text", fake_check)
    texts, labels = _reviews()
    report = probe_text((texts, labels), encode=_noise, fine_tune_epochs=3, make_encoder=lambda: None, batch_size=8)
    assert built == [{"epochs": 3, "batch_size": 8, "seed": 0}] and report.fine_tuned_accuracy == 1.0


@pytest.mark.parametrize("call, name", [
    (lambda d, e: probe_text(d, encode=e, max_samples=0), "max_samples"),
    (lambda d, e: probe_text(d, encode=e, batch_size=0), "batch_size"),
    (lambda d, e: probe_text(d, encode=e, fine_tune_epochs=-1), "fine_tune_epochs"),
    (lambda d, e: probe_text(d, encode=e, fine_tune_epochs=2), "make_encoder"),
    (lambda d, e: probe_text(d, encode=e, make_encoder=lambda: None), "make_encoder"),
    (lambda d, e: probe_text(d, encode=e, fine_tune_epochs=1, make_encoder=lambda: None, fine_tune=lambda *a: 1.0),
     "fine_tune"),
    (lambda d, e: probe_text(d, d[1], encode=e, texts=d[0]), "texts")])
def test_probe_text_option_errors_name_the_argument(call, name):
    with pytest.raises(ArgumentError, match=f"`{name}`"):
        call(_reviews(), _noise)


def test_probe_text_data_errors():
    texts, labels = _reviews()
    with pytest.raises(ArgumentTypeError, match="`data`"):
        probe_text(texts, encode=_noise)  # texts without labels
    with pytest.raises(ArgumentTypeError, match="`data`"):
        probe_text(encode=_noise)
    with pytest.raises(DataError, match="40 texts but 39 labels"):
        probe_text((texts, labels[:-1]), encode=_noise)


def test_probe_backbone_takes_a_check_of_its_own(tiny_specs, bright_dark_images):
    seen = []

    def own(train_x, train_y, test_x, test_y):
        seen.append((train_x.shape, test_x.shape))
        return 1.0

    report = probe_backbone(bright_dark_images, tiny_specs[1], weights=None, input_size=(16, 16), test_fraction=0.5,
                            fine_tune=own, margin=0.5)  # a 0.5 margin: frozen features of a random net do not win
    assert report.fine_tuned_accuracy == 1.0 and seen == [((30, 24, 24, 1), (30, 24, 24, 1))]
    with pytest.raises(ArgumentError, match="`fine_tune`"):
        probe_backbone(bright_dark_images, tiny_specs[1], weights=None, fine_tune=own, fine_tune_epochs=1)


def test_a_check_of_the_wrong_shape_is_a_type_error_up_front():
    with pytest.raises(ArgumentTypeError, match="train_texts, train_labels, test_texts, test_labels"):
        probe_text(_reviews(), encode=_noise, fine_tune=lambda train, test: 1.0)
