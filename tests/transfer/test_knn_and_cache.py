"""The k-NN transferability score, and the ranking cache (features and edge cost reused across runs)."""

import os

import numpy as np
import pytest

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.transfer import Candidate, knn, rank_backbones


def test_knn_separates_informative_from_uninformative_features():
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    informative = rng.normal(size=(300, 16)) + 4.0 * np.eye(3)[y] @ rng.normal(size=(3, 16))
    noise = rng.normal(size=(300, 16))
    assert knn(informative, y) > 0.95
    assert abs(knn(noise, y) - 1 / 3) < 0.1
    # scale and offset of the features do not matter; chunking gives the same answer
    assert knn(informative * 1e3 + 7.0, y) == knn(informative, y) == knn(informative, y, chunk=7)


def test_knn_is_leave_one_out_and_caps_k():
    x = np.array([[0.0, 1.0], [0.0, 1.1], [1.0, 0.0], [1.1, 0.0]])
    assert knn(x, [0, 0, 1, 1], k=1) == 1.0
    assert knn(x, [0, 1, 0, 1], k=1) == 0.0  # each point's only neighbour of its own kind is itself: left out
    assert 0.0 <= knn(x, [0, 0, 1, 1], k=50) <= 1.0  # k capped at N - 1


def test_knn_bad_input_names_the_argument():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ArgumentError, match="k"):
        knn(x, np.arange(10) % 2, k=0)
    with pytest.raises(DataError, match="single class"):
        knn(x, np.zeros(10, int))
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        knn(bad, np.arange(10) % 2)
    with pytest.raises(ArgumentError, match="labels"):
        knn(x, np.arange(9) % 2)


def test_ranking_reports_knn(tiny_specs, bright_dark_images):
    result = rank_backbones(bright_dark_images, tiny_specs[:2], input_size=(16, 16), measure_cost=False,
                            scores=("logme", "knn"), verbose=0)
    rows = result.to_rows()
    assert all(0.0 <= r["knn"] <= 1.0 for r in rows)
    assert "knn" in result.to_markdown()
    by_knn = rank_backbones(bright_dark_images, tiny_specs[:2], input_size=(16, 16), measure_cost=False,
                            scores=("knn",), verbose=0)
    assert [r["knn"] for r in by_knn.to_rows()] == sorted((r["knn"] for r in by_knn.to_rows()), reverse=True)


def test_second_ranking_reuses_features_and_cost_from_the_cache(tiny_specs, bright_dark_images, tmp_path):
    candidates = [Candidate(s) for s in tiny_specs[:2]]
    first = rank_backbones(bright_dark_images, candidates, input_size=(16, 16), latency_runs=3, verbose=0,
                           cache_dir=tmp_path)
    second = rank_backbones(bright_dark_images, candidates, input_size=(16, 16), latency_runs=3, verbose=0,
                            cache_dir=tmp_path)
    a = {r["candidate"]: r for r in first.to_rows()}
    b = {r["candidate"]: r for r in second.to_rows()}
    assert not any(r["features_cached"] or r["cost_cached"] for r in a.values())
    assert all(r["features_cached"] and r["cost_cached"] and r["cost_s"] == 0.0 for r in b.values())
    for name in a:
        for key in ("logme", "hscore", "knn", "leep", "nce", "params", "int8_size_mib", "latency_ms", "rank"):
            assert a[name][key] == b[name][key], (name, key)
    assert len(os.listdir(tmp_path / "features")) == 2 and len(os.listdir(tmp_path / "cost")) == 2
    # other images: new features, the same architectures' cost still reused
    x, y = bright_dark_images
    third = rank_backbones((x[::-1].copy(), y[::-1].copy()), candidates, input_size=(16, 16), latency_runs=3,
                           verbose=0, cache_dir=tmp_path)
    assert all(not r["features_cached"] and r["cost_cached"] for r in third.to_rows())
    # another input size is another architecture cost
    fourth = rank_backbones(bright_dark_images, candidates[:1], input_size=(24, 24), latency_runs=3, verbose=0,
                            cache_dir=tmp_path, scores=("logme",))
    assert not fourth.to_rows()[0]["cost_cached"]


def test_a_damaged_cache_entry_is_a_miss_and_is_rewritten(tiny_specs, bright_dark_images, tmp_path):
    rank_backbones(bright_dark_images, tiny_specs[:1], input_size=(16, 16), measure_cost=False, verbose=0,
                   cache_dir=tmp_path, scores=("logme",))
    (entry,) = (tmp_path / "features").iterdir()
    entry.write_bytes(b"not a zip")
    again = rank_backbones(bright_dark_images, tiny_specs[:1], input_size=(16, 16), measure_cost=False, verbose=0,
                           cache_dir=tmp_path, scores=("logme",))
    assert not again.to_rows()[0]["features_cached"] and np.isfinite(again.to_rows()[0]["logme"])
    assert entry.read_bytes().startswith(b"PK")  # rewritten as an .npz


def test_cache_dir_bad_values(tiny_specs, bright_dark_images):
    with pytest.raises(ArgumentTypeError, match="cache_dir"):
        rank_backbones(bright_dark_images, tiny_specs[:1], input_size=(16, 16), measure_cost=False, verbose=0,
                       cache_dir=3)
    texts = np.array(["good film", "bad film"] * 4, dtype=object)
    with pytest.raises(ArgumentError, match="cache_dir"):
        rank_backbones((texts, np.array([1, 0] * 4)), ["x"], cache_dir="somewhere", verbose=0)


def test_locally_supplied_imagenet_weights_for_a_catalog_backbone(tmp_path):
    """A weights folder stands in for Keras's download: a full-classifier file also gives LEEP/NCE."""
    from tfxfer.backbones import get_spec
    from tfxfer.transfer.embeddings import candidate_features

    spec = get_spec("mobilenet_v2")
    full, headless = tmp_path / "full", tmp_path / "headless"
    full.mkdir()
    headless.mkdir()
    spec.top_builder((32, 32, 3), None).save_weights(full / "mobilenet_v2.weights.h5")
    spec.build(input_shape=(32, 32, 3), weights=None).save_weights(headless / "mobilenet_v2_notop.weights.h5")
    x = np.random.default_rng(0).uniform(0, 255, (24, 32, 32, 3)).astype("float32")
    y = np.arange(24) % 2
    ranked = rank_backbones((x, y), ["mobilenet_v2"], input_size=(32, 32), measure_cost=False, verbose=0,
                            weights_dir=full, keep_features=True)
    with_head = ranked.to_rows()[0]
    assert with_head["candidate"] == "mobilenet_v2" and with_head["weights"] == str(full / "mobilenet_v2.weights.h5")
    assert with_head["leep"] is not None and with_head["nce"] is not None and with_head["note"] == ""
    # the ranking really used the file: the same features as a candidate naming it directly
    direct = candidate_features(Candidate("mobilenet_v2", weights=str(full / "mobilenet_v2.weights.h5")), x,
                                input_size=(32, 32))
    np.testing.assert_allclose(ranked.features["mobilenet_v2"][0], direct.features, rtol=1e-5, atol=1e-5)
    no_head = rank_backbones((x, y), ["mobilenet_v2", "mobilenet_v2:random"], input_size=(32, 32),
                             measure_cost=False, verbose=0, weights_dir=headless).to_rows()
    rows = {r["candidate"]: r for r in no_head}
    assert rows["mobilenet_v2"]["weights"].endswith("mobilenet_v2_notop.weights.h5")
    assert rows["mobilenet_v2"]["leep"] is None and "holds no ImageNet head" in rows["mobilenet_v2"]["note"]
    assert rows["mobilenet_v2:random"]["weights"] == "random"  # explicit weights are left alone
    with pytest.raises(ArgumentError, match="weights_dir"):
        rank_backbones((x, y), ["mobilenet_v2"], input_size=(32, 32), measure_cost=False, verbose=0,
                       weights_dir=tmp_path / "missing")
