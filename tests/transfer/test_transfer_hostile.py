"""Hostile inputs to ranking and probing: a changed backbone under a reused name, damaged cache
entries, probe splits that cannot be stratified, texts with no TF-IDF vocabulary, extreme scales."""

import json

import numpy as np
import pytest

from tests.factories import tiny_spec
from tfxfer.errors import ArgumentError, DataError
from tfxfer.transfer import Candidate, knn, probe_features, probe_text, rank_backbones
from tfxfer.transfer.cache import RankingCache, architecture_id
from tfxfer.transfer.embeddings import CandidateFeatures


def _rank(data, spec, cache_dir):
    result = rank_backbones(data, [Candidate(backbone=spec, weights=None)], input_size=(16, 16),
                            measure_cost=False, scores=("logme",), convert_extractors=False, verbose=0,
                            cache_dir=cache_dir)
    return result.to_rows()[0]


# -- 1. the cache key identifies the architecture, not only the name ----------------------------------
def test_same_name_wider_spec_is_a_cache_miss(bright_dark_images, tmp_path):
    narrow, wide = tiny_spec(name="t", width=4), tiny_spec(name="t", width=16)
    first = _rank(bright_dark_images, narrow, tmp_path)
    second = _rank(bright_dark_images, wide, tmp_path)
    uncached = _rank(bright_dark_images, wide, None)
    assert not second["features_cached"]
    assert second["logme"] == pytest.approx(uncached["logme"]) != pytest.approx(first["logme"])
    assert _rank(bright_dark_images, tiny_spec(name="t", width=16), tmp_path)["features_cached"]  # same spec: a hit


def test_architecture_id_tells_specs_of_one_name_apart(tmp_path):
    narrow, wide = tiny_spec(name="t", width=4), tiny_spec(name="t", width=16)
    assert architecture_id(narrow) == architecture_id(tiny_spec(name="t", width=4))  # stable across instances
    assert architecture_id(narrow) != architecture_id(wide)
    cache = RankingCache(tmp_path)
    options = dict(input_size=(16, 16), channels=1, num_outputs=3, task="multiclass", threads=1, runs=2,
                   num_calibration=4)
    assert cache.cost_key(narrow, **options) != cache.cost_key(wide, **options)
    assert cache.extractor_key(narrow, None, input_size=(16, 16), channels=1, source_head=False) != \
        cache.extractor_key(wide, None, input_size=(16, 16), channels=1, source_head=False)


# -- 2. damaged feature entries are misses -------------------------------------------------------------
def _stored_features(tmp_path, rows=30):
    cache = RankingCache(tmp_path)
    key = cache.feature_key("mobilenet_v2", None, data="d", input_size=(8, 8), source_head=False)
    cache.put_features(key, CandidateFeatures(np.ones((rows, 4), "float32"), None, ""))
    return cache, key, cache._feature_path(key)


def _savez(path, features):
    with open(path, "wb") as f:
        np.savez(f, features=features, source_probs=np.zeros((0, 0)), has_probs=np.array(False), note=np.array(""))


@pytest.mark.parametrize("damage", [
    lambda p: open(p, "wb").close(),
    lambda p: np.save(open(p, "wb"), np.ones(3)),
    lambda p: _savez(p, np.ones((5, 4))),
    lambda p: _savez(p, np.ones(30)),
    lambda p: _savez(p, np.array(["x"] * 30)),
], ids=["empty", "npy", "wrong_rows", "1d", "strings"])
def test_damaged_feature_entry_is_a_miss(tmp_path, damage):
    cache, key, path = _stored_features(tmp_path)
    assert cache.get_features(key, rows=30).features.shape == (30, 4)
    damage(path)
    assert cache.get_features(key, rows=30) is None


def test_ranking_rewrites_a_feature_entry_with_wrong_rows(bright_dark_images, tmp_path):
    spec = tiny_spec(name="t", width=4)
    fresh = _rank(bright_dark_images, spec, tmp_path)
    [path] = (tmp_path / "features").glob("*.npz")
    _savez(path, np.ones((5, 3)))
    again = _rank(bright_dark_images, spec, tmp_path)
    assert not again["features_cached"] and again["logme"] == pytest.approx(fresh["logme"])
    assert _rank(bright_dark_images, spec, tmp_path)["features_cached"]  # rewritten


# -- 3. damaged cost entries are misses ----------------------------------------------------------------
@pytest.mark.parametrize("entry", [
    {"params": "many", "int8_size_mib": "x", "latency_ms": "y", "cost_s": 1},
    {"params": None, "int8_size_mib": None, "latency_ms": None, "cost_s": 0},
    {"params": -5, "int8_size_mib": -1.0, "latency_ms": -2.0, "cost_s": 0},
    {"params": float("nan"), "int8_size_mib": 1.0, "latency_ms": 1.0, "cost_s": 0},
    {"params": True, "int8_size_mib": 1.0, "latency_ms": 1.0, "cost_s": 0},
    [1, 2],
], ids=["strings", "null", "negative", "nan", "bool", "list"])
def test_damaged_cost_entry_is_a_miss(tmp_path, entry):
    cache = RankingCache(tmp_path)
    good = {"params": 435, "int8_size_mib": 0.01, "latency_ms": 0.2, "cost_s": 1.5}
    cache.put_cost("k", good)
    assert cache.get_cost("k") == good
    with open(cache._cost_path("k"), "w", encoding="utf-8") as f:
        json.dump(entry, f)
    assert cache.get_cost("k") is None


# -- 4. probe splits and TF-IDF -----------------------------------------------------------------------
def _probe(n, classes, **options):
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    return probe_features(rng.normal(size=(n, 4)) + y[:, None], {"random_weights": rng.normal(size=(n, 4))}, y,
                          **options)


def test_probe_split_too_small_for_stratification_names_test_fraction():
    with pytest.raises(ArgumentError, match=r"test_fraction.*too few examples per class.*10 classes"):
        _probe(20, 10)
    with pytest.raises(ArgumentError, match="test_fraction"):
        _probe(20, 2, test_fraction=1e-9)
    assert _probe(20, 10, test_fraction=0.5).num_test == 10


@pytest.mark.parametrize("options, name", [({"seed": -1}, "seed"), ({"test_fraction": 1.0}, "test_fraction"),
                                           ({"test_fraction": True}, "test_fraction"),
                                           ({"margin": float("nan")}, "margin")])
def test_probe_bad_options_name_the_argument(options, name):
    with pytest.raises(ArgumentError, match=f"`{name}`"):
        _probe(20, 2, **options)


@pytest.mark.parametrize("texts, labels", [(["a", "b", "c"], [0, 1, 2]), ([""] * 20, [0, 1] * 10)],
                         ids=["one_letter", "empty"])
def test_probe_text_without_tfidf_vocabulary_is_a_data_error(texts, labels):
    def encode(t):
        return np.random.default_rng(len(t)).normal(size=(len(t), 4))

    with pytest.raises(DataError, match="TF-IDF vocabulary"):
        probe_text(texts, labels, encode=encode)


# -- 5. knn does not depend on the features' scale -----------------------------------------------------
def test_knn_is_scale_invariant_at_extreme_scales():
    rng = np.random.default_rng(0)
    y = np.arange(40) % 4
    f = rng.normal(size=(40, 3)) + 0.5 * y[:, None]
    base = knn(f, y)
    with np.errstate(all="raise"):
        assert [knn(f * s, y) for s in (1e300, 1e-300, 1e150)] == [base] * 3
