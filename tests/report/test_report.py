"""HTML / Markdown report from a run directory: content, escaping, self-containment, partial runs."""

import os
import re

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
