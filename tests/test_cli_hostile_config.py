"""Hostile configuration caught before any work: blank or misspelled recipe keys, out-of-range
``tfxfer export`` / ``tfxfer rank`` options and gate limits, and run folders that are not runs or hold
corrupt JSON. Every check names the key, option or file, and none trains, converts or writes a file."""

import json
import os

import pytest

from tests.helpers import one_line_error as _error
from tfxfer import cli
from tfxfer.errors import ArgumentError, ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.path.join(ROOT, "pipelines", "quick.yaml")
SOURCE = "data: {source: animal_mnist}\n"


# -- recipes ---------------------------------------------------------------------------------------
def _config(text, overrides=()):
    from tfxfer.recipes.config_loader import load_config

    return load_config(text=text, overrides=list(overrides))


@pytest.mark.parametrize("source", ["  ", "", "\t"])
def test_a_blank_data_source_is_a_config_error(source):
    with pytest.raises(ConfigError, match=r"`data\.source` is required"):
        _config(f"data: {{source: {json.dumps(source)}}}")


def test_resolving_a_blank_source_never_reads_the_current_folder():
    import dataclasses

    from tfxfer.recipes.sources import resolve_source

    cfg = _config(SOURCE)
    blank = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, source="  "))  # bypasses validate()
    with pytest.raises(ConfigError, match=r"`data\.source` is required"):
        resolve_source(blank)


def test_a_misspelled_monitor_suggests_the_right_one():
    with pytest.raises(ConfigError, match=r"`train\.monitor` must be one of .*Received: 'val_acuracy'\. "
                                          r"Did you mean 'val_accuracy'\?"):
        _config(SOURCE + "train: {monitor: val_acuracy}")
    with pytest.raises(ConfigError, match=r"`train\.monitor`"):  # the training core takes validation values only
        _config(SOURCE, ["train.monitor=loss"])


@pytest.mark.parametrize("task, source, monitor", [
    ("image_classification", "animal_mnist", "val_loss"), ("image_classification", "animal_mnist", "val_accuracy"),
    ("text_classification", "sentiment_movies", "val_accuracy"),
    ("text_classification", "sentiment_movies", "val_binary_accuracy"),  # a multi-label table's metric
])
def test_every_monitor_a_task_produces_is_accepted(task, source, monitor):
    cfg = _config(f"task: {task}\ndata: {{source: {source}}}\ntrain: {{monitor: {monitor}}}")
    assert cfg.train.monitor == monitor


def test_every_shipped_recipe_still_loads():
    import glob

    from tfxfer.recipes.config_loader import load_config

    recipes = sorted(glob.glob(os.path.join(ROOT, "pipelines", "*.yaml")))
    assert recipes and all(load_config(p).train.monitor for p in recipes)


@pytest.mark.parametrize("text, match", [
    ("export: {threads: []}", r"`export\.threads` must list at least one thread count"),
    ("export: {variants: [float32, float32], deliver: float32}",
     r"`export\.variants` must list each variant once; `export\.variants\[1\]` repeats 'float32'"),
    ("export: {variants: [int8, int8]}", r"`export\.variants\[1\]` repeats 'int8'"),
    ("seed: 99999999999999999999", r"`seed` must be an integer <= 4294967295\. Received: 99999999999999999999"),
    ("seed: 1" + "0" * 400, r"`seed` must be an integer <= 4294967295"),
    ("export: {thresholds: {float16: {min_top1_agreement: 5}}}",
     r"`export\.thresholds\.float16\.min_top1_agreement` must be a finite number <= 1\. Received: 5"),
    ("export: {thresholds: {int8: {max_accuracy_drop: 250}}}",
     r"`export\.thresholds\.int8\.max_accuracy_drop` must be a finite number <= 100"),
    ("export: {thresholds: {int8: {max_accuracy_drop: .nan}}}", r"`export\.thresholds\.int8\.max_accuracy_drop`"),
])
def test_export_keys_and_seed_are_checked_before_training(text, match):
    with pytest.raises(ConfigError, match=match):
        _config(SOURCE + text)


def test_the_largest_seed_is_accepted():
    assert _config(SOURCE + "seed: 4294967295").seed == 2**32 - 1


def test_every_gate_limit_has_a_range():
    from tfxfer.export.gate import Thresholds
    from tfxfer.recipes.config import THRESHOLD_KEYS, THRESHOLD_RANGES

    assert set(THRESHOLD_RANGES) == set(THRESHOLD_KEYS) == set(Thresholds.__dataclass_fields__)


# -- the gate's library API --------------------------------------------------------------------------
@pytest.mark.parametrize("limits, match", [
    ({"float16": {"min_top1_agreement": float("nan")}}, r"`thresholds\['float16'\]\.min_top1_agreement` must be a "
                                                        r"finite number or None\. Received: .*=nan"),
    ({"int8": {"max_accuracy_drop": float("nan")}}, r"`thresholds\['int8'\]\.max_accuracy_drop`"),
    ({"float32": {"max_abs_error": float("inf")}}, r"`thresholds\['float32'\]\.max_abs_error`"),
    ({"int8": {"max_ece_increase": "0.1"}}, r"`thresholds\['int8'\]\.max_ece_increase`"),
])
def test_resolve_thresholds_refuses_limits_that_are_not_finite_numbers(limits, match):
    """A NaN limit passes every comparison: the gate would pass any file."""
    from tfxfer.export.gate import Thresholds, resolve_thresholds

    with pytest.raises(ArgumentError, match=match):
        resolve_thresholds(limits)
    variant, values = next(iter(limits.items()))
    with pytest.raises(ArgumentError, match=match.split("`", 1)[-1].split("`")[0]):
        resolve_thresholds({variant: Thresholds(**values)})
    assert resolve_thresholds({"int8": {"max_accuracy_drop": 2.0}})["int8"].max_accuracy_drop == 2.0
    # a finite limit no file meets stays allowed: it fails the gate, which is what it asks for
    assert resolve_thresholds({"float16": {"min_top1_agreement": 1.01}})["float16"].min_top1_agreement == 1.01


# -- tfxfer export -----------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, match", [
    (["--limit", "-3"], r"`--limit` must be an int >= 1\. Received: --limit=-3"),
    (["--limit", "0"], r"`--limit` must be an int >= 1"),
    (["--min-agreement", "nan"], r"`--min-agreement` must be a finite number in \[0\.0, 1\.0\]\. Received: "
                                 r"--min-agreement=nan"),
    (["--min-agreement", "5"], r"`--min-agreement` must be a finite number in \[0\.0, 1\.0\]"),
    (["--max-accuracy-drop", "-1"], r"`--max-accuracy-drop` must be a finite number in \[0\.0, 100\.0\]"),
    (["--max-accuracy-drop", "inf"], r"`--max-accuracy-drop`"),
    (["--num-calibration", "-5"], r"`--num-calibration` must be an int >= 1"),
    (["--variants", ",,"], r"`--variants` must name at least one of float32"),
    (["--variants", "float32,float32"], r"`--variants` must name each variant once"),
    (["--variants", "float32,fp16"], r"Unknown --variants entry 'fp16'\. Did you mean: 'float16'\?"),
    (["--saved-model", "../../escape"], r"`--saved-model` must be letters, digits.*Received: "
                                        r"--saved-model='\.\./\.\./escape'"),
])
def test_export_options_are_checked_before_any_work(flags, match, tmp_path, capsys):
    import re

    model = tmp_path / "run"
    (model / "model").mkdir(parents=True)
    out = tmp_path / "out"
    line = _error(capsys, ["export", str(model), str(tmp_path / "data"), "--out", str(out), *flags])
    assert re.search(match, line), line
    assert not out.exists()  # nothing written, not even an empty folder


# -- tfxfer rank -------------------------------------------------------------------------------------
def test_rank_input_size_is_capped_like_a_recipe(capsys):
    from tfxfer.cli.rank import _check_flags
    from tfxfer.recipes.config_checks import MAX_INPUT_SIDE
    from tfxfer.recipes.ranking import image_rank_inputs

    # the flag checks alone: without the cap, the full command would build 20000x20000 models
    args = cli.build_parser().parse_args(["rank", QUICK, "--input-size", "20000"])
    with pytest.raises(ArgumentError, match=rf"`--input-size` must be an int in \[1, {MAX_INPUT_SIDE}\]\. "
                                            r"Received: --input-size=20000"):
        _check_flags(args, recipe=True)
    with pytest.raises(ArgumentError, match=r"`input_size` must be an int <= 4096\. Received: input_size=4097"):
        image_rank_inputs(QUICK, input_size=MAX_INPUT_SIDE + 1)
    assert image_rank_inputs(QUICK, input_size=MAX_INPUT_SIDE).input_size == (MAX_INPUT_SIDE, MAX_INPUT_SIDE)
    line = _error(capsys, ["rank", QUICK, "--input-size", "20000"])  # and the command stops there, in one line
    assert "`--input-size` must be an int in [1, 4096]" in line


# -- tfxfer report -----------------------------------------------------------------------------------
def test_report_refuses_a_folder_that_holds_no_run(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _error(capsys, ["report", str(empty)])
    assert "`run_dir` is not a tfxfer run directory (it holds neither manifest.json nor config.yaml)" in line
    assert not (empty / "report").exists()


@pytest.mark.parametrize("content, match", [
    (b"\xff\xfe not utf-8 \xff", r"holds a manifest\.json that tfxfer cannot use: not readable JSON"),
    (b"[1, 2, 3]", r"holds a manifest\.json that tfxfer cannot use: a JSON list, not an object"),
    (b'{"status": "ok", "wall_', r"holds a manifest\.json that tfxfer cannot use: not readable JSON"),
])
def test_a_corrupt_manifest_is_a_one_line_error_naming_it(content, match, tmp_path, capsys):
    import re

    from tfxfer.report.run_data import load_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_bytes(content)
    with pytest.raises(ArgumentError, match=match):
        load_run(run)
    assert re.search(match, _error(capsys, ["report", str(run)]))
    assert not (run / "report").exists()


def test_a_corrupt_config_yaml_is_an_error_naming_it(tmp_path):
    from tfxfer.report.run_data import load_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("- a list\n- not a recipe\n")
    with pytest.raises(ArgumentError, match=r"config\.yaml that tfxfer cannot use: a YAML list"):
        load_run(run)


def test_a_truncated_result_file_is_listed_and_the_report_still_written(tmp_path, capsys):
    from tests.report.helpers import make_run_dir
    from tfxfer.report.run_data import load_run

    run = make_run_dir(tmp_path / "run")
    metrics = os.path.join(run, "eval", "metrics.json")
    with open(metrics, "r+b") as f:
        f.truncate(40)
    with open(os.path.join(run, "export", "gate.json"), "w") as f:
        json.dump(["not", "an", "object"], f)
    loaded = load_run(run)
    assert loaded["metrics"] is None and loaded["gate"] is None
    assert [p.split(":")[0] for p in loaded["problems"]] == ["eval/metrics.json", "export/gate.json"]
    assert cli.main(["report", run]) == 0
    capsys.readouterr()
    with open(os.path.join(run, "report", "report.html"), encoding="utf-8") as f:
        page = f.read()
    assert "eval/metrics.json: not readable JSON" in page and "export/gate.json: a JSON list, not an object" in page
    with open(os.path.join(run, "report", "report.md"), encoding="utf-8") as f:
        markdown = f.read()
    assert "> **unreadable:** eval/metrics.json: not readable JSON" in markdown
