"""Huge integers are usage errors, and an unexpected exception still gives one line and a JSON document."""

import json

import pytest

from tfxfer.cli import main
from tests.recipes.helpers import recipe

HUGE = "99999999999999999999"


@pytest.mark.parametrize("key", ["train.batch_size", "report.reliability_bins", "train.epochs", "export.bench_runs",
                                 "export.threads=[" + HUGE + "]"])
def test_huge_recipe_integers_are_recipe_errors(key, capsys):
    setting = key if "=" in key else f"{key}={HUGE}"
    code = main(["run", recipe("quick"), "--set", setting, "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    doc = json.loads(out)
    assert doc["error"]["type"] == "ConfigError" and HUGE in doc["error"]["message"]
    assert "<=" in doc["error"]["message"]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--runs", "--threads"])
def test_benchmark_counts_have_an_upper_bound(flag, tmp_path, capsys):
    code = main(["benchmark", str(tmp_path / "m.keras"), str(tmp_path), flag, HUGE, "--json"])
    out, err = capsys.readouterr()
    assert code == 2
    assert json.loads(out)["error"]["message"].startswith(f"`{flag}` must be <=")
    assert "Traceback" not in err


def _boom(*args, **kwargs):
    raise ValueError("Cannot convert 99999999999999999999 to EagerTensor of dtype int64\nsecond line")


@pytest.mark.parametrize("json_flag", [True, False])
def test_unexpected_exception_is_one_line_and_a_json_document(json_flag, monkeypatch, capsys):
    import tfxfer.recipes

    monkeypatch.setattr(tfxfer.recipes, "load_config", _boom)
    code = main(["run", recipe("quick")] + (["--json"] if json_flag else []))
    out, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines() == [err.strip().splitlines()[0]]
    assert "internal error: ValueError: Cannot convert" in err
    if json_flag:
        doc = json.loads(out)
        assert doc["ok"] is False and doc["exit_code"] == 1 and "ValueError" in doc["error"]["message"]


def test_unexpected_exception_shows_the_traceback_with_verbose(monkeypatch, capsys):
    import tfxfer.recipes

    monkeypatch.setattr(tfxfer.recipes, "load_config", _boom)
    code = main(["run", recipe("quick"), "-v"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" in err and "internal error: ValueError" in err
