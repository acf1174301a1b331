"""The report's first lines (a chance-level warning; what each training stage bought) and its
optional sections: "Bias audit" (groups.json), "Domain shift / adaptation" (shift.json,
adaptation.json), built from real `GroupReport` / `ShiftResult` objects, and malformed records."""

import json
import os

import numpy as np
import pytest

from tests.report.helpers import make_run_dir
from tfxfer.report import write_report
from tfxfer.report.run_data import check_record, groups_record, load_run, shift_record
from tfxfer.report.sections import selection_sentence


def _write(run_dir, rel, obj):
    path = os.path.join(run_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj))


def _report(run_dir):
    paths = write_report(run_dir)
    return open(paths.html, encoding="utf-8").read(), open(paths.markdown, encoding="utf-8").read()


def _set_history(run_dir, selection):
    path = os.path.join(run_dir, "model", "history.json")
    hist = json.load(open(path))
    hist["selection"] = selection
    _write(run_dir, "model/history.json", hist)


def test_chance_warning_comes_first(tmp_path):
    run = str(tmp_path / "run")
    make_run_dir(run)
    html, md = _report(run)
    assert 'id="chance-warning"' not in html and "no better than chance" not in md  # 0.75 > 5/12
    metrics = json.load(open(os.path.join(run, "eval", "metrics.json")))
    metrics.update(accuracy=0.4167, confusion=[[5, 0, 0], [4, 0, 0], [3, 0, 0]])  # "bear" for everything
    _write(run, "eval/metrics.json", metrics)
    html, md = _report(run)
    warning = html.index('id="chance-warning"')
    assert warning < html.index('id="delivered"') and warning < html.index('class="cards"')
    assert "predicts &#x27;bear&#x27; for all 12 examples" in html
    first = md.splitlines()[2]
    assert first.startswith("> **Warning: this model is no better than chance on its test split") and "code 4" in first


@pytest.mark.parametrize("selection, expected", [
    ({"monitor": "val_accuracy", "head": 0.829, "fine_tuned": 0.832, "kept": "fine_tuned"},
     "validation val_accuracy 0.8290 after the head-only stage, 0.8320 after fine-tuning (+0.0030; higher is "
     "better): fine-tuning helped; kept the fine-tuned model."),
    ({"monitor": "val_loss", "head": 0.41, "fine_tuned": 0.45, "kept": "head"},
     "validation val_loss 0.4100 after the head-only stage, 0.4500 after fine-tuning (+0.0400; lower is better): "
     "fine-tuning did not beat the head-only model: kept the head-only model."),
    ({"monitor": "val_loss", "head": 0.41, "fine_tuned": None, "kept": "head"},
     "head-only model, validation val_loss 0.4100 (lower is better); no fine-tuning stage ran."),
    (None, "not recorded (model/history.json has no `selection`"),
])
def test_what_each_stage_bought_is_the_first_line(tmp_path, selection, expected):
    run = str(tmp_path / "run")
    make_run_dir(run)
    _set_history(run, selection)
    html, md = _report(run)
    first = md.splitlines()[2]
    assert first.startswith("**What training bought: ") and expected in first, first
    assert html.index('id="stage-selection"') < html.index('class="sub"')
    assert expected.replace("`", "") in selection_sentence(load_run(run)).replace("`", "")


def _real_records():
    from tfxfer.adapt import detect_shift
    from tfxfer.fairness import group_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120)
    groups = np.where(np.arange(120) < 60, "mono", "poly")
    flip = rng.random(120) < np.where(groups == "mono", 0.05, 0.4)
    audit = group_metrics(labels, np.where(flip, 1 - labels, labels), groups, n_bootstrap=100,
                          class_names=["functional", "defective"])
    shift = detect_shift(None, rng.normal(size=(60, 4)), rng.normal(loc=1.0, size=(60, 4)), permutations=200)
    return (groups_record(audit, column="module_type", data="elpv", split="test"),
            json.loads(json.dumps(shift_record(shift, source="elpv", target="photos/", split="test"))))


def test_bias_audit_and_shift_sections(tmp_path):
    run = str(tmp_path / "run")
    make_run_dir(run)
    groups, shift = _real_records()
    assert check_record("groups", groups) is None and check_record("shift", shift) is None
    _write(run, "eval/groups.json", groups)
    _write(run, "eval/shift.json", shift)
    _write(run, "adapt/adaptation.json", {"method": "coral", "target": "poly cells",
                                          "source_only": {"accuracy": 0.70, "macro_f1": 0.65},
                                          "adapted": {"accuracy": 0.76, "macro_f1": 0.70},
                                          "oracle": {"accuracy": 0.85, "macro_f1": 0.84}, "shift": shift})
    html, md = _report(run)
    worst = groups["gaps"]["accuracy"]
    assert worst["worst_group"] == "poly"
    assert 'id="bias-audit"' in html and 'href="#bias-audit"' in html and "module_type" in html
    assert f"accuracy: gap {worst['value']:.3f}" in html and "worst group poly" in html
    poly = next(r for r in groups["rows"] if r["group"] == "poly")
    interval = f"{poly['accuracy']:.3f} \\[{poly['accuracy_low']:.3f}, {poly['accuracy_high']:.3f}\\]"
    assert interval in md  # a table cell: its [ ] escaped
    assert 'id="shift"' in html and "Shift detected" in html and "domain-classifier AUC" in html
    assert "## Domain shift / adaptation" in md and "| verdict | shift detected |" in md
    assert "The adaptation closed 40% of the accuracy gap" in md and 'id="adaptation-table"' in html


def test_a_stopped_adaptation_says_so_with_its_notes(tmp_path):
    """A collapsed (or no-op) adaptation was rendered like a method that ran: adaptation.json had no notes."""
    run = str(tmp_path / "run")
    make_run_dir(run)
    note = "stopped: self_train: pseudo-labels collapsed in round 1 | 100% class 0 (the last good weights are kept)"
    record = {"method": "self_train", "target": "tweets", "source_only": {"accuracy": 0.7},
              "adapted": {"accuracy": 0.7}, "oracle": None, "shift": None, "notes": [note], "stopped": True}
    assert check_record("adaptation", record) is None
    _write(run, "adapt/adaptation.json", record)
    html, md = _report(run)
    assert '<p class="fail">The self_train adaptation stopped short' in html and "pseudo-labels collapsed" in html
    assert "> **The self_train adaptation stopped short" in md and f"Note: {note}" in md
    _write(run, "adapt/adaptation.json", dict(record, notes=["AdaBN: 3 BatchNorm layers"], stopped=False))
    html, md = _report(run)
    assert "stopped short" not in html and "stopped short" not in md and "Note: AdaBN: 3 BatchNorm layers" in md
    older = {k: v for k, v in record.items() if k not in ("notes", "stopped")}  # records written before both
    _write(run, "adapt/adaptation.json", older)
    html, md = _report(run)
    assert "stopped short" not in md and 'id="adaptation-table"' in html


def test_reports_without_or_with_broken_records(tmp_path):
    run = str(tmp_path / "run")
    make_run_dir(run)
    html, md = _report(run)
    assert 'id="bias-audit"' not in html and 'id="shift"' not in html and "Bias audit" not in md
    _write(run, "groups.json", "{not json")  # the top-level fallback location
    _write(run, "adapt/adaptation.json", {"method": "dann", "source_only": {"accuracy": "high"}, "adapted": {}})
    hurt = {"method": "adabn", "target": "t", "source_only": {"accuracy": 0.8}, "adapted": {"accuracy": 0.7},
            "oracle": None, "shift": None}
    assert check_record("adaptation", hurt) is None
    html, md = _report(run)
    problems = load_run(run)["problems"]
    assert problems[0].startswith("groups.json: not readable JSON")
    assert problems[1] == "adapt/adaptation.json: `source_only` must map metric names to numbers"
    assert 'id="bias-audit"' in html and "not readable JSON" in html and "Could not use adapt/adaptation.json" in md
    _write(run, "adapt/adaptation.json", hurt)
    html, md = _report(run)
    assert "The adaptation hurt accuracy on the target." in md and "No target oracle" in html
