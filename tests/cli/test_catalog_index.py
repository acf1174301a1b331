"""`tfxfer.recipes.catalog_index` (the TensorFlow-free snapshot behind `tfxfer datasets`, `tfxfer
backbones` and the early name checks) against the real catalogs, and the early checks against the
real ones they stand in for."""

import pytest

from tfxfer.errors import ConfigError, UnknownNameError
from tfxfer.recipes import catalog, catalog_index


def test_snapshot_matches_the_real_catalogs():
    """Fails after a catalog change: regenerate with `python -m tfxfer.recipes.catalog --write-index`."""
    backbones, datasets = catalog.build_index()
    assert list(catalog_index.BACKBONES) == list(backbones)  # same names, same (catalog) order
    assert catalog_index.BACKBONES == backbones
    assert list(catalog_index.DATASETS) == list(datasets)
    assert catalog_index.DATASETS == datasets
    assert catalog.index_source(backbones, datasets) == open(catalog_index.__file__, encoding="utf-8").read()


@pytest.mark.parametrize("name", ["EfficientNet-Lite0", "efficientnetlite0", " mobilenet_v2 ", "resnet50", "ResNet50V2",
                                  "efficientnet_lite9", "mobilenet", "vit"])
def test_backbone_names_resolve_like_get_spec(name):
    from tfxfer.backbones import get_spec

    try:
        expected = get_spec(name).name
    except UnknownNameError as exc:
        with pytest.raises(UnknownNameError) as ours:
            catalog.check_backbone(name)
        assert str(ours.value) == str(exc)
    else:
        assert catalog.check_backbone(name) == expected


def test_family_and_task_filters_match_the_real_catalogs():
    from tfxfer.backbones import list_backbones
    from tfxfer.data import describe, list_datasets

    for family in {i["family"] for i in catalog_index.BACKBONES.values()}:
        assert catalog.backbone_names(family=family) == list_backbones(family=family)
    with pytest.raises(UnknownNameError, match="Unknown backbone family 'mobilenet_v9'"):
        catalog.backbone_names(family="mobilenet_v9")
    for task in ("image_classification", "text_classification", "token_classification"):
        assert catalog.dataset_names(task=task) == list_datasets(task=task)
    with pytest.raises(UnknownNameError, match="Unknown task 'image'"):
        catalog.dataset_names(task="image")
    for name in list_datasets():
        assert catalog.dataset_info(name.upper().replace("_", "-"))["sizes"] == describe(name).sizes


@pytest.mark.parametrize("task, source", [
    ("image_classification", "animal_mnst"),
    ("image_classification", "sentiment_movies"),
    ("text_classification", "sms-spm"),
    ("image_classification", "photos/missing"),
    ("image_classification", "~/nope.csv"),
    ("token_classification", "zzz"),
])
def test_check_source_says_what_resolve_source_says(task, source):
    """The early check raises exactly the error the run would raise later (after importing TensorFlow)."""
    from tfxfer.recipes.config_loader import load_config
    from tfxfer.recipes.sources import resolve_source

    cfg = load_config(text=f"task: {task}\ndata: {{source: '{source}'}}")
    with pytest.raises(ConfigError) as real:
        resolve_source(cfg)
    with pytest.raises(ConfigError) as early:
        catalog.check_source(source, task=task)
    assert str(early.value) == str(real.value)


def test_check_source_accepts_what_resolve_source_accepts(tmp_path):
    for task, source in (("image_classification", "Animal-MNIST"), ("text_classification", "trec"),
                         ("image_classification", str(tmp_path))):
        catalog.check_source(source, task=task)  # no error
