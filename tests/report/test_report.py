"""HTML / Markdown report from a run directory: content, escaping, self-containment, partial runs."""

import os
import re

import pytest
from PIL import Image

from tests.report.helpers import make_run_dir
from tfxfer.report import write_report
from tfxfer.report.elements import fmt


def test_full_report(tmp_path):
    run = make_run_dir(tmp_path / "run")
    paths = write_report(run)
    assert paths.html == os.path.join(run, "report", "report.html")
    html = open(paths.html, encoding="utf-8").read()
    # every section and the export table with both variants and verdicts
    for anchor in ("data", "training", "evaluation", "mistakes", "export", "reproduce"):
        assert f'id="{anchor}"' in html
    table = re.search(r'<table id="export-table">(.*?)</table>', html, re.S).group(1)
    assert table.count("<tr>") == 3 and "float32" in table and "int8" in table
    assert "13,194.7" in table and ">pass<" in table
    # self-contained: figures inline, nothing fetched from elsewhere
    assert html.count("data:image/png;base64,") == 6
    assert not re.search(r'(src|href)="(?!data:|#)', html) and "<link" not in html
    # escaped user strings
    assert "a note &lt;b&gt;escaped&lt;/b&gt;" in html and "<b>escaped</b>" not in html
    assert "bear/broken.jpg" in html and "empty_file" in html and "abababababab" in html  # skipped file, leakage
    # stages in pipeline order, with reuse shown
    assert html.index(">data<") < html.index(">finetune<") < html.index(">verify<")
    assert "1 stage(s) reused" in html
    for name, png in paths.figures.items():
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] > 200, name
    assert set(paths.figures) == {"class_counts", "training_curves", "confusion", "reliability", "misclassified",
                                  "export"}
    md = open(paths.markdown, encoding="utf-8").read()
    assert md.startswith("# tfxfer run: synthetic")
    assert "| int8 | 3902 | 1.3 | 0.75 | 0.66 | 9 | pass |" in md
    assert "![confusion](confusion.png)" in md


def test_failed_gate_and_text_mistakes(tmp_path):
    run = make_run_dir(tmp_path / "run", gate="FAIL", text_mistakes=True)
    html = open(write_report(run).html, encoding="utf-8").read()
    assert "accuracy drop 9.0 &gt; 1.0 points" in html and "No variant passed the gate" in html
    assert '<span class="fail">FAIL</span>' in html and "gate_failed" in html
    assert "&lt;script&gt;alert(0)&lt;/script&gt;" in html and "<script>" not in html


def test_report_of_an_empty_run_dir(tmp_path):
    paths = write_report(tmp_path)
    html = open(paths.html, encoding="utf-8").read()
    assert "No data summary" in html and 'id="export-table"' in html and paths.figures == {}


def test_number_format():
    assert fmt(13194.7) == "13,194.7" and fmt(0.0001234) == "1.23e-04" and fmt(0.75) == "0.75"
    assert fmt(None) == "-" and fmt(True) == "yes" and fmt(123456) == "123,456" and fmt("<x>") == "&lt;x&gt;"


def _edit(run, rel, change):
    import json

    path = os.path.join(run, rel)
    value = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(change(value), f)


@pytest.mark.parametrize("rel, change, problem", [
    ("eval/metrics.json", lambda m: {**m, "per_class": "y"}, "`per_class` must be a list, not a string"),
    ("eval/metrics.json", lambda m: {**m, "accuracy": None, "confusion": [[1, 2]]}, "`confusion` must be 3 x 3"),
    ("export/table.json", lambda t: {**t, "rows": "abc"}, "`rows` must be a list, not a string"),
    ("export/table.json", lambda t: {**t, "rows": [{k: v for k, v in r.items() if k != "gate"} for r in t["rows"]]},
     "`rows[0]` has no `gate`"),
    ("data/summary.json", lambda d: {**d, "skipped": 7}, "`skipped` must be a list, not a number"),
    ("data/summary.json", lambda d: {**d, "class_counts": {"train": {"bear": "many"}}},
     "`class_counts.train.bear` must be a number, not a string"),
    ("model/history.json", lambda h: {**h, "stages": [{"label": "x"}]}, "`stages[0]` has no `epoch`"),
    ("eval/misclassified.json", lambda m: {**m, "shown": [{"true": "a", "predicted": "b", "thumbnail": "0"}]},
     "`shown[0].thumbnail` must be an integer, not a string"),
    ("export/gate.json", lambda _: {"results": {"int8": {"examples": 9, "tflite_accuracy": 0.8, "keras_accuracy": 0.9,
                                                          "accuracy_drop": 10, "top1_agreement": 0.9,
                                                          "drop_interval": [1]}}},
     "`results.int8.drop_interval` must hold two numbers"),
])
def test_a_result_file_with_a_wrong_typed_field_is_listed_not_fatal(tmp_path, rel, change, problem):
    run = make_run_dir(tmp_path / "run")
    _edit(run, rel, change)
    paths = write_report(run)  # no crash: the file is read as missing
    html, md = (open(p, encoding="utf-8").read() for p in (paths.html, paths.markdown))
    line = f"{rel}: {problem}"
    assert line in html.replace("&#x27;", "'") and line in md.replace("\\", ""), line


def test_a_wrong_typed_manifest_or_config_names_the_file(tmp_path):
    from tfxfer.errors import ArgumentError

    run = make_run_dir(tmp_path / "run")
    _edit(run, "manifest.json", lambda m: {**m, "stages": [1]})
    with pytest.raises(ArgumentError, match=r"holds a manifest\.json that tfxfer cannot use: `stages` must be an "
                                            r"object, not a list"):
        write_report(run)
    run = make_run_dir(tmp_path / "run2")
    with open(os.path.join(run, "config.yaml"), "w") as f:
        f.write("name: x\nmodel: 5\n")
    with pytest.raises(ArgumentError, match=r"holds a config\.yaml that tfxfer cannot use: `model` must be an object"):
        write_report(run)


def test_thumbnails_the_mistakes_cannot_index_are_left_out(tmp_path):
    run = make_run_dir(tmp_path / "run")
    _edit(run, "eval/misclassified.json", lambda m: {**m, "shown": [{**s, "thumbnail": 7} for s in m["shown"]]})
    paths = write_report(run)
    assert "misclassified" not in paths.figures
    md = open(paths.markdown, encoding="utf-8").read()
    assert "eval/misclassified.npz: holds 3 thumbnail(s), but eval/misclassified.json shows number 7" in md
