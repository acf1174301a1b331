"""Text loaders: CSV/TSV/JSONL, multi-label, empty/over-long texts, unicode, CoNLL."""

import json

import numpy as np
import pytest

from tfxfer.data import load_conll, load_texts
from tfxfer.errors import ArgumentError, DataError

UNICODE = ["Ça coûte 5 €", "日本語のテキスト", "emoji 🤖🚀", "Zürich — naïve café", "עברית", "∑ x² ≠ y"]


def _csv(tmp_path, rows, name="t.csv", header="text,label"):
    path = tmp_path / name
    path.write_text("\n".join([header] + rows), encoding="utf-8")
    return path


def test_csv_unicode_intact_and_stratified(tmp_path):
    rows = [f'"{t} {i}",{"pos" if i % 2 else "neg"}' for i, t in enumerate(UNICODE * 4)]
    data = load_texts(_csv(tmp_path, rows), validation_split=0.25, seed=0)
    texts = set(data.train.x) | set(data.val.x)
    assert {f"{t} {i}" for i, t in enumerate(UNICODE * 4)} == texts
    assert data.class_names == ["neg", "pos"]
    assert data.summary.class_counts == {"train": {"neg": 9, "pos": 9}, "val": {"neg": 3, "pos": 3}}
    assert data.train.x.dtype == object and data.train.y.dtype == np.int64


def test_tsv_with_quotes_commas_and_newlines(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text('text\tlabel\n"line one\nline two, with comma"\ta\nplain\tb\n"x"\ta\ny\tb\n', encoding="utf-8")
    data = load_texts(path)
    assert "line one\nline two, with comma" in list(data.train.x)


def test_jsonl_multilabel_lists(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"text": f"t{i}", "label": ["sport", "news"] if i % 2 else ["news"]} for i in range(10)]
    rows.append({"text": "untagged", "label": []})
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\nnot json\n", encoding="utf-8")
    data = load_texts(path)
    assert data.multi_label and data.class_names == ["news", "sport"]
    assert data.train.y.shape == (11, 2) and data.train.y.sum(axis=0).tolist() == [10.0, 5.0]
    assert data.summary.skip_counts == {"bad_row": 1}
    with pytest.raises(DataError, match="single-label"):
        data.class_weights()


def test_csv_multilabel_separator(tmp_path):
    rows = [f"t{i},{'a|b' if i % 2 else 'b'}" for i in range(8)]
    data = load_texts(_csv(tmp_path, rows), label_separator="|")
    assert data.multi_label and data.train.y.sum(axis=0).tolist() == [4.0, 8.0]


def test_empty_and_long_texts(tmp_path):
    rows = ["short,a", "   ,a", "x" * 50 + ",b", "ok,b", "fine,a", "good,b"]
    path = _csv(tmp_path, rows)
    data = load_texts(path, max_length=10)
    assert data.summary.skip_counts == {"empty_text": 1}
    assert max(len(t) for t in data.train.x) == 10 and "truncated 1 text" in data.summary.notes[0]
    skipped = load_texts(path, max_length=10, on_long="skip")
    assert skipped.summary.skip_counts == {"empty_text": 1, "too_long": 1}
    kept = load_texts(path, on_empty="keep")
    assert "   " in list(kept.train.x)
    with pytest.raises(DataError, match=r"Empty text at t.csv:3"):
        load_texts(path, on_empty="raise")
    with pytest.raises(DataError, match="has 50 characters > max_length=10"):
        load_texts(path, max_length=10, on_long="raise")


def test_missing_label_skipped_and_numeric_class_order(tmp_path):
    rows = ["a,10", "b,2", "c,", "d,10", "e,2"]
    data = load_texts(_csv(tmp_path, rows))
    assert data.class_names == ["2", "10"] and data.summary.skip_counts == {"missing_label": 1}


def test_identical_texts_reported_and_kept_together(tmp_path):
    rows = [f"text {i % 5},{'a' if i % 5 < 3 else 'b'}" for i in range(30)]
    data = load_texts(_csv(tmp_path, rows), test_split=0.4, seed=0)
    assert data.summary.leakage == [] and len(data.summary.duplicates) == 5
    assert not set(data.train.x) & set(data.test.x)


def test_to_dataset(tmp_path):
    data = load_texts(_csv(tmp_path, [f"t{i},{i % 2}" for i in range(6)]))
    texts, labels = next(iter(data.to_dataset("train", batch_size=6)))
    assert texts.dtype.name == "string" and sorted(labels.numpy().tolist()) == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ArgumentError, match="must name a split that exists"):
        data.to_dataset("test")


TEXT_ERRORS = [
    ({"on_long": "cut"}, ArgumentError, "`on_long` must be"),
    ({"on_empty": "drop"}, ArgumentError, "`on_empty` must be"),
    ({"max_length": 0}, ArgumentError, "`max_length` must be an int >= 1 or None. Received: max_length=0"),
    ({"format": "xml"}, ArgumentError, "`format` must be"),
    ({"label_column": "y"}, DataError, "Column 'y' not found"),
    ({"class_names": ["a"]}, DataError, r"Labels \['b'\].*not in class_names"),
]


def test_text_argument_errors(tmp_path):
    path = _csv(tmp_path, ["x,a", "y,b", "z,a", "w,b"])
    for kwargs, error, match in TEXT_ERRORS:
        with pytest.raises(error, match=match):
            load_texts(path, **kwargs)


def test_single_class_and_bad_encoding(tmp_path):
    with pytest.raises(DataError, match="single class"):
        load_texts(_csv(tmp_path, ["x,a", "y,a"]))
    bad = tmp_path / "latin.csv"
    bad.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(DataError, match="not valid utf-8 at byte 14.*encoding="):
        load_texts(bad)
    assert "café" in load_texts_ok(bad)


def test_min_classes_1_reads_a_single_label_for_evaluation(tmp_path):
    path = _csv(tmp_path, ["x,a", "y,a"])
    data = load_texts(path, min_classes=1)
    assert data.class_names == ["a"] and data.train.y.tolist() == [0, 0]
    with pytest.raises(ArgumentError, match="min_classes"):
        load_texts(path, min_classes=0)


def load_texts_ok(path):
    with pytest.raises(DataError, match="single class"):  # decodes with the right encoding
        load_texts(path, encoding="latin-1")
    return "café"


CONLL = """-DOCSTART- O

EU\tB-org
rejects\tO
German\tB-misc
call\tO

Peter\tB-person
Blackburn\tI-person

#hashtag\tO
lonely\tI-loc
\t
São\tB-geo-loc
Paulo\tI-geo-loc
"""


def test_conll_parsing_unicode_bio_notes(tmp_path):
    path = tmp_path / "ner.txt"
    path.write_text(CONLL, encoding="utf-8")
    data = load_conll(path)
    tokens = [list(t) for t in data.train.x]
    assert tokens == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["#hashtag", "lonely"],
                      ["São", "Paulo"]]
    assert data.tag_names[0] == "O" and data.tag_names == sorted(data.tag_names, key=lambda t: (t != "O", t))
    assert [data.tag_names[i] for i in data.train.y[1]] == ["B-person", "I-person"]
    assert any("1 I- tag(s)" in n for n in data.summary.notes)
    assert data.summary.class_counts["train"]["O"] == 3  # rejects, call, #hashtag


def test_conll_long_sentences_and_splits(tmp_path):
    lines = []
    for s in range(20):
        lines += [f"w{s}_{i}\tO" for i in range(7 if s < 10 else 2)] + [""]
    path = tmp_path / "long.conll"
    path.write_text("\n".join(lines), encoding="utf-8")
    chunks = load_conll(path, max_tokens=3)
    assert len(chunks.train.x) == 10 * 3 + 10 and max(len(t) for t in chunks.train.x) == 3
    assert len(load_conll(path, max_tokens=3, on_long="truncate").train.x) == 20
    assert load_conll(path, max_tokens=3, on_long="skip").summary.skip_counts == {"too_long": 10}
    with pytest.raises(DataError, match="has 7 tokens > max_tokens=3"):
        load_conll(path, max_tokens=3, on_long="raise")
    split = load_conll(path, validation_split=0.1, test_split=0.2, seed=0)
    assert (len(split.train.x), len(split.val.x), len(split.test.x)) == (14, 2, 4)


def test_conll_duplicates_kept_together_and_errors(tmp_path):
    path = tmp_path / "dup.conll"
    path.write_text("\n\n".join(["a\tO\nb\tB-x"] * 3 + [f"c{i}\tO" for i in range(7)]), encoding="utf-8")
    data = load_conll(path, test_split=0.3, seed=1)
    assert data.summary.leakage == [] and len(data.summary.duplicates) == 1
    with pytest.raises(ArgumentError, match="`on_long` must be"):
        load_conll(path, on_long="wrap")
    with pytest.raises(DataError, match=r"Tags \['B-x'\]"):
        load_conll(path, tag_names=["O"])
    empty = tmp_path / "empty.conll"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="No sentences"):
        load_conll(empty)
