"""`data.allow_outside_root`: an image table's rows that lead outside its folder are read only when asked."""

import os

import pytest

from tests.factories import make_image_folder
from tfxfer.errors import ConfigError, DataError
from tfxfer.recipes.config_loader import load_config
from tfxfer.recipes.image_data import load_image_data
from tfxfer.recipes.sources import resolve_source


def _table_outside(tmp_path):
    images = make_image_folder(str(tmp_path / "images"), classes=("circle", "square"), per_class=8, size=16)
    table_dir = tmp_path / "table"
    table_dir.mkdir()
    rows = ["path,label"]
    for label in ("circle", "square"):
        for name in sorted(os.listdir(os.path.join(images, label))):
            rows.append(f"{os.path.join(images, label, name)},{label}")  # absolute: outside the table's folder
    table = table_dir / "data.csv"
    table.write_text("\n".join(rows) + "\n")
    return str(table)


def _load(table, **data):
    keys = ", ".join(f"{k}: {str(v).lower()}" for k, v in data.items())
    cfg = load_config(text=f"data: {{source: {table}, validation_split: 0.25, test_split: 0.25{', ' + keys if keys else ''}}}\n"
                           "model: {backbone: mobilenet_v3_small, weights: null}\n")
    return cfg, load_image_data(cfg, resolve_source(cfg), image_size=(16, 16))


def test_rows_outside_the_table_folder_are_refused_by_default(tmp_path):
    table = _table_outside(tmp_path)
    with pytest.raises(DataError, match="allow_outside_root"):
        _load(table)


def test_allow_outside_root_reads_them(tmp_path):
    table = _table_outside(tmp_path)
    cfg, data = _load(table, allow_outside_root=True)
    assert cfg.data.allow_outside_root is True
    assert sorted(data.class_names) == ["circle", "square"]
    total = sum(int(x.shape[0]) for split in (data.train_plain, data.val, data.test) for x, _ in split)
    assert total == 16


def test_allow_outside_root_must_be_a_boolean():
    with pytest.raises(ConfigError, match="allow_outside_root"):
        load_config(text="data: {source: animal_mnist, allow_outside_root: maybe}\n")
