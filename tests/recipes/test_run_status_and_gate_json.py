"""A run writes a "running" manifest before any stage (so a hard kill never leaves an earlier "ok"),
`tfxfer report` says a run did not finish, and a gate failure's --json keeps the run's fields."""

import json
import os

import pytest

from tfxfer.cli import main
from tests.recipes.helpers import recipe, tiny_overrides


# No unfreezing epoch: the tests here read the run's status, report and gate, not its training.
BASE = ["train.epochs=0"]


def _argv(folder, out, *extra):
    return ["run", recipe("quick"), "--out", str(out), "-q", "--allow-chance",
            *[a for s in tiny_overrides(folder, extra=[*BASE, *extra]) for a in ("--set", s)]]


@pytest.fixture(scope="module")
def finished_run(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("status") / "run"
    assert main(_argv(image_folder, out)) == 0
    return out


def test_rerun_marks_manifest_running_before_any_stage(finished_run, image_folder, tmp_path, monkeypatch):
    import shutil

    import tfxfer.recipes.run as run_module

    run = tmp_path / "rerun"
    shutil.copytree(finished_run, run)
    with open(os.path.join(run, "manifest.json"), encoding="utf-8") as f:
        assert json.load(f)["status"] == "ok"
    seen = []

    class Killed(BaseException):  # stands in for kill -9: what is on disk when the first stage starts
        pass

    def execute(self, stage):
        with open(os.path.join(run, "manifest.json"), encoding="utf-8") as f:
            seen.append(json.load(f))
        raise Killed

    monkeypatch.setattr(run_module.Runner, "execute", execute)
    with pytest.raises(Killed):
        main(_argv(image_folder, run, "train.head_epochs=2"))
    assert seen[0]["status"] == "running" and seen[0]["gate"] is None
    with open(os.path.join(run, "manifest.json"), encoding="utf-8") as f:
        assert json.load(f)["status"] == "failed"


def test_report_of_an_unfinished_run_says_so_first(finished_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(finished_run, run)
    path = run / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(dict(manifest, status="running")), encoding="utf-8")
    assert main(["report", str(run), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["finished"] is False and "did not finish" in doc["warning"]
    assert "did not finish" in err
    head = "\n".join(open(doc["markdown"], encoding="utf-8").read().splitlines()[:4])
    assert "did not finish (status: running" in head
    html = open(doc["html"], encoding="utf-8").read()
    assert html.index("did not finish") < html.index("<nav>")


def test_report_of_a_finished_run_has_no_warning(finished_run, capsys):
    assert main(["report", str(finished_run), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["finished"] is True and doc["warning"] is None
    assert "did not finish" not in open(doc["markdown"], encoding="utf-8").read()


def test_gate_failure_json_keeps_the_run_fields(finished_run, image_folder, tmp_path, capsys):
    import shutil

    run = tmp_path / "gate"
    shutil.copytree(finished_run, run)
    code = main(_argv(image_folder, run, "export.thresholds.int8.max_abs_error=0") + ["--json"])
    out, err = capsys.readouterr()
    assert code == 3
    doc = json.loads(out)
    assert doc["ok"] is False and doc["exit_code"] == 3 and doc["error"]["type"] == "GateError"
    assert doc["gate_passed"] is False
    for key in ("run_dir", "manifest", "report_html", "metrics", "stages"):
        assert doc[key], key
    assert "tflite" in doc
    assert "verification gate failed" in err
