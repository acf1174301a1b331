"""The report leads with the file that ships: its accuracy, agreement, interval, per-class recall and
precision beside Keras's, and its confusion matrix (issue 14, item 4)."""

from tfxfer.report.html import render_html
from tfxfer.report.markdown import render_markdown

_RESULT = {"examples": 10, "tflite_accuracy": 0.8, "keras_accuracy": 0.9, "accuracy_drop": 10.0,
           "top1_agreement": 0.9, "drop_interval": (2.0, 20.0), "drop_verdict": "undecided",
           "per_class": [{"name": "ok", "support": 5, "tflite_accuracy": 0.8, "keras_accuracy": 1.0,
                          "tflite_precision": 0.8, "keras_precision": 0.8333},
                         {"name": "defect", "support": 5, "tflite_accuracy": 0.8, "keras_accuracy": 0.8,
                          "tflite_precision": 0.8, "keras_precision": 1.0}],
           "confusion": [[4, 1], [1, 4]]}


def _run(deliver="runs/x/export/x_int8.tflite"):
    return {"config": {"name": "x"}, "metrics": {"accuracy": 0.9, "split": "test"},
            "export": {"rows": [], "deliver": deliver, "deliver_variant": "int8"},
            "gate": {"results": {"int8": _RESULT}}}


def test_markdown_and_html_lead_with_the_delivered_file():
    md = render_markdown(_run(), figures={})
    assert md.index("## The delivered file") < md.index("## Evaluation (Keras model)") < md.index("## Export")
    assert "accuracy 0.8 (Keras 0.9; drop 10 points, 95 % interval +2.00 to +20.00: undecided)" in md
    assert "| defect | 5 | 0.8 | 0.8 | 0.8 | 1 |" in md and "| ok | 4 | 1 |" in md
    page = render_html(_run(), figures={})
    assert page.index('id="delivered"') < page.index('id="export"') < page.index('id="evaluation"')
    assert "int8 file accuracy" in page and "agreement 0.900" in page
    assert "Confusion matrix of the file" in page


def test_nothing_delivered_says_so():
    md = render_markdown(_run(deliver=None), figures={})
    assert "No file was delivered (none passed its gate)." in md
    assert "No file was delivered" in render_html(_run(deliver=None), figures={})


def test_superseded_files_and_the_delivery_reason_are_named():
    run = _run(deliver="runs/x/export/x_int8_selective.tflite")
    run["export"].update({"deliver_variant": "int8_selective", "superseded": ["int8", "int8_qat"],
                          "deliver_reason": "int8_qat agrees 0.971 < 0.98 with the Keras model: int8_selective ships"})
    run["gate"]["results"]["int8_selective"] = _RESULT
    page = render_html(run, figures={})
    assert page.count("is superseded: the integer file int8_selective passed and is delivered instead") == 2
    assert "Why this file ships: int8_qat agrees 0.971 &lt; 0.98 with the Keras model: int8_selective ships" in page
    assert "quantization-aware int8_qat file replaces it" not in page


def test_markdown_escapes_class_names_in_cells_and_headers():
    import re

    names = ["a|b", "<img src=x onerror=alert(1)>", "__c__\nd"]
    result = dict(_RESULT, per_class=[{"name": n, "support": 1} for n in names],
                  confusion=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    run = dict(_run(), config={"name": "<b>x</b>", "data": {"source": "s & <t>"}}, gate={"results": {"int8": result}})
    md = render_markdown(run, figures={})
    assert "<img" not in md and "<b>" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md
    assert md.startswith("# tfxfer run: &lt;b&gt;x&lt;/b&gt;\n") and "data: s &amp; &lt;t&gt;" in md
    lines = md.splitlines()
    top = lines.index(next(line for line in lines if line.startswith("| true \\ file |")))
    separators = [len(re.findall(r"(?<!\\)\|", line)) for line in lines[top:top + 5]]
    assert separators == [5] * 5, lines[top:top + 5]  # the header (a|b) has no extra column
    assert "| a\\|b | 1 | 0 | 0 |" in md and "| \\_\\_c\\_\\_ d | 0 | 0 | 1 |" in md
