"""`tfxfer predict` and `tfxfer export` on a saved tiny NER model: predict recognises an NER model by its
per-token outputs (with or without labels.json), reads .txt inputs as evaluate reads text files (a
non-UTF-8 file is one line, exit 1), and export gates on the CoNLL file's real tags (its accuracy is
tag accuracy per word)."""

import json

import pytest

from tests.export.test_text_gate_tags import CONLL, TAGS, always_b_loc
from tfxfer import cli


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ner_cli")
    model = always_b_loc()
    for name, labels in (("with_labels", {"class_names": TAGS, "task": "token_classification"}),
                         ("names_only", {"class_names": TAGS}), ("bare", None)):
        (folder / name).mkdir()
        model.save(folder / name / "model.keras")
        if labels is not None:
            (folder / name / "labels.json").write_text(json.dumps(labels))
    (folder / "tags.conll").write_text(CONLL)
    (folder / "bad.txt").write_bytes(b"zoe visits\n\xff\xfe bad\n")
    (folder / "good.txt").write_text("zoe visits paris\n\nparis is nice\r\n")
    return folder


def _one_error(capsys, argv):
    code = cli.main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfxfer: error: "), lines
    return code, lines[0]


def test_predict_ner_whose_labels_json_names_no_task(saved, capsys):
    """labels.json without "task" (or none at all): the per-token outputs still mark an NER model."""
    assert cli.main(["predict", str(saved / "names_only" / "model.keras"), "zoe visits paris", "-q"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["zoe visits paris: zoe [LOC] 0.97; visits [LOC] 0.97; paris [LOC] 0.97"]


def test_predict_ner_without_labels_json_is_one_line_error(saved, capsys):
    code, line = _one_error(capsys, ["predict", str(saved / "bare" / "model.keras"), "zoe visits paris"])
    assert code == 2
    assert ("`model` is an NER model (per-token outputs) whose class names ['0', '1', '2', '3', '4'] are not "
            "tags") in line
    assert "labels.json" in line and "bare/model.keras" in line


def test_predict_reads_txt_files_as_evaluate_does(saved, capsys):
    model = str(saved / "with_labels" / "model.keras")
    assert cli.main(["predict", model, str(saved / "good.txt"), "-q"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in out] == ["zoe visits paris", "paris is nice"]
    code, line = _one_error(capsys, ["predict", model, str(saved / "bad.txt")])
    assert code == 1
    assert "bad.txt is not valid utf-8 at byte 11" in line


def test_export_ner_gates_on_the_file_tags(saved, tmp_path, capsys):
    out = tmp_path / "export"
    assert cli.main(["export", str(saved / "with_labels" / "model.keras"), str(saved / "tags.conll"), "--out",
                     str(out), "--variants", "float32", "--no-benchmark", "-q"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[1].split()
    assert row[0] == "float32" and row[4] == "0.3333"  # accuracy: 2 of 6 words are B-LOC, as the model says
    sidecar = json.loads(next(out.glob("*_float32.json")).read_text())
    gate = sidecar["gate"]
    assert gate["examples"] == 6 and gate["keras_accuracy"] == pytest.approx(2 / 6)
    assert gate["tflite_accuracy"] == pytest.approx(2 / 6)
    report = json.loads(next(out.glob("*_export_report.json")).read_text())
    assert report["rows"][0]["accuracy_keras"] == pytest.approx(2 / 6)
