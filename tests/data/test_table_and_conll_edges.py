"""Ordinary-but-unusual tables and CoNLL files: no silent guess, no lost row, the same order every run."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tfxfer.data import image_dataset_from_arrays, image_dataset_from_csv, image_dataset_from_folder, load_conll, load_texts
from tfxfer.errors import ArgumentError, DataError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pngs(folder, n):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((4, 4, 3), 20 * i, "uint8")).save(folder / f"{i}.png")


def test_a_repeated_label_column_is_an_error_in_every_table_reader(tmp_path):
    _pngs(tmp_path, 4)
    (tmp_path / "t.csv").write_text("path,label,label\n" + "".join(f"{i}.png,cat,dog\n" for i in range(4)))
    with pytest.raises(DataError, match=r"column 'label' appears 2 times in the header \(columns 2, 3\)"):
        image_dataset_from_csv(tmp_path / "t.csv", image_size=4, batch_size=2)
    (tmp_path / "x.csv").write_text("text,label,label\na,cat,dog\nb,dog,cat\n")
    with pytest.raises(DataError, match=r"column 'label' appears 2 times"):
        load_texts(tmp_path / "x.csv")
    (tmp_path / "ok.csv").write_text("text,label,note,note\na,cat,x,y\nb,dog,x,y\nc,cat,x,y\nd,dog,x,y\n")
    assert load_texts(tmp_path / "ok.csv").class_names == ["cat", "dog"]  # repeats in unused columns are fine


def test_a_nan_label_sorts_the_same_in_every_process(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("text,label\n" + "\n".join(f"t{i},{['1', '2', 'nan', '10'][i % 4]}" for i in range(40)) + "\n")
    code = ("import sys; from tfxfer.data import load_texts; d = load_texts(sys.argv[1], validation_split=0.25);"
            "print(d.class_names, list(d.val.x[:4]))")
    outs = {subprocess.run([sys.executable, "-c", code, str(table)], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": ROOT}).stdout.strip().splitlines()[-1]
            for seed in (0, 1, 2)}
    assert len(outs) == 1 and next(iter(outs)).startswith("['1', '10', '2', 'nan'] ")  # one answer, 3 hash seeds
    numbers = tmp_path / "n.csv"
    numbers.write_text("text,label\n" + "\n".join(f"t{i},{['1', '2', '10'][i % 3]}" for i in range(30)) + "\n")
    assert load_texts(numbers).class_names == ["1", "2", "10"]  # all finite numbers: numeric order


def test_conll_trailing_tabs_are_ignored_and_a_tagless_line_drops_its_whole_sentence(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text("EU\tB-ORG\t\nrejects\tO\t\n\nPeter\tB-PER\t\n")
    data = load_conll(path)
    assert [list(s) for s in data.train.x] == [["EU", "rejects"], ["Peter"]] and not data.summary.skipped
    path.write_text("EU B-ORG\nrejects\nGerman B-MISC\ncall O\n-DOCSTART- -X- O\nPeter B-PER\nBlackburn I-PER\n")
    data = load_conll(path)
    assert [list(s) for s in data.train.x] == [["Peter", "Blackburn"]]  # -DOCSTART- ends the first sentence
    assert len(data.summary.skipped) == 1 and "line 2: missing token or tag: 'rejects'" in data.summary.skipped[0]["detail"]
    path.write_text("EU\nrejects\n")
    with pytest.raises(DataError, match="No sentences found in .*; 1 skipped, the first: sentence ending at line"):
        load_conll(path)


def test_repeated_class_and_tag_names_are_refused(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\n" + "".join(f"t{i},{'neg' if i % 2 else 'pos'}\n" for i in range(8)))
    with pytest.raises(ArgumentError, match="`class_names` must not repeat a name; 'neg' appears 2 times"):
        load_texts(tmp_path / "t.csv", class_names=["neg", "pos", "neg"])
    (tmp_path / "a.conll").write_text("EU B-ORG\nrejects O\n\nPeter B-PER\n")
    with pytest.raises(ArgumentError, match="`tag_names` must not repeat a name; 'O' appears 2 times"):
        load_conll(tmp_path / "a.conll", tag_names=["O", "B-ORG", "B-PER", "O"])
    x = np.zeros((8, 4, 4, 3), "uint8")
    with pytest.raises(ArgumentError, match="`class_names` must not repeat a name; 'cat' appears 2 times"):
        image_dataset_from_arrays(x, np.array([0, 1] * 4), class_names=["cat", "cat"])


def test_a_stray_quote_in_an_image_table_loses_only_its_own_row(tmp_path):
    _pngs(tmp_path, 10)
    rows = ["path,label"] + [f"{i}.png,{'cat' if i % 2 else 'dog'}" for i in range(10)]
    rows[3] = '"2.png,dog'
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    data = image_dataset_from_csv(tmp_path / "t.csv", image_size=4, batch_size=4, validation_split=0.0)
    assert sum(data.counts["train"].values()) == 9
    assert [(s["path"], s["detail"]) for s in data.summary.skipped] == [('"2.png', "line 4")]


def test_a_summary_path_that_is_a_folder_is_named_before_the_scan(tmp_path):
    _pngs(tmp_path / "data" / "a", 2), _pngs(tmp_path / "data" / "b", 2)
    with pytest.raises(ArgumentError, match="`summary_path` must name a file, not a folder"):
        image_dataset_from_folder(tmp_path / "data", image_size=4, summary_path=tmp_path)


def test_array_labels_missing_bytes_columns_and_nan_multi_hot(tmp_path):
    x = np.zeros((12, 4, 4, 3), "uint8")
    with pytest.raises(DataError, match=r"`y\[1\]` is a missing label \(None\)"):
        image_dataset_from_arrays(x, np.array(["a", None] * 6, dtype=object))
    assert image_dataset_from_arrays(x, np.array([b"a", b"b"] * 6)).class_names == ["a", "b"]
    assert image_dataset_from_arrays(x, np.array([[0], [1]] * 6)).class_names == ["0", "1"]  # a column of ids
    with pytest.raises(DataError, match="multi-hot rows must be finite 0/1 numbers; found NaN"):
        image_dataset_from_arrays(x, np.tile([[np.nan, 1.0], [1.0, 0.0]], (6, 1)), multi_label=True)
    with pytest.raises(ArgumentError, match=r"`x` must hold images of at least 1x1 pixels"):
        image_dataset_from_arrays(np.zeros((12, 0, 4, 3), "uint8"), np.array([0, 1] * 6))


def test_jsonl_numbers_that_are_the_same_class_are_one_class(tmp_path):
    import json

    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"t{i}", "label": [1, 1.0, 0, 0.0][i % 4]}) for i in range(16)))
    data = load_texts(path)
    assert data.class_names == ["0", "1"] and sorted(data.summary.class_counts["train"].values()) == [8, 8]
