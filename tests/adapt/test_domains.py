"""Domain pairs: the packaged data sets split by domain, with the domain as a group column."""

import numpy as np
import pytest

from tfxfer.data import domains
from tfxfer.data.registry import LoadedDataset
from tfxfer.data.result import Split
from tfxfer.errors import UnknownNameError


def _fake_elpv(name):
    assert name == "elpv"
    splits, extras = {}, {}
    for i, s in enumerate(("train", "val", "test")):
        n = 10 + i
        splits[s] = Split(np.arange(n)[:, None, None, None] + 100 * i, np.arange(n) % 2)
        extras[s] = {"module_type": np.array(["mono", "poly"] * n)[:n]}
    return LoadedDataset("elpv", splits["train"], splits["val"], splits["test"], ["functional", "defective"],
                         info=type("Info", (), {"licence": "CC BY-NC-SA 4.0"})(), extras=extras)


def test_elpv_pairs_split_every_split_by_cell_type(monkeypatch):
    monkeypatch.setattr(domains, "load", _fake_elpv)
    pair = domains.domain_pair("elpv_poly_to_mono")
    assert (pair.source_domain, pair.target_domain) == ("poly", "mono")
    assert pair.sizes() == {"source_train": 5, "source_val": 5, "source_test": 6,
                            "target_train": 5, "target_val": 6, "target_test": 6}
    np.testing.assert_array_equal(pair.target_train.x[:, 0, 0, 0], [0, 2, 4, 6, 8])  # the mono rows
    np.testing.assert_array_equal(pair.source_train.x[:, 0, 0, 0], [1, 3, 5, 7, 9])
    assert len(pair.audit_test.y) == 12
    assert list(pair.audit_groups) == ["poly"] * 6 + ["mono"] * 6
    assert pair.class_names == ["functional", "defective"] and "NC" in pair.licence


def test_unknown_pairs_suggest_close_names():
    assert "sentiment_movies_to_tweets" in domains.list_domain_pairs()
    with pytest.raises(UnknownNameError, match="Did you mean: 'elpv_mono_to_poly'"):
        domains.domain_pair("elpv_mono_to_polly")


@pytest.mark.slow
def test_real_elpv_pair_has_both_classes_in_both_domains():
    pair = domains.domain_pair("elpv_mono_to_poly")
    assert pair.source_train.x.shape[1:] == pair.target_train.x.shape[1:] == (300, 300, 1)
    for split in (pair.source_train, pair.target_train, pair.target_test):
        assert set(np.unique(split.y)) == {0, 1}
    total = sum(pair.sizes().values())
    assert total == 2624  # every cell is in exactly one domain and one split


@pytest.mark.slow
@pytest.mark.parametrize("target", ["tweets", "amazon", "nyt"])
def test_real_sentiment_pairs_share_labels(target):
    pair = domains.domain_pair(f"sentiment_movies_to_{target}")
    assert pair.source_train.x.dtype == object and pair.target_test.x.dtype == object
    assert pair.class_names == ["negative", "positive"]
    assert set(np.unique(pair.target_train.y)) == {0, 1}
