"""Honest results from the command line: a model no better than chance is flagged (a FLAGGED line,
``--json`` field ``chance``, exit code 4) by `tfxfer evaluate` and `tfxfer run`; `evaluate --groups`
audits per group with bootstrap intervals, `evaluate --target` tests for a domain shift, and
``--save`` puts both into a run directory's report."""

import csv
import json

import pytest

from tests.helpers import brightness_folder, brightness_run, save_png
from tfxfer import cli
from tfxfer.cli.common import EXIT_CHANCE, EXIT_CODES_HELP
from tfxfer.errors import ArgumentError
from tfxfer.metrics import chance_check, metrics_chance_check


@pytest.fixture
def good_run(tmp_path):
    return brightness_run(tmp_path / "good", kernel=[8.0, -8.0], bias=[-10.0, 10.0])  # bright if pixel > 106


@pytest.fixture
def one_class_run(tmp_path):
    return brightness_run(tmp_path / "one", kernel=[0.0, 0.0], bias=[5.0, -5.0])  # "bright", whatever the image


@pytest.fixture
def folder(tmp_path):
    return brightness_folder(tmp_path / "data")


@pytest.fixture
def table(tmp_path):
    """path,label,site: site "a" is easy; site "b" has 4 dark-labelled mid-grey images the model calls bright."""
    root = tmp_path / "table"
    rows = []
    for i in range(6):
        for label, value in (("bright", 230 - i), ("dark", 20 + i)):
            save_png(root / f"a_{label}_{i}.png", value)
            rows.append([f"a_{label}_{i}.png", label, "a"])
    for i in range(4):
        save_png(root / f"b_bright_{i}.png", 225 - i)
        save_png(root / f"b_dark_{i}.png", 140 + i)
        rows += [[f"b_bright_{i}.png", "bright", "b"], [f"b_dark_{i}.png", "dark", "b"]]
    with open(root / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "site"], *rows])
    return root / "labels.csv"


def _json(capsys):
    return json.loads(capsys.readouterr().out)


# -- the rule ------------------------------------------------------------------------------------
def test_chance_rule():
    assert "4 the model is no better than chance" in EXIT_CODES_HELP and EXIT_CHANCE == 4
    one = chance_check([[7, 0], [3, 0]], ["ok", "defect"])  # always "ok": 0.7 = the majority-class rate
    assert one["flagged"] and one["chance"] == 0.7 and one["single_class"] == "ok" and len(one["reasons"]) == 2
    unbalanced = chance_check([[7, 1], [2, 0]], ["ok", "defect"])  # 0.7 <= 0.8 although both classes are predicted
    assert unbalanced["flagged"] and unbalanced["single_class"] is None and unbalanced["chance"] == 0.8
    balanced = chance_check([[2, 2, 1], [1, 3, 1], [2, 1, 2]])  # 7/15 right, chance 1/3: better than chance
    assert not balanced["flagged"] and balanced["reasons"] == []
    at_chance = chance_check([[3, 2], [3, 2]])  # 5/10 on a balanced split: exactly chance
    assert at_chance["flagged"] and at_chance["chance"] == 0.5 and at_chance["single_class"] is None
    lone = chance_check([[5, 0], [0, 0]])  # one class present: cannot be judged
    assert not lone["applicable"] and not lone["flagged"]
    assert metrics_chance_check({"entity_f1": 0.3}) is None  # NER metrics: not a classifier's confusion
    with pytest.raises(ArgumentError, match="confusion"):
        chance_check([[1, 2, 3]])
    with pytest.raises(ArgumentError, match="class_names"):
        chance_check([[1, 0], [0, 1]], ["only one"])


# -- tfxfer evaluate -------------------------------------------------------------------------------
def test_evaluate_flags_a_one_class_model(one_class_run, folder, capsys):
    assert cli.main(["evaluate", str(one_class_run), str(folder), "-q"]) == EXIT_CHANCE
    out = capsys.readouterr().out
    assert "accuracy 0.5000" in out and "FLAGGED: no better than chance" in out
    assert "predicts 'bright' for all 12" in out
    assert cli.main(["evaluate", str(one_class_run), str(folder), "--json", "-q"]) == EXIT_CHANCE
    doc = _json(capsys)
    assert doc["exit_code"] == 4 and not doc["ok"] and doc["error"]["type"] == "ChanceLevelModel"
    assert doc["metrics"]["accuracy"] == 0.5 and doc["chance"]["flagged"]
    assert doc["chance"]["single_class"] == "bright"


def test_allow_chance_keeps_the_flag_but_exits_0(one_class_run, folder, capsys):
    assert cli.main(["evaluate", str(one_class_run), str(folder), "-q", "--allow-chance"]) == 0
    assert "FLAGGED: no better than chance" in capsys.readouterr().out  # still said, in words
    assert cli.main(["evaluate", str(one_class_run), str(folder), "--json", "-q", "--allow-chance"]) == 0
    doc = _json(capsys)
    assert doc["ok"] and doc["error"] is None and doc["chance"]["flagged"]


def test_evaluate_does_not_flag_a_good_model(good_run, folder, capsys):
    assert cli.main(["evaluate", str(good_run), str(folder), "-q"]) == 0
    assert "FLAGGED" not in capsys.readouterr().out
    assert cli.main(["evaluate", str(good_run), str(folder), "--json", "-q"]) == 0
    doc = _json(capsys)
    assert doc["ok"] and doc["error"] is None and doc["chance"]["flagged"] is False and doc["chance"]["chance"] == 0.5


# -- tfxfer run ---------------------------------------------------------------------------------------
def _fake_run(monkeypatch, tmp_path, chance):
    import tfxfer.recipes
    from tfxfer.recipes.run import RunResult

    def fake(cfg, **kwargs):
        return RunResult(run_dir=str(tmp_path), manifest=str(tmp_path / "manifest.json"),
                         report_html=str(tmp_path / "r.html"), report_md=None, tflite=None, gate_passed=None, metrics={"accuracy": 0.5}, stages={},
                         wall_s=1.0, chance=chance)

    monkeypatch.setattr(tfxfer.recipes, "run_pipeline", fake)


def test_run_exit_code_and_json(monkeypatch, tmp_path, capsys):
    _fake_run(monkeypatch, tmp_path, chance_check([[6, 0], [6, 0]], ["a", "b"]))
    assert cli.main(["run", "pipelines/quick.yaml", "-q"]) == EXIT_CHANCE
    assert "FLAGGED: no better than chance" in capsys.readouterr().out
    assert cli.main(["run", "pipelines/quick.yaml", "--json", "-q"]) == EXIT_CHANCE
    doc = _json(capsys)
    assert doc["exit_code"] == 4 and doc["chance"]["flagged"] and doc["error"]["type"] == "ChanceLevelModel"
    assert cli.main(["run", "pipelines/quick.yaml", "--json", "-q", "--allow-chance"]) == 0
    assert _json(capsys)["chance"]["flagged"]
    _fake_run(monkeypatch, tmp_path, chance_check([[6, 0], [1, 5]], ["a", "b"]))
    assert cli.main(["run", "pipelines/quick.yaml", "--json", "-q"]) == 0
    doc = _json(capsys)
    assert doc["ok"] and doc["chance"]["flagged"] is False


def test_run_result_reads_the_evaluation(tmp_path):
    from tfxfer.recipes.context import RunContext
    from tfxfer.recipes.config_loader import load_config
    from tfxfer.recipes.run import _chance

    ctx = RunContext(load_config(text="data: {source: x}"), str(tmp_path))
    assert _chance(ctx) is None  # no evaluation yet
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "metrics.json").write_text(json.dumps(
        {"accuracy": 0.5, "confusion": [[4, 0], [4, 0]], "per_class": [{"name": "cat"}, {"name": "dog"}]}))
    assert _chance(ctx)["single_class"] == "cat"


# -- --groups, --target, --save -------------------------------------------------------------------
def test_groups_from_an_image_table(good_run, table, capsys):
    assert cli.main(["evaluate", str(good_run), str(table), "--groups", "site", "--bootstrap", "200", "-q"]) == 0
    out = capsys.readouterr().out
    assert "Bias audit by site (2 groups" in out and "worst-group gap, accuracy: 0.500" in out and "(worst b" in out
    assert cli.main(["evaluate", str(good_run), str(table), "--groups", "site", "--bootstrap", "200", "--json",
                     "-q", "--save"]) == 0
    doc = _json(capsys)
    rows = {r["group"]: r for r in doc["groups"]["rows"]}
    assert (rows["a"]["n"], rows["b"]["n"], rows["overall"]["n"]) == (12, 8, 20)
    assert rows["a"]["accuracy"] == 1.0 and rows["b"]["accuracy"] == 0.5 and rows["overall"]["accuracy"] == 0.8
    assert rows["b"]["accuracy_low"] < 0.5 < rows["b"]["accuracy_high"]
    assert doc["groups"]["gaps"]["accuracy"]["worst_group"] == "b" and doc["groups"]["n_bootstrap"] == 200
    saved = json.loads((good_run / "eval" / "groups.json").read_text())
    assert saved["rows"] == doc["groups"]["rows"]
    page = (good_run / "report" / "report.html").read_text()
    assert 'id="bias-audit"' in page and "worst group b" in page


def test_groups_need_a_column(good_run, folder, table, capsys):
    assert cli.main(["evaluate", str(good_run), str(folder), "--groups", "site"]) == 2
    assert "a folder of class sub-folders has no group column" in capsys.readouterr().err
    assert cli.main(["evaluate", str(good_run), str(table), "--groups", "region"]) == 2
    assert "columns: path, label, site" in capsys.readouterr().err
    assert cli.main(["evaluate", str(good_run / "model" / "model.keras"), str(table), "--groups", "site",
                     "--save"]) == 2
    assert "needs a run directory" in capsys.readouterr().err
    assert cli.main(["evaluate", str(good_run), str(table), "--bootstrap", "-1"]) == 2
    assert "--bootstrap" in capsys.readouterr().err
    for flag in ("--bootstrap", "--permutations"):  # the library's bound, refused before any work
        assert cli.main(["evaluate", str(good_run), str(table), flag, "100001"]) == 2
        assert flag in capsys.readouterr().err


def test_cli_resample_bounds_are_the_librarys():
    from tfxfer.adapt.two_sample import MAX_PERMUTATIONS
    from tfxfer.cli import predict
    from tfxfer.fairness.group_metrics import MAX_BOOTSTRAP

    assert (predict.MAX_BOOTSTRAP, predict.MAX_PERMUTATIONS) == (MAX_BOOTSTRAP, MAX_PERMUTATIONS)


def test_text_table_groups_follow_the_kept_rows(tmp_path):
    from tfxfer.recipes.audit_data import MISSING_GROUP, text_table_groups
    from tfxfer.data import load_texts

    path = tmp_path / "reviews.csv"
    path.write_text('text,label,domain\ngood film,pos,movies\n"",neg,tweets\nbad plot,neg,\n'
                    '"so\nlong",pos,amazon\nawful,neg,tweets\n', encoding="utf-8")
    data = load_texts(str(path), on_leakage="ignore")  # the empty text on line 3 is skipped
    assert list(data.train.x) == ["good film", "bad plot", "so\nlong", "awful"]
    groups = text_table_groups(str(path), "domain", summary=data.summary, count=len(data.train.y))
    assert list(groups) == ["movies", MISSING_GROUP, "amazon", "tweets"]


def test_target_shift(good_run, folder, tmp_path, capsys):
    for i in range(10):
        save_png(tmp_path / "deploy" / f"{i}.png", 100 + 5 * i)  # mid-grey: far from both training modes
    argv = ["evaluate", str(good_run), str(folder), "--target", str(tmp_path / "deploy"), "--permutations", "200"]
    assert cli.main([*argv, "-q"]) == 0
    out = capsys.readouterr().out
    assert "Domain shift (evaluation data vs --target):" in out and "permutation p-value" in out
    assert cli.main([*argv, "--json", "-q", "--save"]) == 0
    shift = _json(capsys)["shift"]
    assert shift["n_source"] == 12 and shift["n_target"] == 10
    assert {t["name"] for t in shift["tests"]} == {"classifier", "mmd"}
    assert 0.0 < shift["p_value"] <= 1.0 and shift["verdict"].startswith(("Shift detected", "No shift detected"))
    assert json.loads((good_run / "eval" / "shift.json").read_text())["verdict"] == shift["verdict"]
    assert 'id="shift"' in (good_run / "report" / "report.html").read_text()


@pytest.fixture
def elpv_read_once(monkeypatch):
    """The real ELPV files, read from their package once: each `evaluate --groups` below loads the set
    twice (its images, then its groups' extras), and each load reads all 2,624 300x300 PNGs (~4 s);
    every load still gets its own copy of what the package reader returned."""
    import copy

    from tfxfer.data import registry

    read = registry._READERS["elpv"]
    first = read()
    monkeypatch.setitem(registry._READERS, "elpv", lambda: copy.deepcopy(first))


@pytest.mark.slow
def test_packaged_groups_and_domain_pairs(tmp_path, capsys, elpv_read_once):
    """ELPV by cell type (its module_type extra, alias cell_type) and a domain pair grouped by domain."""
    import keras

    inputs = keras.Input((32, 32, 1), name="image")
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255.0)(inputs))
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant([[8.0, -8.0]]),
                                 bias_initializer=keras.initializers.Constant([-3.0, 3.0]))(x)
    run = tmp_path / "elpv"
    (run / "model").mkdir(parents=True)
    keras.Model(inputs, outputs).save(run / "model" / "model.keras")
    (run / "model" / "labels.json").write_text(json.dumps({"class_names": ["functional", "defective"]}))
    for column in ("module_type", "cell_type"):
        assert cli.main(["evaluate", str(run), "elpv", "--limit", "60", "--groups", column, "--bootstrap", "50",
                         "--json", "-q", "--allow-chance"]) == 0
        groups = _json(capsys)["groups"]
        assert groups["groups"] == ["mono", "poly"] and groups["split"] == "test"
        assert sum(groups["sizes"].values()) == 60
    assert cli.main(["evaluate", str(run), "elpv_mono_to_poly", "--limit", "40", "--bootstrap", "50", "--json", "-q",
                     "--allow-chance"]) == 0
    groups = _json(capsys)["groups"]
    assert groups["column"] == "domain" and groups["sizes"] == {"mono": 20, "poly": 20}
    assert cli.main(["evaluate", str(run), "elpv", "--groups", "site"]) == 2
    assert "(it has: defect_probability, module_type)" in capsys.readouterr().err
