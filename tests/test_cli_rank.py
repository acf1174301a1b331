"""`tfxfer rank RECIPE|DATA`: the recipe form with `--set`, default candidates, the budget flags,
`--probe`, and one-line errors with exit code 2."""

import os

import pytest

from tests.factories import make_image_folder
from tests.helpers import one_line_error as _error
from tfxfer import cli
from tfxfer.recipes.ranking import image_rank_inputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "pipelines", "quick.yaml")
TINY = ["mobilenet_v3_small:random", "mobilenet_v2:random"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("rank") / "images", per_class=6)


def _rows(out):
    """Table rows keyed by candidate label."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) > 3 and cells[1] and cells[0] not in ("rank", "---:"):
            rows[cells[1]] = cells
    return rows


def _inputs(argv):
    args = cli.build_parser().parse_args(["rank", *argv])
    return image_rank_inputs(args.data, candidates=args.candidates and args.candidates.split(","),
                             overrides=args.overrides, input_size=args.input_size)


def test_recipe_defaults_candidates_and_data(folder):
    source, channels, size, candidates = _inputs([QUICK, "--set", f"data.source={folder}"])
    assert (source, channels, size) == (folder, 1, (96, 96))  # quick.yaml: grayscale, 96x96
    # the recipe's backbone (efficientnet_lite0, imagenet) is not repeated
    assert [c.label for c in candidates] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    _, channels, size, candidates = _inputs([QUICK, "--set", f"data.source={folder}", "--set", "model.weights=null",
                                             "--set", "model.backbone=mobilenet_v2", "--set", "data.color_mode=rgb",
                                             "--input-size", "48"])
    assert channels == 3 and size == (48, 48)
    assert [c.label for c in candidates] == ["mobilenet_v2:random", "efficientnet_lite0", "efficientnet_lite1",
                                             "efficientnet_lite2"]
    assert candidates[0].weights is None and candidates[1].weights == "imagenet"
    _, _, _, candidates = _inputs([QUICK, "--set", f"data.source={folder}", "--candidates",
                                   "mobilenet_v2:random, mobilenet_v2:none ,resnet50:random@64,mobilenet_v2"])
    assert [c.label for c in candidates] == ["mobilenet_v2:random", "resnet50:random@64", "mobilenet_v2"]
    source, channels, size, _ = _inputs([folder, "--candidates", "mobilenet_v2:random"])
    assert (source, channels, size) == (folder, 3, None)


def test_rank_from_recipe_with_overrides(folder, capsys):
    assert cli.main(["rank", QUICK, "--set", f"data.source={folder}", "--set", "model.input_size=[32, 32]",
                     "--candidates", ",".join(TINY), "--no-cost", "--max-samples", "18"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert set(rows) == set(TINY)
    assert {r[0] for r in rows.values()} == {"1", "2"}
    assert all(r[2] == "32x32" for r in rows.values())  # input size from the recipe (as overridden)
    assert "[1/2]" in out and "[2/2]" in out and "on 18 samples" in out
    assert "Scores are advisory" in out


def test_budget_flag_marks_over_budget_candidates(folder, capsys):
    # int8 at 32x32: mobilenet_v3_small is about 1.0 MiB, mobilenet_v2 about 2.5 MiB
    assert cli.main(["rank", folder, "--candidates", "mobilenet_v3_small:random@32,mobilenet_v2:random@32",
                     "--max-size-mib", "2", "--max-samples", "18", "-q"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    small, large = rows["mobilenet_v3_small:random@32"], rows["mobilenet_v2:random@32"]
    assert small[0] == "1" and small[-1] == "ok" and small[-2] == "yes"
    assert large[0] == "-" and large[-1].startswith("int8 size") and "> 2 MiB" in large[-1]
    assert "budget: int8 size <= 2 MiB" in out and "Suggested start: mobilenet_v3_small:random@32." in out
    assert cli.main(["rank", folder, "--candidates", "mobilenet_v3_small:random@32", "--max-size-mib", "0.01",
                     "--max-samples", "18", "-q", "--probe"]) == 0
    out = capsys.readouterr().out
    assert "none within budget" in out and "Probe skipped: no candidate is within the budget." in out


def test_probe_prints_a_verdict(folder, capsys):
    assert cli.main(["rank", folder, "--candidates", "mobilenet_v3_small:random@32", "--no-cost",
                     "--max-samples", "18", "--probe"]) == 0
    out = capsys.readouterr().out
    assert "Negative-transfer probe for mobilenet_v3_small:random@32:" in out
    assert "| control: random_weights |" in out
    assert any(f"**{v}**" in out for v in ("transfer_helps", "no_clear_gain", "negative_transfer", "inconclusive"))
    assert "two random initialisations" in out


def test_errors_are_one_line_with_exit_code_2(folder, tmp_path, capsys):
    line = _error(capsys, ["rank", QUICK, "--set", "model.backbon=resnet50", "--candidates", "mobilenet_v2:random"])
    assert "unknown key `model.backbon`. Did you mean `model.backbone`?" in line
    bad = tmp_path / "typo.yaml"
    bad.write_text(f"data: {{source: {folder}}}\ntrain: {{head_epochz: 2}}\n")
    assert _error(capsys, ["rank", str(bad)]).endswith("Did you mean `train.head_epochs`?")
    line = _error(capsys, ["rank", QUICK, "--set", f"data.source={tmp_path / 'missing'}"])
    assert "`data.source`: folder or file not found" in line
    assert "--candidates" in _error(capsys, ["rank", folder])
    assert "--set" in _error(capsys, ["rank", folder, "--candidates", "mobilenet_v2", "--set", "train.epochs=1"])
    assert "measure_cost" in _error(capsys, ["rank", folder, "--candidates", "mobilenet_v2:random@32", "--no-cost",
                                             "--max-latency-ms", "5", "-q"])


def test_max_per_class_takes_a_stratified_subset_and_json_says_which(folder, capsys):
    import json

    assert cli.main(["rank", folder, "--candidates", "mobilenet_v3_small:random@32", "--no-cost",
                     "--max-per-class", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    sample = doc["ranking"]["sample"]
    assert set(sample["per_class"].values()) == {2} and sample["count"] == 2 * len(sample["per_class"])
    assert sample["of"] > sample["count"] and len(sample["indices"]) == sample["count"]
    assert doc["ranking"]["num_samples"] == sample["count"] and sample["max_per_class"] == 2
    line = _error(capsys, ["rank", folder, "--candidates", "mobilenet_v2:random", "--max-per-class", "-1"])
    assert "--max-per-class" in line and "-1" in line
