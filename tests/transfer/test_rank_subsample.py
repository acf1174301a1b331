"""Ranking's own costs: a stratified, seeded subset of the data; one build and one trace per
architecture (a pretrained candidate and its random twin share them); seeded random weights."""

import keras
import numpy as np
import pytest

from tfxfer.errors import ArgumentError
from tfxfer.transfer import Candidate, rank_backbones
from tfxfer.transfer._data import class_quotas, ranking_subset
from tfxfer.transfer.embeddings import candidate_features
from tfxfer.transfer.feature_pass import extract_candidates, reinitialize


def test_class_quotas_cap_each_class_then_the_total_evenly():
    assert class_quotas([500, 500, 30], max_samples=1000, max_per_class=50).tolist() == [50, 50, 30]
    assert class_quotas([500, 500, 30], max_samples=100, max_per_class=None).tolist() == [35, 35, 30]
    assert class_quotas([10, 10], max_samples=None, max_per_class=None).tolist() == [10, 10]
    odd = class_quotas([40, 40, 40], max_samples=31, max_per_class=None, seed=3)
    assert odd.sum() == 31 and sorted(odd.tolist()) == [10, 10, 11]
    assert class_quotas([5, 100], max_samples=20, max_per_class=50).tolist() == [5, 15]


def test_ranking_subset_is_stratified_seeded_and_sorted():
    labels = np.repeat([0, 1, 2], [300, 60, 5])
    index = ranking_subset(labels, max_samples=1000, max_per_class=50, seed=0)
    assert np.bincount(labels[index]).tolist() == [50, 50, 5]
    assert np.all(np.diff(index) > 0)
    assert np.array_equal(index, ranking_subset(labels, max_samples=1000, max_per_class=50, seed=0))
    assert not np.array_equal(index, ranking_subset(labels, max_samples=1000, max_per_class=50, seed=1))
    assert np.array_equal(ranking_subset(labels, max_samples=None, max_per_class=None), np.arange(len(labels)))
    plain = ranking_subset(np.linspace(0, 1, 90), max_samples=20, max_per_class=7, stratify=False)
    assert len(plain) == 20  # regression: a random subset, no per-class cap


def test_rank_backbones_scores_the_stratified_subset_and_says_which(tiny_specs, bright_dark_images):
    x, y = bright_dark_images  # 60 images, 3 classes of 20
    kwargs = dict(input_size=(16, 16), scores=("logme", "knn"), measure_cost=False, verbose=0)
    result = rank_backbones((x, y), tiny_specs[:1], max_per_class=8, **kwargs)
    sample = result.sample
    assert result.num_samples == 24 == sample["count"] and sample["of"] == 60
    assert sample["per_class"] == {"0": 8, "1": 8, "2": 8} and sample["stratified"] and sample["seed"] == 0
    assert np.bincount(y[sample["indices"]]).tolist() == [8, 8, 8]
    assert result.to_dict()["sample"]["indices"] == sample["indices"]
    assert "stratified subset of 60, at most 8 per class, seed 0" in result.to_markdown()
    # the scores are those of exactly these examples
    alone = rank_backbones((x[sample["indices"]], y[sample["indices"]]), tiny_specs[:1], max_per_class=None, **kwargs)
    assert alone.sample["count"] == alone.sample["of"] == 24
    assert "subset" not in alone.to_markdown()
    other = rank_backbones((x, y), tiny_specs[:1], max_per_class=8, seed=1, **kwargs)
    assert other.sample["indices"] != sample["indices"]
    # the defaults keep all of a small data set (50 per class, 1000 in all)
    assert rank_backbones((x, y), tiny_specs[:1], **kwargs).num_samples == 60


def test_max_per_class_is_checked(tiny_specs, bright_dark_images):
    with pytest.raises(ArgumentError, match="max_per_class"):
        rank_backbones(bright_dark_images, tiny_specs[:1], max_per_class=0, measure_cost=False, verbose=0)


def test_random_candidates_are_a_seeded_draw(tiny_specs, bright_dark_images):
    x, y = bright_dark_images
    # a tiny backbone with an ImageNet-style head (LEEP needs one) stands in for a catalog one: the random
    # draw (`reinitialize`, seeded per variable) is the same code for any architecture
    random = [Candidate(tiny_specs[0], weights=None)]
    kwargs = dict(input_size=(16, 16), scores=("logme", "hscore", "leep"), measure_cost=False, verbose=0)
    keras.utils.set_random_seed(1)
    first = rank_backbones((x, y), random, **kwargs).to_rows()[0]
    keras.utils.set_random_seed(2)  # the global seed does not matter: `seed` does
    second = rank_backbones((x, y), random, **kwargs).to_rows()[0]
    assert first["weights"] == "random" and first["leep"] is not None
    assert [first[k] for k in ("logme", "hscore", "leep")] == [second[k] for k in ("logme", "hscore", "leep")]
    third = rank_backbones((x, y), random, seed=5, max_per_class=None, **kwargs).to_rows()[0]
    assert third["logme"] != first["logme"]


def test_pretrained_and_random_twin_share_one_model_without_changing_features(bright_dark_images):
    x, _ = bright_dark_images
    x = x[:8]
    pair = [Candidate("efficientnet_lite0"), Candidate("efficientnet_lite0", weights=None)]
    seen = []
    out = extract_candidates(pair, x, input_size=(32, 32), batch_size=3,
                             on_done=lambda c, f, s: seen.append((c.label, s)))
    assert [label for label, _ in seen] == ["efficientnet_lite0", "efficientnet_lite0:random"]
    pretrained, random_twin = out["efficientnet_lite0"][0], out["efficientnet_lite0:random"][0]
    reference = candidate_features(pair[0], x, input_size=(32, 32))  # its own model, Keras predict
    np.testing.assert_allclose(pretrained.features, reference.features, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pretrained.source_probs, reference.source_probs, rtol=1e-4, atol=1e-6)
    # the same batch size: CPU kernels may sum in another order for another batch size (on AMD EPYC the
    # default batch size gave relative differences up to 1e-3 on these near-zero random-weight features)
    alone = extract_candidates(pair[1:], x, input_size=(32, 32), batch_size=3)["efficientnet_lite0:random"][0]
    np.testing.assert_array_equal(random_twin.features, alone.features)  # the same draw, shared model or not
    np.testing.assert_array_equal(random_twin.source_probs, alone.source_probs)
    assert not np.allclose(random_twin.features, pretrained.features)
    assert random_twin.source_probs.shape == (8, 1000)


def test_reinitialize_draws_from_each_layer_initializer():
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(64, 3, kernel_initializer="he_normal", bias_initializer="ones")(inputs)
    h = keras.layers.BatchNormalization(moving_variance_initializer="ones")(h)
    h = keras.layers.DepthwiseConv2D(3)(h)
    outputs = keras.layers.Dense(200)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    for v in model.weights:
        v.assign(np.full(v.shape, 7.0, dtype="float32"))
    assert reinitialize(model, seed=3)
    conv, bn, dw, dense = (layer for layer in model.layers if layer.weights)
    assert np.all(conv.bias.numpy() == 1.0) and np.all(bn.moving_variance.numpy() == 1.0)
    assert np.all(bn.moving_mean.numpy() == 0.0) and np.all(bn.gamma.numpy() == 1.0)
    assert abs(conv.kernel.numpy().std() - np.sqrt(2 / (3 * 3 * 2))) < 0.1  # he_normal (truncated)
    glorot = np.sqrt(6 / (64 + 200))
    assert abs(dense.kernel.numpy().max() - glorot) < 0.02 and abs(dense.kernel.numpy().min() + glorot) < 0.02
    assert dw.kernel.numpy().std() > 0
    before = [w.copy() for w in model.get_weights()]
    assert reinitialize(model, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_reinitialize_refuses_layers_it_cannot_tell():
    inputs = keras.Input((4,))
    norm = keras.layers.Normalization()  # adapt() state: mean, variance, count
    model = keras.Model(inputs, keras.layers.Dense(3)(norm(inputs)))
    before = [w.copy() for w in model.get_weights()]
    assert not reinitialize(model, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_next_model_built_in_a_worker_thread_gives_the_same_features(tiny_specs, bright_dark_images, monkeypatch):
    import threading

    import tfxfer.transfer.feature_pass as fp

    x = bright_dark_images[0][:6]
    # two tiny architectures (two build groups): the overlap is about threads, not about the backbones
    candidates = [Candidate(tiny_specs[0], weights=None), Candidate(tiny_specs[1], weights=None)]
    built_in = []
    prepare = fp._prepare
    monkeypatch.setattr(fp, "_prepare",
                        lambda *a, **k: built_in.append(threading.current_thread().name) or prepare(*a, **k))
    overlapped = extract_candidates(candidates, x, input_size=(16, 16))
    assert built_in[0].startswith("tfxfer-extract") and len(built_in) == 2  # one build per group, ahead of time
    monkeypatch.setattr(fp, "_OVERLAP", False)
    built_in.clear()
    sequential = extract_candidates(candidates, x, input_size=(16, 16))
    assert built_in == [threading.current_thread().name] * 2
    assert list(overlapped) == list(sequential) == [c.label for c in candidates]
    for label in overlapped:
        np.testing.assert_array_equal(overlapped[label][0].features, sequential[label][0].features)


def test_a_build_that_fails_in_the_worker_raises_in_the_caller(tiny_specs, bright_dark_images, monkeypatch):
    import tfxfer.transfer.feature_pass as fp

    def broken(candidate, *args, **kwargs):
        if candidate.spec.name == "tiny_b":  # the second build: made in the worker thread
            raise ValueError("cannot build this one")
        return build(candidate, *args, **kwargs)

    build = fp._build
    monkeypatch.setattr(fp, "_build", broken)
    x = bright_dark_images[0][:4]
    with pytest.raises(ValueError, match="cannot build this one"):
        extract_candidates([Candidate(tiny_specs[0], weights=None), Candidate(tiny_specs[1], weights=None)],
                           x, input_size=(16, 16))
