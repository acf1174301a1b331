"""Hostile and careless inputs to the data readers (issue 15): nothing hangs, nothing crashes,
nothing is silently wrong. Every case ends in a typed tfxfer error, a counted skip with its reason,
or a correct result; the FIFO and /dev/zero cases run under a timeout so a regression fails
instead of hanging the suite."""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from tfxfer.data import DataWarning, image_dataset_from_csv, image_dataset_from_folder, load_texts
from tfxfer.data.hygiene import SKIP_REASONS
from tfxfer.data.scan import MAX_IMAGE_PIXELS, read_regular_file, scan_images
from tfxfer.errors import DataError
from tfxfer.recipes.fingerprint import file_sha256, path_fingerprint


@pytest.fixture(autouse=True)
def alarm():
    """Fail (instead of hanging forever) if a case blocks for more than 60 s."""
    def boom(*_):
        raise TimeoutError("a reader blocked: the case hung")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def png(path, color=(200, 10, 10), size=(8, 8)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def two_classes(root, n=3):
    for label, color in (("cat", (250, 0, 0)), ("dog", (0, 0, 250))):
        for i in range(n):
            png(os.path.join(root, label, f"{i}.png"), tuple(max(0, c - 20 * i) for c in color))
    return root


def reasons(data) -> dict:
    return {row["path"]: row["reason"] for row in data.summary.skipped}


def load(root, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return image_dataset_from_folder(root, image_size=8, batch_size=4, **kw)


# -- 1. readers touch only regular files inside the root -----------------------------------------
def test_a_fifo_and_a_link_to_dev_zero_are_counted_skips_not_hangs(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    os.mkfifo(os.path.join(root, "cat", "pipe.png"))
    os.symlink("/dev/zero", os.path.join(root, "dog", "zero.png"))
    data = load(root)
    assert reasons(data) == {"cat/pipe.png": "not_a_regular_file", "dog/zero.png": "symlink"}
    assert sum(sum(c.values()) for c in data.summary.class_counts.values()) == 6
    data = load(root, follow_links=True)  # a followed link still may not leave the root
    assert reasons(data) == {"cat/pipe.png": "not_a_regular_file", "dog/zero.png": "outside_root"}
    assert set(reasons(data).values()) <= set(SKIP_REASONS)


def test_scan_and_fingerprint_read_only_regular_files(tmp_path):
    fifo = str(tmp_path / "pipe.png")
    os.mkfifo(fifo)
    result = scan_images([fifo, "/dev/zero"])
    assert [s["reason"] for s in result.skipped] == ["not_a_regular_file", "not_a_regular_file"]
    with pytest.raises(DataError, match="character device, not a regular file"):
        read_regular_file("/dev/zero")
    with pytest.raises(DataError, match="not a regular file"):
        file_sha256(fifo)
    root = two_classes(str(tmp_path / "d"))
    before = path_fingerprint(root)
    os.mkfifo(os.path.join(root, "cat", "pipe.png"))
    os.symlink("/dev/zero", os.path.join(root, "dog", "zero.png"))
    assert path_fingerprint(root) == before  # neither is read (nor part of the data)


def test_links_are_followed_only_when_asked_and_never_out_of_the_root(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    outside = two_classes(str(tmp_path / "elsewhere"))
    os.symlink(os.path.join(outside, "cat"), os.path.join(root, "bird"))  # a class folder that is a link
    os.symlink(os.path.join(root, "cat", "0.png"), os.path.join(root, "dog", "alias.png"))  # inside
    os.symlink(os.path.join(outside, "dog", "0.png"), os.path.join(root, "dog", "out.png"))  # outside
    data = load(root)
    assert data.class_names == ["cat", "dog"]
    assert reasons(data) == {"bird": "symlink", "dog/alias.png": "symlink", "dog/out.png": "symlink"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # alias.png: the same content under two labels
        data = load(root, follow_links=True)
    assert data.class_names == ["cat", "dog"]
    assert reasons(data) == {"bird": "outside_root", "dog/out.png": "outside_root"}


def test_a_link_loop_inside_the_root_ends(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    os.symlink(os.path.join(root, "cat"), os.path.join(root, "cat", "again"))
    data = load(root, follow_links=True)
    assert sum(data.summary.class_counts["train"].values()) == 6
    assert any("already read" in n for n in data.summary.notes)


def test_a_non_utf8_file_name_is_a_counted_skip(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    bad = os.path.join(os.fsencode(root), b"cat", b"caf\xe9.png")  # Latin-1, as zips from Windows hold
    with open(bad, "wb") as f:
        f.write(open(os.path.join(root, "cat", "0.png"), "rb").read())
    data = load(root)
    assert reasons(data) == {"cat/caf\\xe9.png": "undecodable_name"}
    json.dumps(data.summary.to_dict())  # the summary stays writable
    assert scan_images([os.fsdecode(bad)]).skipped[0]["reason"] == "undecodable_name"


def _png_declaring(width, height) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(data)


def test_declared_sizes_over_the_limit_are_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_declaring(60000, 60000))  # 3.6e9 pixels declared in a few hundred bytes
    result = scan_images([str(path)])
    assert result.skipped[0]["reason"] == "too_large"  # (Pillow's own 2x limit says so first)
    side = int(MAX_IMAGE_PIXELS ** 0.5) + 1  # over our limit, under Pillow's own 2x error
    path.write_bytes(_png_declaring(side, side))
    (row,) = scan_images([str(path)]).skipped
    assert row["reason"] == "too_large" and "MAX_IMAGE_PIXELS" in row["detail"]


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 8, 3), np.uint8)
    pixels[:, :4] = 255  # left half white: 8 wide, 4 high as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    result = scan_images([str(path)])
    assert not result.skipped and "EXIF orientation 6" in result.converted[0]["why"]
    shown = Image.open(io.BytesIO(result.ok[0].blob))
    assert shown.size == (4, 8)  # turned upright: 4 wide, 8 high
    top, bottom = np.asarray(shown)[0].mean(), np.asarray(shown)[-1].mean()
    assert top > 200 and bottom < 50  # the white half is now on top


def test_header_and_decoded_size_must_agree(tmp_path, monkeypatch):
    from tfxfer.data import scan

    path = png(str(tmp_path / "a.png"), size=(8, 6))
    monkeypatch.setattr(scan, "_tf_decodable", lambda paths: np.array([[5, 8]] * len(paths)))
    result = scan_images([path])
    assert result.skipped[0]["reason"] == "size_mismatch" and "8x6" in result.skipped[0]["detail"]


# -- 1. tables: paths outside the root -----------------------------------------------------------
def test_table_paths_outside_the_root_are_refused_unless_allowed(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    secret = png(str(tmp_path / "secret.png"))
    rows = ["path,label"] + [f"{c}/{i}.png,{c}" for c in ("cat", "dog") for i in range(3)]
    rows += [f"{secret},cat", "../secret.png,dog"]
    table = tmp_path / "d" / "t.csv"
    table.write_text("\n".join(rows))
    data = image_dataset_from_csv(table, image_size=8)
    assert reasons(data) == {secret: "outside_root", "../secret.png": "outside_root"}
    assert "line 8" in [r for r in data.summary.skipped if r["path"] == secret][0]["detail"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = image_dataset_from_csv(table, image_size=8, allow_outside_root=True)
    assert reasons(data) == {"../secret.png": "label_conflict", secret: "label_conflict"}


def test_table_rows_naming_a_fifo_are_skipped(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    os.mkfifo(os.path.join(root, "pipe.png"))
    rows = ["path,label"] + [f"{c}/{i}.png,{c}" for c in ("cat", "dog") for i in range(3)] + ["pipe.png,cat"]
    (tmp_path / "d" / "t.csv").write_text("\n".join(rows))
    data = image_dataset_from_csv(tmp_path / "d" / "t.csv", image_size=8)
    assert reasons(data) == {"pipe.png": "not_a_regular_file"}


# -- 2. label hygiene ----------------------------------------------------------------------------
def test_the_same_file_under_two_labels_is_a_label_conflict_naming_both_rows(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    rows = ["path,label"] + [f"{c}/{i}.png,{c}" for c in ("cat", "dog") for i in range(3)]
    rows += ["cat/0.png,dog", "dog/1.png,dog"]  # a conflict, and a plain repeat
    (tmp_path / "d" / "t.csv").write_text("\n".join(rows))
    data = image_dataset_from_csv(tmp_path / "d" / "t.csv", image_size=8)
    conflicts = [r for r in data.summary.skipped if r["reason"] == "label_conflict"]
    assert len(conflicts) == 2 and "line 2" in conflicts[1]["detail"] and "line 8" in conflicts[0]["detail"]
    repeat = [r for r in data.summary.skipped if r["reason"] == "bad_row"]
    assert repeat[0]["detail"] == "line 9 repeats line 6 (same file, same label)"


def test_the_same_content_under_two_labels_is_reported_with_both_paths(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    with open(os.path.join(root, "cat", "0.png"), "rb") as f:
        content = f.read()
    with open(os.path.join(root, "dog", "copy.png"), "wb") as f:
        f.write(content)
    with pytest.warns(DataWarning, match="label conflict"):
        data = image_dataset_from_folder(root, image_size=8)
    assert data.summary.label_conflicts[0]["labels"] == {"cat": ["cat/0.png"], "dog": ["dog/copy.png"]}
    assert "LABEL CONFLICTS" in str(data.summary)


@pytest.mark.parametrize("twins", [("cat", "Cat"), ("cat", "cat\u200b"), ("café", "cafe\u0301"), ("dog", "ＤＯＧ")])
def test_look_alike_labels_are_reported(tmp_path, twins):
    root = str(tmp_path / "d")
    for k, label in enumerate(twins):
        for i in range(2):
            png(os.path.join(root, label, f"{i}.png"), (40 * k + 10 * i, 0, 0))
    with pytest.warns(DataWarning, match="differ only by case, Unicode normalization or invisible"):
        data = image_dataset_from_folder(root, image_size=8)
    assert data.summary.lookalike_labels == [sorted(twins)]


def test_texts_under_two_labels_and_look_alike_labels(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\nsame words,pos\nother,neg\nsame words,neg\nmore,Pos\nx,neg\ny,pos\n")
    with pytest.warns(DataWarning) as record:
        data = load_texts(path)
    assert data.summary.label_conflicts[0]["labels"] == {"neg": ["t.csv:4"], "pos": ["t.csv:2"]}
    assert data.summary.lookalike_labels == [["Pos", "pos"]]
    assert len(record) == 1


# -- 3. text tables that never lose rows ----------------------------------------------------------
def test_a_stray_quote_in_a_tsv_does_not_swallow_rows(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text('text\tlabel\n"stray start\tpos\nfine one\tneg\nfine two\tpos\nfine three\tneg\n')
    data = load_texts(path)
    assert sorted(data.train.x) == ['"stray start', "fine one", "fine three", "fine two"]
    assert not data.summary.skipped


def test_an_unclosed_quote_in_a_csv_is_a_counted_row_with_its_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\na,pos\nb,neg\n"oops,pos\nc,neg\nd,pos\n')
    data = load_texts(path)
    assert data.summary.scanned == 3
    (row,) = data.summary.skipped
    assert row["path"] == "t.csv:4" and row["reason"] == "bad_row" and "lines 4-6" in row["detail"]


def test_long_fields_and_line_separators_inside_strings(tmp_path):
    long_text = "w" * (300 << 10)  # over csv's 128 KiB default field limit
    path = tmp_path / "t.csv"
    path.write_text(f'text,label\n{long_text},pos\n"two\nlines",neg\nthree,pos\nfour,neg\n')
    data = load_texts(path)
    assert long_text in list(data.train.x) and "two\nlines" in list(data.train.x)
    rows = [{"text": f"a\u2028b\u2029c\x85d {i}", "label": "xy"[i % 2]} for i in range(4)]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    data = load_texts(path)
    assert data.summary.scanned == 4 and not data.summary.skipped


def test_row_numbers_are_where_a_record_starts(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('text,label\n"one\ntwo\nthree",pos\n,neg\na,pos\nb,neg\n')
    data = load_texts(path)
    assert data.summary.skipped[0]["path"] == "t.csv:5"


def test_mixed_single_and_multi_label_rows_are_an_error_naming_the_row(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"text": "c", "label": ["x", "y"]}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(DataError, match=r"t\.jsonl:3: a list of labels .* but t\.jsonl:1 has a single label"):
        load_texts(path)


def test_labels_and_texts_of_the_wrong_type_are_counted(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"text": f"t{i}", "label": "xy"[i % 2]} for i in range(4)]
    rows += [{"text": {"nested": 1}, "label": "x"}, {"text": "z", "label": {"a": 1}}, {"text": "q"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n" + "[" * 100000 + "\n")
    data = load_texts(path)
    assert data.summary.skip_counts == {"bad_label": 1, "bad_row": 2, "missing_label": 1}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_text_tables_with_a_byte_order_mark(tmp_path, encoding):
    path = tmp_path / "t.csv"
    path.write_bytes("text,label\nné,a\nb,b\nc,a\nd,b\n".encode(encoding))
    assert "né" in list(load_texts(path).train.x)


def test_a_text_table_that_is_a_fifo_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    os.mkfifo(path)
    with pytest.raises((DataError, ValueError)):
        load_texts(path)


# -- CoNLL ---------------------------------------------------------------------------------------
def test_conll_tokens_holding_line_separators_keep_their_tags(tmp_path):
    from tfxfer.data import load_conll

    path = tmp_path / "t.conll"
    sentences = [[("a\u2028b", "B-X"), ("c\x85d", "O")], [("e", "O"), ("f", "B-X")]] * 3
    path.write_text("\r\n\r\n".join("\r\n".join(f"{t}\t{g}" for t, g in s) for s in sentences), encoding="utf-8",
                    newline="")
    data = load_conll(path)
    assert not data.summary.skipped
    tokens = sorted(tuple(x) for x in data.train.x)
    assert len(tokens) == 6 and ("a\u2028b", "c\x85d") in tokens


def test_image_tables_keep_every_row_and_start_line_numbers(tmp_path):
    root = two_classes(str(tmp_path / "d"))
    rows = ["path\tlabel"] + [f"{c}/{i}.png\t{c}" for c in ("cat", "dog") for i in range(3)]
    rows.insert(2, '"cat/missing.png\tcat')  # a stray quote: must not swallow the rows after it
    (tmp_path / "d" / "t.tsv").write_text("\n".join(rows))
    data = image_dataset_from_csv(tmp_path / "d" / "t.tsv", image_size=8, delimiter="\t")
    assert data.summary.used == 6 and reasons(data) == {'"cat/missing.png': "missing_file"}
    assert data.summary.skipped[0]["detail"] == "line 3"
    long_name = "x" * (200 << 10)
    (tmp_path / "d" / "t.csv").write_text("\n".join(
        ["path,label"] + [f"{c}/{i}.png,{c}" for c in ("cat", "dog") for i in range(3)] + [f"{long_name},cat"]))
    data = image_dataset_from_csv(tmp_path / "d" / "t.csv", image_size=8)  # a 200 KiB cell: no csv.Error
    assert data.summary.used == 6 and len(data.summary.skipped) == 1


def test_data_made_only_of_links_says_why_it_is_empty(tmp_path):
    real = two_classes(str(tmp_path / "real"))
    root = tmp_path / "links"
    root.mkdir()
    for c in ("cat", "dog"):
        os.symlink(os.path.join(real, c), root / c)
    with pytest.raises(DataError, match=r"No class sub-folders .*2 linked folder\(s\) skipped.*follow_links=True"):
        image_dataset_from_folder(root, image_size=8)
    for c in ("cat", "dog"):  # real folders of links to files elsewhere
        os.unlink(root / c)
        (root / c).mkdir()
        for i in range(3):
            os.symlink(os.path.join(real, c, f"{i}.png"), root / c / f"{i}.png")
    with pytest.raises(DataError, match=r"have no usable images.*6 item\(s\) were skipped as symbolic links"):
        image_dataset_from_folder(root, image_size=8)


def test_data_errors_show_bounded_excerpts():
    from tfxfer.data.hygiene import check_class_counts

    names = [f"class_{i}_" + "x" * 200 for i in range(5000)]
    for counts in ({"all": {}}, {"train": {n: 1 for n in names}, "val": {names[0]: 1}},
                   {"all": {n: 1 for n in names}}):
        with pytest.raises(DataError) as info:
            check_class_counts(counts, names, min_per_class=2)
        assert len(str(info.value)) < 1500


def test_one_image_check_for_predict_and_serving(tmp_path):
    from tfxfer.data import check_image_bytes

    pixels = np.zeros((4, 8, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 8
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", exif=exif)
    status, png_bytes = check_image_bytes(out.getvalue())
    assert status == "convert" and Image.open(io.BytesIO(png_bytes)).size == (4, 8)
    with pytest.raises(DataError, match=r"^too_large: .*MAX_IMAGE_PIXELS"):
        check_image_bytes(_png_declaring(10000, 10000))  # 1e8 px: over our cap, under Pillow's own 2x error
    with pytest.raises(DataError, match=r"^empty_file"):
        check_image_bytes(b"")
