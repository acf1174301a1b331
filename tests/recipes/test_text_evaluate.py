"""`tfxfer evaluate` on text classifiers (CSV / JSONL tables) and NER models (CoNLL files), with
models from the tiny text_classification and ner recipes (a 1-layer random local keras-hub preset;
the session's `text_runs`)."""

import csv
import json
import os
import shutil

import numpy as np
import pytest

from tfxfer import cli
from tfxfer.errors import ArgumentError, DataError


@pytest.fixture(scope="module")
def runs(text_runs):
    """The session's tiny text_classification and ner runs (tests/recipes/conftest.py; shared read-only with
    test_text_end_to_end.py), keyed as the tests here read them."""
    return {"reviews": text_runs.reviews, "tags": text_runs.tags, "text_classification": text_runs.clf,
            "ner": text_runs.ner}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _ok(capsys, argv):
    extra = ["--allow-chance"] if argv[0] == "evaluate" else []  # tiny models may be at chance (exit 4 otherwise)
    assert cli.main([*argv, *extra]) == 0
    return capsys.readouterr().out.strip().splitlines()


def _one_error(capsys, argv):
    assert cli.main(argv) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfxfer: error: "), lines
    return lines[0]


def test_classifier_on_csv_prints_headline_and_per_class_table(runs, capsys):
    lines = _ok(capsys, ["evaluate", runs["text_classification"].run_dir, runs["reviews"], "-q"])
    n = len(_rows(runs["reviews"]))
    assert lines[0].startswith(f"model.keras on {runs['reviews']} ({n} texts): accuracy ")
    assert "macro F1 " in lines[0] and "ECE " in lines[0]
    assert lines[1].split() == ["class", "precision", "recall", "F1", "support"]
    table = {row.split()[0]: int(row.split()[-1]) for row in lines[2:]}
    assert table == {"neg": n // 2, "pos": n // 2}


def test_classifier_on_jsonl_json_accuracy_matches_predictions(runs, capsys, tmp_path):
    from tfxfer.recipes.inference import open_model
    from tfxfer.text import predict_texts

    rows = _rows(runs["reviews"])[:30]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps({"sentence": r["text"], "y": r["label"]}) + "\n" for r in rows))
    lines = _ok(capsys, ["evaluate", runs["text_classification"].run_dir, str(path), "--text-column", "sentence",
                         "--label-column", "y", "--json", "-q"])
    metrics = json.loads("\n".join(lines))["metrics"]  # the tfxfer/1 document's metrics
    model = open_model(runs["text_classification"].run_dir)
    probs = predict_texts(model.model, [r["text"] for r in rows])
    truth = np.array([model.class_names.index(r["label"]) for r in rows])
    assert metrics["task"] == "text_classification" and metrics["num_examples"] == 30
    assert metrics["accuracy"] == pytest.approx(float(np.mean(probs.argmax(1) == truth)), abs=1e-4)
    assert sum(c["support"] for c in metrics["per_class"]) == 30 and 0.0 <= metrics["ece"] <= 1.0
    limited = json.loads(_ok(capsys, ["evaluate", runs["text_classification"].run_dir, str(path), "--limit", "7",
                                      "--text-column", "sentence", "--label-column", "y", "--json", "-q"])[0])
    assert limited["metrics"]["num_examples"] == 7


def test_ner_on_conll_file(runs, capsys):
    from tfxfer.recipes.inference import open_model
    from tfxfer.recipes.text_eval import ner_metrics, token_data
    from tfxfer.text.ner import predict_word_tags

    run_dir = runs["ner"].run_dir
    lines = _ok(capsys, ["evaluate", run_dir, runs["tags"], "-q"])
    assert lines[0].startswith(f"model.keras on {runs['tags']} (30 sentences): entity F1 ")
    assert "precision " in lines[0] and "tag accuracy " in lines[0]
    assert lines[1].split()[:2] == ["entity", "type"]
    assert {row.split()[0]: int(row.split()[-1]) for row in lines[2:]} == {"geo-loc": 30, "person": 30}
    metrics = json.loads(_ok(capsys, ["evaluate", run_dir, runs["tags"], "--json", "-q"])[0])["metrics"]
    model = open_model(run_dir)
    words, true, _ = token_data(runs["tags"], model.class_names)
    pred, _ = predict_word_tags(model.model, words, tag_names=model.class_names)
    direct = ner_metrics(true, pred)
    assert metrics["task"] == "token_classification"
    for key in ("num_examples", "entity_f1", "entity_precision", "entity_recall", "tag_accuracy", "entities"):
        assert metrics[key] == direct[key], key
    flat = [(a, b) for t, p in zip(true, pred) for a, b in zip(t, p)]
    assert metrics["tag_accuracy"] == pytest.approx(np.mean([a == b for a, b in flat]), abs=1e-4)


def test_unknown_label_is_one_line_error(runs, capsys, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("text,label\ngood film,pos\nbad film,meh\ndull plot,neg\n")
    line = _one_error(capsys, ["evaluate", runs["text_classification"].run_dir, str(path)])
    assert "['meh']" in line and "not among the model's labels ['neg', 'pos']" in line
    tags = tmp_path / "odd.conll"
    tags.write_text("zoe\tB-person\nvisits\tO\nrome\tB-city\n")
    assert "Tags ['B-city']" in _one_error(capsys, ["evaluate", runs["ner"].run_dir, str(tags)])


def test_missing_column_is_one_line_error(runs, capsys, tmp_path):
    run_dir = runs["text_classification"].run_dir
    line = _one_error(capsys, ["evaluate", run_dir, runs["reviews"], "--text-column", "review"])
    assert "Column 'review' not found" in line
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "good film", "sentiment": "pos"}\n{"text": "bad film", "sentiment": "neg"}\n')
    line = _one_error(capsys, ["evaluate", run_dir, str(path)])
    assert "Field 'label' not found" in line and "['sentiment', 'text']" in line


def test_wrong_data_and_text_tflite_are_one_line_errors(runs, capsys):
    clf = runs["text_classification"]
    assert "is a token_classification data set" in _one_error(capsys, ["evaluate", clf.run_dir, "wnut16"])
    assert "is a text_classification data set" in _one_error(capsys, ["evaluate", runs["ner"].run_dir, "trec"])
    assert "must be an existing folder or table file, or a packaged data set name" in _one_error(
        capsys, ["evaluate", clf.run_dir, "no_such_table.csv"])
    assert "is a text .tflite file" in _one_error(capsys, ["evaluate", clf.tflite, runs["reviews"]])
    assert "must be some of float32, float16, dynamic, weight_only for a text model" in _one_error(
        capsys, ["export", clf.run_dir, runs["reviews"], "--variants", "float32,int8"])


def test_export_text_classifier_and_ner_models(runs, tmp_path, capsys):
    """`tfxfer export` on text runs: gated token-id files with tokenizer files, a raw-string SavedModel."""
    import json

    from ai_edge_litert.interpreter import Interpreter

    clf, ner = runs["text_classification"], runs["ner"]
    out = tmp_path / "clf"
    lines = _ok(capsys, ["export", clf.run_dir, runs["reviews"], "--out", str(out), "--saved-model", "reviews",
                         "-q"])
    assert lines[0].split()[:2] == ["variant", "size"] and [ln.split()[0] for ln in lines[1:3]] == ["float32",
                                                                                                    "dynamic"]
    assert all(ln.endswith("pass") for ln in lines[1:3]) and "SavedModel (raw strings in)" in lines[3]
    for variant in ("float32", "dynamic"):
        with open(out / f"{clf_name(clf)}_{variant}.json") as f:
            sidecar = json.load(f)
        assert sidecar["tokenizer"]["type"] == "wordpiece" and sidecar["class_names"] == ["neg", "pos"]
        Interpreter(model_path=str(out / f"{clf_name(clf)}_{variant}.tflite")).allocate_tensors()
    assert (out / f"{clf_name(clf)}_float32.vocab.txt").is_file() and list((out / "serving" / "reviews").iterdir())
    lines = _ok(capsys, ["export", ner.run_dir, runs["tags"], "--out", str(tmp_path / "ner"), "--variants",
                         "dynamic", "--no-benchmark", "-q"])
    assert lines[1].split()[0] == "dynamic" and lines[1].split()[2] == "-" and lines[1].endswith("pass")


def clf_name(run):
    from tfxfer.recipes.inference import open_model

    return open_model(run.run_dir).model.name


def test_library_checks_and_ner_without_labels_file(runs, tmp_path):
    from tfxfer.recipes.inference import open_model
    from tfxfer.recipes.text_eval import evaluate_text_model, model_task

    model = open_model(runs["text_classification"].run_dir)
    with pytest.raises(ArgumentError, match=r"`limit` must be None or an int >= 1.*limit=0"):
        evaluate_text_model(model, runs["reviews"], limit=0)
    with pytest.raises(ArgumentError, match=r"`split` must be \"train\", \"val\" or \"test\""):
        evaluate_text_model(model, "sms_spam", split="dev")
    bare = tmp_path / "ner.keras"  # no labels.json beside it: per-token outputs still mark an NER model
    shutil.copy(os.path.join(runs["ner"].run_dir, "model", "model.keras"), bare)
    loaded = open_model(str(bare))
    assert loaded.task == "text_classification" and model_task(loaded) == "token_classification"
    with pytest.raises(DataError, match=r"Tags \[.*'B-person'.*\] in .* are not among the model's tags \['0'"):
        evaluate_text_model(loaded, runs["tags"])


def test_packaged_sets_map_names_to_the_model_order():
    from tfxfer.recipes.text_eval import classification_data, ner_metrics

    texts, labels, skipped = classification_data("sms_spam", ["spam", "ham"], split="val")
    assert len(texts) == 480 and skipped == 0 and isinstance(texts[0], str)
    assert int((labels == 0).sum()) in range(55, 75)  # ~13 % spam, now id 0 in the model's order
    with pytest.raises(DataError, match=r"Labels \['spam'\] in sms_spam are not among the model's labels \['ham'\]"):
        classification_data("sms_spam", ["ham"], split="val")
    m = ner_metrics([["B-person", "I-person", "O", "B-city"]], [["B-person", "I-person", "O", "O"]])
    assert (m["entity_precision"], m["entity_recall"], m["entity_f1"], m["tag_accuracy"]) == (1.0, 0.5, 0.6667, 0.75)
