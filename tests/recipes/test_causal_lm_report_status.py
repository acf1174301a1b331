"""The causal-LM report says first that its run did not finish (manifest status running, failed,
interrupted), as the image and text reports do (`tfxfer.report.run_data.unfinished_sentence`)."""

import json

import pytest

from tfxfer.cli import main
from tfxfer.recipes.causal_lm_report import write_lm_report


def _lm_run(folder, **manifest):
    folder.mkdir()
    config = {"name": "lm", "task": "causal_lm", "causal_lm": {"model": "tiny_gpt2"}, "data": {"source": "corpus"}}
    (folder / "manifest.json").write_text(json.dumps({"tfxfer_manifest": 1, "task": "causal_lm", "config": config,
                                                      **manifest}))
    return folder


@pytest.mark.parametrize("status, error, why", [
    ("running", None, "did not finish (status: running; it was stopped before its end"),
    ("failed", "ValueError: bad corpus", "did not finish (status: failed; a stage failed: ValueError: bad corpus)"),
])
def test_unfinished_run_is_said_first(tmp_path, capsys, status, error, why):
    run = _lm_run(tmp_path / "run", status=status, error=error)
    assert main(["report", str(run), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["finished"] is False
    markdown = open(doc["markdown"], encoding="utf-8").read().splitlines()
    assert markdown[0].startswith("# lm") and why in markdown[2]
    html = open(doc["html"], encoding="utf-8").read()
    assert why in html and html.index(why) < html.index("<h2") and html.index("</h1>") < html.index(why)


def test_finished_run_has_no_warning(tmp_path):
    paths = write_lm_report(_lm_run(tmp_path / "run", status="ok"))
    for key in ("html", "markdown"):
        assert "did not finish" not in open(paths[key], encoding="utf-8").read()
