"""Fixtures for the pipeline tests."""

import types

import pytest

from tests.factories import make_conll_file, make_image_folder, make_text_preset, make_text_table


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"))


#: The ner run's extra keys: its token-id files are benchmarked (test_text_end_to_end reads the latency).
NER_EXTRA = ["export.benchmark=true", "export.bench_runs=2", "export.threads=[1]"]


@pytest.fixture(scope="session")
def text_runs(tmp_path_factory):
    """One tiny text_classification run and one tiny ner run (a 1-layer random local preset, tiny files),
    made once and shared by test_text_end_to_end.py and test_text_evaluate.py. Read-only: a test that
    re-runs a stage in a run folder copies it first."""
    from tests.recipes.helpers import recipe, tiny_text_overrides
    from tfxfer.recipes import load_config, run_pipeline

    folder = tmp_path_factory.mktemp("text_runs")
    preset = make_text_preset(folder / "preset")
    reviews, tags = make_text_table(folder), make_conll_file(folder)
    clf_cfg = load_config(recipe("text_classification"), overrides=tiny_text_overrides(reviews, preset))
    ner_cfg = load_config(recipe("ner"), overrides=tiny_text_overrides(tags, preset, extra=NER_EXTRA))
    return types.SimpleNamespace(
        preset=preset, reviews=reviews, tags=tags, clf_cfg=clf_cfg, ner_cfg=ner_cfg,
        clf=run_pipeline(clf_cfg, out_dir=folder / "text_classification", verbosity=0),
        ner=run_pipeline(ner_cfg, out_dir=folder / "ner", verbosity=0))
