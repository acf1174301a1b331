"""Image loaders: messy folders, every image mode, splits, leakage, errors."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tfxfer.data import (
    DataWarning,
    image_dataset_from_csv,
    image_dataset_from_folder,
)
from tfxfer.errors import ArgumentError, DataError

from tests.factories import BROKEN_KINDS, VALID_KINDS, gradient, make_simple_folder


def _all(ds):
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def test_messy_folder_completes_and_counts_every_skip(messy_folder, tmp_path):
    root, expected = messy_folder
    summary_path = tmp_path / "summary.json"
    data = image_dataset_from_folder(root, image_size=(16, 16), batch_size=8, summary_path=summary_path)
    assert data.summary.skip_counts == dict(sorted(expected.items()))
    assert expected == {"corrupt": 2, "empty_file": 2, "truncated": 4, "not_an_image": 2,
                        "hidden_file": 2, "unsupported_extension": 2}
    # one entry per skipped file, naming the file
    skipped = {s["path"]: s["reason"] for s in data.summary.skipped}
    for c in ("cat", "dog"):
        for name, (_, reason) in BROKEN_KINDS.items():
            assert skipped[f"{c}/{name}"] == reason
    assert data.counts == {"train": {"cat": len(VALID_KINDS), "dog": len(VALID_KINDS)}}
    x, y = _all(data.train)
    assert x.shape == (2 * len(VALID_KINDS), 16, 16, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 255.0
    on_disk = json.loads(summary_path.read_text())
    assert on_disk["skip_counts"] == data.summary.skip_counts
    assert len(on_disk["skipped"]) == sum(expected.values())
    assert {c["path"] for c in on_disk["converted"]} == {
        f"{c}/{n}" for c in ("cat", "dog") for n in ("palette.bmp", "gray16.tif")}


def test_truncated_jpeg_after_a_good_header_is_caught_by_the_decode_check(tmp_path):
    """Header parses, data ends early: TensorFlow's decode pass catches it, Pillow names it."""
    make_simple_folder(str(tmp_path), {"a": 3, "b": 3})
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(tmp_path / "a" / "big.jpg", quality=95)
    data = (tmp_path / "a" / "big.jpg").read_bytes()
    (tmp_path / "a" / "cut.jpg").write_bytes(data[: int(len(data) * 0.6)])
    (tmp_path / "a" / "big.jpg").unlink()
    with Image.open(tmp_path / "a" / "cut.jpg") as im:  # the header alone looks fine
        assert im.size == (96, 96)
    result = image_dataset_from_folder(str(tmp_path), image_size=8, batch_size=4)
    assert result.summary.skipped == [
        {"path": "a/cut.jpg", "reason": "truncated", "detail": result.summary.skipped[0]["detail"]}]
    assert sum(result.counts["train"].values()) == 6


def _reference_rgb(path):
    with Image.open(path) as im:
        if im.mode.startswith("I;16"):
            arr = np.round(np.asarray(im, dtype=np.float64) / 257.0).astype(np.uint8)
            return np.repeat(arr[..., None], 3, axis=-1)
        return np.asarray(im.convert("RGB"))


def test_every_mode_decodes_to_rgb_with_the_right_pixels(messy_folder):
    root, _ = messy_folder
    data = image_dataset_from_folder(root, image_size=(24, 32), batch_size=64, shuffle=False)
    x, _ = _all(data.train)
    assert x.shape[1:] == (24, 32, 3)
    for image, path in zip(x, data.files["train"]):
        ref = _reference_rgb(path).astype(np.float32)
        tolerance = 3 if path.endswith(".jpg") else 0  # JPEG decoders may round differently
        assert np.abs(image - ref).max() <= tolerance, path


def test_grayscale_mode_and_resize_shape(messy_folder):
    root, _ = messy_folder
    data = image_dataset_from_folder(root, image_size=10, batch_size=4, color_mode="grayscale")
    x, _ = next(iter(data.train))
    assert tuple(x.shape) == (4, 10, 10, 1)


def test_split_is_stratified_deterministic_and_seeded(tmp_path):
    make_simple_folder(str(tmp_path), {"a": 20, "b": 10})
    kwargs = dict(image_size=8, batch_size=4, validation_split=0.2, test_split=0.2)
    one = image_dataset_from_folder(str(tmp_path), seed=1, **kwargs)
    two = image_dataset_from_folder(str(tmp_path), seed=1, **kwargs)
    other = image_dataset_from_folder(str(tmp_path), seed=2, **kwargs)
    assert one.files == two.files
    assert one.files["test"] != other.files["test"]
    assert one.counts == {"train": {"a": 12, "b": 6}, "val": {"a": 4, "b": 2}, "test": {"a": 4, "b": 2}}
    # val/test come out in a fixed order, epoch after epoch
    assert np.array_equal(_all(one.val)[0], _all(one.val)[0])
    # train is reshuffled each epoch
    first, second = _all(one.train)[1], _all(one.train)[1]
    assert sorted(first) == sorted(second)
    assert not np.array_equal(first, second)


def test_duplicates_stay_in_one_split_when_tfxfer_splits(tmp_path):
    make_simple_folder(str(tmp_path), {"a": 10, "b": 10})
    for i in range(3):  # three copies of one image
        shutil.copy(tmp_path / "a" / "000.png", tmp_path / "a" / f"copy{i}.png")
    data = image_dataset_from_folder(str(tmp_path), image_size=8, batch_size=4, validation_split=0.3,
                                     test_split=0.3, seed=0)
    assert data.summary.leakage == []
    assert len(data.summary.duplicates) == 1 and len(data.summary.duplicates[0]["paths"]) == 4


def _presplit(tmp_path, *, leak=True):
    make_simple_folder(str(tmp_path / "train"), {"a": 4, "b": 4})
    make_simple_folder(str(tmp_path / "test"), {"a": 2, "b": 2}, seed0=100)
    if leak:
        shutil.copy(tmp_path / "train" / "a" / "001.png", tmp_path / "test" / "a" / "leaked.png")


def test_leakage_between_given_splits_is_detected(tmp_path):
    _presplit(tmp_path)
    with pytest.warns(DataWarning, match="more than one split"):
        data = image_dataset_from_folder(str(tmp_path), image_size=8, batch_size=4)
    assert len(data.summary.leakage) == 1
    assert data.summary.leakage[0]["splits"] == {"test": ["test/a/leaked.png"], "train": ["train/a/001.png"]}
    assert data.counts["test"] == {"a": 3, "b": 2}
    with pytest.raises(DataError, match="appear in more than one split"):
        image_dataset_from_folder(str(tmp_path), image_size=8, batch_size=4, on_leakage="raise")
    dropped = image_dataset_from_folder(str(tmp_path), image_size=8, batch_size=4, on_leakage="drop")
    assert dropped.counts["test"] == {"a": 2, "b": 2}
    assert dropped.summary.skip_counts == {"leaked_copy": 1}


def test_no_leakage_no_warning(tmp_path, recwarn):
    _presplit(tmp_path, leak=False)
    data = image_dataset_from_folder(str(tmp_path), image_size=8, batch_size=4, validation_split=0.25)
    assert data.summary.leakage == [] and not [w for w in recwarn if issubclass(w.category, DataWarning)]
    assert set(data.counts) == {"train", "val", "test"}  # val carved from train
    assert data.counts["val"] == {"a": 1, "b": 1}


def test_empty_class_raises(tmp_path):
    make_simple_folder(str(tmp_path), {"a": 4, "b": 4})
    os.makedirs(tmp_path / "c")
    open(tmp_path / "c" / "broken.jpg", "wb").close()
    with pytest.raises(DataError, match=r"\['c'\] have no usable images"):
        image_dataset_from_folder(str(tmp_path), image_size=8)


def test_single_class_raises(tmp_path):
    make_simple_folder(str(tmp_path), {"only": 4})
    with pytest.raises(DataError, match="single class"):
        image_dataset_from_folder(str(tmp_path), image_size=8)


def test_min_classes_1_reads_a_single_class_for_evaluation(tmp_path):
    """Evaluation data may hold one class (min_classes=1); training's default still needs two."""
    make_simple_folder(str(tmp_path / "f"), {"defective": 3})
    data = image_dataset_from_folder(str(tmp_path / "f"), image_size=8, min_classes=1, shuffle=False)
    assert data.class_names == ["defective"] and data.counts == {"train": {"defective": 3}}
    assert _all(data.train)[1].tolist() == [0, 0, 0]
    (tmp_path / "t.csv").write_text("path,label\n" + "".join(f"f/defective/{i:03d}.png,defective\n" for i in range(3)))
    with pytest.raises(DataError, match=r"single class \['defective'\]: classification needs at least 2 classes"):
        image_dataset_from_csv(str(tmp_path / "t.csv"), image_size=8)
    assert image_dataset_from_csv(str(tmp_path / "t.csv"), image_size=8, min_classes=1).class_names == ["defective"]
    with pytest.raises(ArgumentError, match="min_classes"):
        image_dataset_from_folder(str(tmp_path / "f"), image_size=8, min_classes=0)


def test_numeric_labels_sort_as_numbers_as_the_text_loader_sorts_them(tmp_path):
    """Folders or table labels 1, 2, 10: class order 1, 2, 10 (not "1", "10", "2"), the text loader's rule;
    an explicit ``class_names`` order is kept as given."""
    from tfxfer.data import load_texts

    make_simple_folder(str(tmp_path / "f"), {"10": 2, "2": 2, "1": 2})
    data = image_dataset_from_folder(str(tmp_path / "f"), image_size=8, shuffle=False)
    assert data.class_names == ["1", "2", "10"]
    folders = [os.path.basename(os.path.dirname(p)) for p in data.files["train"]]
    assert [data.class_names[i] for i in _all(data.train)[1]] == folders
    given = image_dataset_from_folder(str(tmp_path / "f"), image_size=8, class_names=["10", "1", "2"])
    assert given.class_names == ["10", "1", "2"]
    (tmp_path / "t.csv").write_text("path,label\n" + "".join(f"f/{c}/{i:03d}.png,{c}\n" for c in ("10", "2", "1")
                                                               for i in range(2)))
    table = image_dataset_from_csv(str(tmp_path / "t.csv"), image_size=8, shuffle=False)
    assert table.class_names == ["1", "2", "10"] and _all(table.train)[1].tolist() == [2, 2, 1, 1, 0, 0]
    (tmp_path / "texts.csv").write_text("text,label\n" + "".join(f"t{c},{c}\n" for c in ("10", "2", "1")))
    assert load_texts(tmp_path / "texts.csv", min_classes=1).class_names == table.class_names


def test_no_class_folders_raises(tmp_path):
    Image.fromarray(gradient()).save(tmp_path / "loose.png")
    with pytest.raises(DataError, match="No class sub-folders"):
        image_dataset_from_folder(str(tmp_path), image_size=8)


def test_differing_label_sets_between_splits_raise(tmp_path):
    make_simple_folder(str(tmp_path / "train"), {"a": 3, "b": 3})
    make_simple_folder(str(tmp_path / "val"), {"a": 2, "c": 2}, seed0=50)
    with pytest.raises(DataError, match=r"Label sets differ between splits 'train' and 'val'.*\['b'\].*\['c'\]"):
        image_dataset_from_folder(str(tmp_path), image_size=8)


def test_too_few_images_per_class_raise(tmp_path):
    make_simple_folder(str(tmp_path), {"a": 10, "rare": 2})
    with pytest.raises(DataError, match=r"Too few images per class: \{'rare': 2\}"):
        image_dataset_from_folder(str(tmp_path), image_size=8, validation_split=0.2, test_split=0.2)
    with pytest.raises(DataError, match=r"Too few images per class: \{'rare': 2\}"):
        image_dataset_from_folder(str(tmp_path), image_size=8, min_per_class=5)


BAD_FOLDER_ARGUMENTS = [
    ({"image_size": (0, 8)}, "`image_size` must be positive"),
    ({"image_size": "big"}, "`image_size` must be an int or a"),
    ({"image_size": 8, "validation_split": 1.2}, r"`validation_split` must be a finite number in \[0, 1\). Received"),
    ({"image_size": 8, "validation_split": 0.5, "test_split": 0.5}, "must be < 1"),
    ({"image_size": 8, "batch_size": 0}, "`batch_size` must be an int >= 1. Received: batch_size=0"),
    ({"image_size": 8, "label_mode": "binary"}, "`label_mode` must be"),
    ({"image_size": 8, "on_leakage": "shout"}, "`on_leakage` must be"),
    ({"image_size": 8, "color_mode": "cmyk"}, "`color_mode` must be"),
    ({"image_size": 8, "interpolation": "fancy"}, "`interpolation` must be one of"),
    ({}, "`image_size` is required"),
    ({"image_size": 8, "backbone": "mobilenet_v2"}, "`image_size` must be None"),
]


def test_bad_arguments_raise(tmp_path):
    make_simple_folder(str(tmp_path), {"a": 3, "b": 3})
    for kwargs, match in BAD_FOLDER_ARGUMENTS:
        with pytest.raises((ArgumentError, TypeError), match=match):
            image_dataset_from_folder(str(tmp_path), **kwargs)


def test_missing_directory_raises(tmp_path):
    with pytest.raises(ArgumentError, match="must be an existing folder"):
        image_dataset_from_folder(str(tmp_path / "nope"), image_size=8)


def test_backbone_sets_image_size(tmp_path):
    make_simple_folder(str(tmp_path), {"a": 2, "b": 2})
    data = image_dataset_from_folder(str(tmp_path), backbone="mobilenet_v2", batch_size=2, cache=False)
    assert data.image_size == (224, 224)


def test_imbalance_report_and_opt_in_class_weights(tmp_path):
    make_simple_folder(str(tmp_path), {"common": 12, "rare": 3})
    data = image_dataset_from_folder(str(tmp_path), image_size=8, batch_size=4, label_mode="categorical")
    assert data.summary.imbalance["imbalanced"] and data.summary.imbalance["minority_classes"] == ["rare"]
    assert data.summary.imbalance["ratio"] == 4.0
    weights = data.class_weights()
    assert weights == {0: round(15 / 24, 4), 1: 2.5}
    assert next(iter(data.train))[1].shape[-1] == 2  # one-hot


def test_csv_single_and_multi_label_with_missing_file(tmp_path):
    make_simple_folder(str(tmp_path / "img"), {"x": 8})
    rows = ["path,label,tags"]
    for i in range(8):
        rows.append(f"img/x/{i:03d}.png,{'a' if i % 2 else 'b'},{'sun|sea' if i % 3 else 'sea'}")
    rows.append("img/x/missing.png,a,sea")
    rows.append(",a,sea")
    (tmp_path / "table.csv").write_text("\n".join(rows))
    single = image_dataset_from_csv(tmp_path / "table.csv", image_size=8, batch_size=4)
    assert single.class_names == ["a", "b"] and single.counts["train"] == {"a": 4, "b": 4}
    assert single.summary.skip_counts == {"bad_row": 1, "missing_file": 1}
    multi = image_dataset_from_csv(tmp_path / "table.csv", image_size=8, batch_size=8, label_column="tags",
                                   label_separator="|", test_split=0.25, seed=0)
    assert multi.class_names == ["sea", "sun"] and multi.label_mode == "multi_hot"
    y = np.concatenate([multi.labels["train"], multi.labels["test"]])
    assert y.shape == (8, 2) and y[:, 0].sum() == 8 and y[:, 1].sum() == 5
    with pytest.raises(DataError, match="class_weight needs single-label"):
        multi.class_weights()
    with pytest.raises(DataError, match="Column 'nope' not found"):
        image_dataset_from_csv(tmp_path / "table.csv", image_size=8, label_column="nope")


def test_csv_split_column(tmp_path):
    make_simple_folder(str(tmp_path), {"a": 4, "b": 4})
    rows = ["path,label,split"]
    for c in "ab":
        for i in range(4):
            rows.append(f"{c}/{i:03d}.png,{c},{'test' if i == 0 else 'train'}")
    (tmp_path / "t.csv").write_text("\n".join(rows))
    data = image_dataset_from_csv(tmp_path / "t.csv", image_size=8, batch_size=2, split_column="split")
    assert data.counts == {"train": {"a": 3, "b": 3}, "test": {"a": 1, "b": 1}}
    rows.append("a/000.png,a,holdout")
    (tmp_path / "t.csv").write_text("\n".join(rows))
    with pytest.raises(DataError, match="split 'holdout' is not one of"):
        image_dataset_from_csv(tmp_path / "t.csv", image_size=8, split_column="split")


def test_file_cache(tmp_path):
    make_simple_folder(str(tmp_path / "d"), {"a": 3, "b": 3})
    cache = tmp_path / "cache" / "train"
    data = image_dataset_from_folder(str(tmp_path / "d"), image_size=8, batch_size=2, cache=str(cache),
                                     shuffle=False)
    first = _all(data.train)[0]
    assert any(p.name.startswith("train") for p in (tmp_path / "cache").iterdir())
    assert np.array_equal(first, _all(data.train)[0])


def test_webp_and_animated_gif_decode_to_their_first_frame(tmp_path):
    """WebP (lossless) and multi-frame GIF files are used, decoded to RGB; a GIF gives its first frame."""
    rng = np.random.default_rng(0)
    for label, offset in (("a", 0), ("b", 120)):
        os.makedirs(tmp_path / label)
        for i in range(2):
            pixels = (rng.integers(0, 8, (24, 32, 3)) * 16 + offset).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.webp", lossless=True)
            first = Image.fromarray(pixels).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
            second = Image.fromarray(255 - pixels).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
            first.save(tmp_path / label / f"{i}.gif", save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(tmp_path / "a" / "0.gif") as im:
        assert im.n_frames == 2  # really animated
    data = image_dataset_from_folder(str(tmp_path), image_size=(24, 32), batch_size=64, shuffle=False)
    assert data.summary.used == 8 and not data.summary.skipped
    x, _ = _all(data.train)
    for image, path in zip(x, data.files["train"]):
        with Image.open(path) as im:  # frame 0 as Pillow reads it back
            reference = np.asarray(im.convert("RGB"), dtype=np.float32)
            if path.endswith(".gif"):
                im.seek(1)
                other = np.asarray(im.convert("RGB"), dtype=np.float32)
                assert np.abs(image - other).max() > 50, f"{path}: not the second frame"
        assert np.abs(image - reference).max() <= 1, path
