"""`tfxfer.recipes.ranking`: what `tfxfer rank` ranks (the data kind, recipe inputs, candidates) and
its error paths; `tfxfer.recipes.catalog`: the data set and backbone tables."""

import os

import pytest

from tests.factories import make_image_folder
from tfxfer.errors import ArgumentError, ConfigError, UnknownNameError
from tfxfer.recipes import catalog, ranking

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICK = os.path.join(ROOT, "pipelines", "quick.yaml")
TEXT_RECIPE = os.path.join(ROOT, "pipelines", "text_classification.yaml")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("ranking") / "images", per_class=2)


def test_is_recipe():
    assert ranking.is_recipe("a/b.YAML") and ranking.is_recipe("x.yml")
    assert not ranking.is_recipe("animal_mnist") and not ranking.is_recipe("table.csv")


def test_image_rank_inputs_errors(folder, tmp_path):
    with pytest.raises(ArgumentError, match=r"`overrides` apply only when ranking from a recipe"):
        ranking.image_rank_inputs(folder, candidates=["mobilenet_v2"], overrides=["train.epochs=1"])
    with pytest.raises(ArgumentError, match=r"`candidates` are required when `data` is not a recipe"):
        ranking.image_rank_inputs(folder)
    for bad in (0, True, 32.0):
        with pytest.raises(ArgumentError, match=r"`input_size` must be an int >= 1 or None"):
            ranking.image_rank_inputs(folder, candidates=["mobilenet_v2"], input_size=bad)
    with pytest.raises(ConfigError, match=r"ranks image backbones; the recipe's task is 'text_classification'"):
        ranking.image_rank_inputs(TEXT_RECIPE)
    with pytest.raises(ConfigError, match=r"`data.source`: folder or file not found"):
        ranking.image_rank_inputs(QUICK, overrides=[f"data.source={tmp_path / 'missing'}"])


def test_image_rank_inputs_is_a_named_tuple(folder):
    inputs = ranking.image_rank_inputs(folder, candidates=["mobilenet_v2:random"], input_size=40)
    assert inputs.source == folder and inputs.channels == 3 and inputs.input_size == (40, 40)
    assert [c.label for c in inputs.candidates] == ["mobilenet_v2:random"]


def test_candidates_keep_order_drop_repeats_and_refuse_the_other_kind():
    labels = [c.label for c in ranking.image_candidates(["resnet50:random", " ", "mobilenet_v2", "resnet50:none"])]
    assert labels == ["resnet50:random", "mobilenet_v2"]
    with pytest.raises(ArgumentError, match=r"`candidates` must be image backbones: the data holds images"):
        ranking.image_candidates(["mobilenet_v2", "all-minilm-l6-v2"])
    with pytest.raises(UnknownNameError, match="mobilenet_v9"):
        ranking.image_candidates(["mobilenet_v9"])
    texts = ranking.text_candidates(["all-minilm-l6-v2", "all-minilm-l6-v2", "all-minilm-l6-v2:random@32"])
    assert [c.label for c in texts] == ["all-minilm-l6-v2", "all-minilm-l6-v2:random@32"]
    with pytest.raises(ArgumentError, match="must be text encoders for text data"):
        ranking.text_candidates(["mobilenet_v2"])


def test_is_text_source_refuses_ner_data():
    with pytest.raises(ArgumentError, match=r"`data` must be a classification data set; `tfxfer rank` does not rank NER"):
        ranking.is_text_source("wnut16")


def test_probe_target():
    class Result:
        best = None

    candidates = ranking.image_candidates(["mobilenet_v2:random", "resnet50:random"])
    assert ranking.probe_target(Result(), candidates) is None
    Result.best = {"candidate": "resnet50:random"}
    assert ranking.probe_target(Result(), candidates) is candidates[1]


def test_catalog_tables_and_errors():
    lines = catalog.backbone_table(family="efficientnet_lite").splitlines()
    assert lines[0].split() == ["name", "family", "input", "params", "fp32", "MiB", "weights"]
    assert [line.split()[0] for line in lines[1:]] == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    with pytest.raises(UnknownNameError, match="Unknown backbone family 'mobilenet_v9'"):
        catalog.backbone_table(family="mobilenet_v9")
    table = catalog.dataset_table(task="text_classification")
    assert "sentiment_movies" in table and "animal_mnist" not in table
    assert catalog.dataset_description("elpv").startswith("elpv: ")
    with pytest.raises(UnknownNameError, match="Did you mean: 'elpv'"):
        catalog.dataset_description("elvp")
