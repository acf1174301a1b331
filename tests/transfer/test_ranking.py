"""rank_backbones: every candidate with size and latency, a correct Pareto flag, the budget."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, UnknownNameError
from tfxfer.transfer import ADVISORY, Budget, Candidate, pareto_flags, rank_backbones


def dominated(row, rows, cost):
    return any(o is not row and o["logme"] >= row["logme"] and o[cost] <= row[cost]
               and (o["logme"] > row["logme"] or o[cost] < row[cost]) for o in rows)


@pytest.mark.parametrize("cost_axis", ["latency_ms", "int8_size_mib"])
def test_every_candidate_has_cost_scores_and_a_correct_pareto_flag(tiny_specs, bright_dark_images, cost_axis):
    result = rank_backbones(bright_dark_images, [Candidate(s) for s in tiny_specs], input_size=(16, 16),
                            cost_axis=cost_axis, latency_runs=5, verbose=0)
    rows = result.to_rows()
    assert sorted(r["backbone"] for r in rows) == ["tiny_a", "tiny_b", "tiny_c"]
    by_name = {r["backbone"]: r for r in rows}
    assert by_name["tiny_a"]["params"] < by_name["tiny_b"]["params"] < by_name["tiny_c"]["params"]
    assert by_name["tiny_a"]["int8_size_mib"] < by_name["tiny_c"]["int8_size_mib"]
    for r in rows:
        assert r["latency_ms"] > 0 and r["int8_size_mib"] > 0 and r["input_size"] == "16x16"
        assert np.isfinite(r["logme"]) and np.isfinite(r["hscore"])
        assert r["within_budget"] and r["extract_s"] > 0
        assert r["pareto"] == (not dominated(r, rows, cost_axis))
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert [r["logme"] for r in rows] == sorted((r["logme"] for r in rows), reverse=True)
    assert rows[0]["pareto"]  # the best score is always on the front
    assert min(rows, key=lambda r: r[cost_axis])["pareto"]  # and so is the cheapest
    assert result.best["candidate"] == rows[0]["candidate"]
    # LEEP/NCE only where the spec has a source head
    assert by_name["tiny_a"]["leep"] is not None and by_name["tiny_a"]["nce"] is not None
    assert by_name["tiny_b"]["leep"] is None and "no ImageNet head" in by_name["tiny_b"]["note"]
    text = result.to_markdown()
    assert ADVISORY in text and "tiny_c" in text and "Pareto" in text


def test_budget_leaves_out_what_does_not_fit(tiny_specs, bright_dark_images):
    limit = 2_000  # tiny_a (4/8 filters) fits, tiny_b (16/32) and tiny_c do not
    result = rank_backbones(bright_dark_images, tiny_specs, input_size=(16, 16), budget={"max_params": limit},
                            scores=("logme", "hscore"), latency_runs=3, verbose=0)
    rows = {r["backbone"]: r for r in result.to_rows()}
    assert rows["tiny_a"]["params"] <= limit < rows["tiny_b"]["params"]
    assert rows["tiny_a"]["within_budget"] and rows["tiny_a"]["rank"] == 1 and rows["tiny_a"]["pareto"]
    for name in ("tiny_b", "tiny_c"):
        r = rows[name]
        assert not r["within_budget"] and "params" in r["over_budget"]
        assert r["rank"] is None and r["logme"] is None and not r["pareto"] and r["extract_s"] == 0.0
        assert r["int8_size_mib"] > 0 and r["latency_ms"] > 0  # cost is still reported
    assert result.best["backbone"] == "tiny_a"
    assert "params <= 2,000" in result.to_markdown()
    # scored anyway on request, still unranked and off the front
    again = rank_backbones(bright_dark_images, tiny_specs[1:], input_size=(16, 16), budget=Budget(max_params=limit),
                           score_over_budget=True, scores=("logme",), latency_runs=3, verbose=0)
    assert all(r["logme"] is not None and r["rank"] is None and not r["pareto"] for r in again.to_rows())
    assert again.best is None and "none within budget" in again.to_markdown()


def test_catalog_backbone_with_imagenet_head_and_dataset_input(bright_dark_images):
    x, y = bright_dark_images
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    result = rank_backbones(dataset, ["mobilenet_v2:random@32"], measure_cost=False, verbose=0)
    row = result.to_rows()[0]
    assert row["input_size"] == "32x32" and row["weights"] == "random"
    assert row["leep"] <= 0 and row["nce"] <= 0 and np.isfinite(row["logme"])
    assert row["latency_ms"] is None and row["pareto"] is False and row["rank"] == 1


def test_one_hot_labels_score_like_class_ids(tiny_specs, bright_dark_images):
    x, y = bright_dark_images
    rows = []
    for labels in (y, np.eye(3)[y]):
        keras.utils.set_random_seed(7)  # the same random weights each time
        result = rank_backbones((x, labels), tiny_specs[:1], input_size=(16, 16), scores=("nce", "logme"),
                                measure_cost=False, verbose=0)
        rows.append(result.to_rows()[0])
    assert result.primary == "logme"
    assert rows[0]["nce"] == pytest.approx(rows[1]["nce"]) and rows[0]["logme"] == pytest.approx(rows[1]["logme"])


def test_regression_and_subset(tiny_specs, bright_dark_images):
    x, _ = bright_dark_images
    targets = x.mean(axis=(1, 2, 3))
    result = rank_backbones((x, targets), tiny_specs[:1], task="regression", scores=("logme",), measure_cost=False,
                            max_samples=40, input_size=(16, 16), verbose=0)
    assert result.num_samples == 40 and result.num_classes is None
    assert np.isfinite(result.to_rows()[0]["logme"])


def test_progress_lines(tiny_specs, bright_dark_images, capsys):
    result = rank_backbones(bright_dark_images, tiny_specs[:1], input_size=(16, 16), scores=("logme",),
                            measure_cost=False, keep_features=True)
    assert "[1/1] tiny_a @ 16x16: cost not measured; logme" in capsys.readouterr().out
    features, probs, labels = result.features["tiny_a"]
    assert features.shape == (60, 8) and probs is None and labels.tolist() == bright_dark_images[1].tolist()


def test_pareto_flags_by_hand():
    assert pareto_flags([0.9, 0.8, 0.7, 0.95], [5.0, 2.0, 3.0, 9.0]) == [True, True, False, True]
    assert pareto_flags([0.5, 0.5], [1.0, 1.0]) == [True, True]  # ties dominate nothing
    assert pareto_flags([0.5, 0.5], [1.0, 2.0]) == [True, False]
    assert pareto_flags([None, 0.1, 0.2], [0.1, None, 5.0]) == [False, False, True]


def test_candidate_strings():
    c = Candidate.parse("EfficientNet-Lite0:random@96x128")
    assert (c.backbone, c.weights, c.input_size) == ("efficientnet_lite0", None, (96, 128))
    assert Candidate.parse("resnet50").weights == "imagenet"
    assert Candidate("resnet50", weights=None).label == "resnet50:random"
    with pytest.raises(ArgumentError, match="@<size>"):
        Candidate.parse("resnet50@big")
    with pytest.raises(ArgumentError, match="existing weights file"):
        Candidate.parse("resnet50:/no/such/file.h5")
    with pytest.raises(UnknownNameError, match="mobilenet_v2"):
        Candidate.parse("mobilenet_v3")
    with pytest.raises(ArgumentError, match="input_size"):
        Candidate("resnet50", input_size=(0, 32))
    with pytest.raises(ArgumentTypeError, match="candidate"):
        Candidate.parse("")


def test_errors(tiny_specs, bright_dark_images):
    data = bright_dark_images
    one = tiny_specs[:1]
    with pytest.raises(ArgumentError, match="scores"):
        rank_backbones(data, one, scores=("logme", "accuracy"), verbose=0)
    with pytest.raises(ArgumentError, match="primary"):
        rank_backbones(data, one, scores=("hscore",), primary="logme", verbose=0)
    with pytest.raises(ArgumentError, match="cost_axis"):
        rank_backbones(data, one, cost_axis="flops", verbose=0)
    with pytest.raises(ArgumentError, match="task"):
        rank_backbones(data, one, task="detection", verbose=0)
    with pytest.raises(ArgumentError, match="regression"):
        rank_backbones(data, one, task="regression", verbose=0)
    with pytest.raises(ArgumentError, match="measure_cost"):
        rank_backbones(data, one, budget={"max_latency_ms": 5}, measure_cost=False, verbose=0)
    with pytest.raises(ArgumentError, match="may only have the keys"):
        rank_backbones(data, one, budget={"max_size": 5}, verbose=0)
    with pytest.raises(ArgumentError, match="`max_size_mib` must be a finite number > 0 or None. Received: max_size_mib=-1"):
        Budget(max_size_mib=-1)
    with pytest.raises(ArgumentTypeError, match="budget"):
        rank_backbones(data, one, budget=5, verbose=0)
    with pytest.raises(ArgumentError, match="repeat"):
        rank_backbones(data, ["resnet50", "resnet50"], verbose=0)
    with pytest.raises(ArgumentError, match="at least one"):
        rank_backbones(data, [], verbose=0)
    with pytest.raises(ArgumentTypeError, match="candidates"):
        rank_backbones(data, [42], verbose=0)
    with pytest.raises(ArgumentError, match="max_samples"):
        rank_backbones(data, one, max_samples=1, verbose=0)
    with pytest.raises(DataError, match="multi-label"):
        rank_backbones((data[0], np.ones((60, 3))), one, measure_cost=False, verbose=0)
    with pytest.raises(DataError, match="single class"):
        rank_backbones((data[0], np.zeros(60)), one, measure_cost=False, verbose=0)
    with pytest.raises(DataError, match=r"\(N, H, W, 1 or 3\)"):
        rank_backbones((np.zeros((4, 8, 8, 2)), np.arange(4) % 2), one, verbose=0)
    with pytest.raises(DataError, match="labels"):
        rank_backbones((data[0], data[1][:5]), one, verbose=0)
    with pytest.raises(ArgumentTypeError, match="tuple of arrays"):
        rank_backbones([data[0], data[1]], one, verbose=0)
    with pytest.raises(ArgumentError, match="at least 8x8"):
        rank_backbones(data, one, input_size=(4, 4), measure_cost=False, verbose=0)
