"""Text classification and NER recipes end to end on a tiny random encoder (a local keras-hub
preset) and tiny files: report, manifest, gated token-id TFLite with its vocabulary.

The two recipe runs are the session's `text_runs` (tests/recipes/conftest.py), shared read-only with
test_text_evaluate.py; the gate-remedy test re-runs the verify stage in a copy of the classifier's run."""

import json
import os
import shutil

import pytest

from tests.recipes.helpers import recipe, tiny_text_overrides
from tfxfer import cli
from tfxfer.errors import GateError


@pytest.fixture
def text_inputs(text_runs):
    return text_runs.preset, text_runs.reviews, text_runs.tags


def _check(run_dir, name, deliver):
    with open(os.path.join(run_dir, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["status"] == "ok" and manifest["gate"]["passed"]
    assert manifest["gate"]["deliver"] == f"export/{name}_{deliver}.tflite"
    assert os.path.isfile(os.path.join(run_dir, "export", f"{name}_{deliver}.vocab.txt"))
    with open(os.path.join(run_dir, "export", f"{name}_{deliver}.json")) as f:
        sidecar = json.load(f)
    assert sidecar["gate"]["passed"] and sidecar["sequence_length"] == 16
    html = open(os.path.join(run_dir, "report", "report.html"), encoding="utf-8").read()
    assert 'id="export-table"' in html
    return manifest, html


def _one_error(capsys, argv):
    assert cli.main(argv) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfxfer: error: ")
    return lines[0]


def test_text_classification_recipe(text_runs, capsys):
    from tfxfer.recipes.inference import resolve_model_path

    reviews, result = text_runs.reviews, text_runs.clf  # the recipe with tiny_text_overrides only
    manifest, html = _check(result.run_dir, "text_classification", "dynamic")
    assert set(manifest["data"]["class_names"]) == {"neg", "pos"}
    assert 0.0 <= result.metrics["accuracy"] <= 1.0 and "macro_f1" in result.metrics
    assert "true → predicted" in html or "None to show" in html
    assert set(manifest["stages"]) == {"data", "features", "finetune", "evaluate", "export", "verify", "report"}
    assert resolve_model_path(result.run_dir).endswith("model.keras")
    assert cli.main(["predict", result.run_dir, "good film", "a dull plot", "-q"]) == 0  # loads the .keras file
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("good film: ") and {lines[0].split(": ")[1].split()[0]} <= {"pos", "neg"}
    assert "is a text .tflite file" in _one_error(capsys, ["predict", result.tflite, "good film"])
    assert cli.main(["evaluate", result.run_dir, reviews, "--json", "-q", "--allow-chance"]) == 0  # text models evaluate too (a tiny model may be at chance)
    assert json.loads(capsys.readouterr().out)["metrics"]["num_examples"] == 48  # the tfxfer/1 document


def test_failed_dynamic_file_is_replaced_by_the_weight_only_file(text_runs, tmp_path):
    """The export chain's text remedy: the dynamic file fails its gate (here forced: a zero abs-error limit that
    hybrid int8 kernels cannot meet), so the same int8 weights with float arithmetic are exported, gated on the
    same texts and delivered; the dynamic row stays in the table as FAIL and the run passes on the file it ships,
    which runs on the device side in a fresh process (runner + tokenizer, no TensorFlow)."""
    from tests.text.helpers import run_device_runner
    from tfxfer.recipes import load_config, run_pipeline

    preset, reviews = text_runs.preset, text_runs.reviews
    # a copy of the shared classifier run: only the thresholds change, so only verify (and the report) re-run
    shutil.copytree(text_runs.clf.run_dir, tmp_path / "run")
    forced = ["export.thresholds.dynamic.max_abs_error=0"]  # weight_only inherits it unless it sets its own limits
    cfg = load_config(recipe("text_classification"), overrides=tiny_text_overrides(
        reviews, preset, extra=[*forced, "export.thresholds.weight_only.min_top1_agreement=0.99"]))
    result = run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
    manifest, _ = _check(result.run_dir, "text_classification", "weight_only")
    assert manifest["stages"]["finetune"]["status"] == "skipped" and manifest["stages"]["verify"]["status"] == "done"
    with open(os.path.join(result.run_dir, "export", "table.json")) as f:
        table = json.load(f)
    assert table["superseded"] == ["dynamic"] and table["deliver_variant"] == "weight_only"
    assert table["deliver_reason"].startswith("dynamic failed its gate (max abs error")
    gates = {row["variant"]: row["gate"] for row in table["rows"]}
    assert gates == {"float32": "pass", "dynamic": "FAIL", "weight_only": "pass"}
    sizes = {row["variant"]: row["size_kib"] for row in table["rows"]}
    assert sizes["weight_only"] <= sizes["float32"]  # this tiny encoder's matrices are under int8_weights' floor
    folder = tmp_path / "device"
    folder.mkdir()
    for name in os.listdir(os.path.join(result.run_dir, "export")):
        if name.startswith("text_classification_weight_only"):  # .tflite, .json, .vocab.txt
            (folder / name).write_bytes(open(os.path.join(result.run_dir, "export", name), "rb").read())
    proc = run_device_runner(folder, folder / "text_classification_weight_only.tflite", ["good film", "a dull plot"],
                             "wordpiece_tokenizer.py", "--json", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["results"]) == 2
    # the remedy is held to the dynamic file's limits: here it fails too, is reported and not kept, and the run
    # fails with float32 delivered (only the verify stage re-runs in the same folder)
    cfg = load_config(recipe("text_classification"), overrides=tiny_text_overrides(reviews, preset, extra=forced))
    with pytest.raises(GateError):
        run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
    with open(os.path.join(result.run_dir, "export", "table.json")) as f:
        table = json.load(f)
    assert table["deliver_variant"] == "float32" and not table["passed"] and table["superseded"] == []
    assert sorted(row["variant"] for row in table["rows"]) == ["dynamic", "float32"]  # the remedy is not kept
    assert not any(n.startswith("text_classification_weight_only") for n in os.listdir(folder.parent / "run" / "export"))
    with open(os.path.join(result.run_dir, "stages", "verify.json")) as f:
        remedy = json.load(f)["outputs"]["remedy"]["weight_only"]
    assert remedy["passed"] is False and any("max abs error" in x for x in remedy["failures"])


def test_ner_recipe(text_runs, capsys):
    cfg, result = text_runs.ner_cfg, text_runs.ner  # benchmarked: tiny_text_overrides + conftest.NER_EXTRA
    manifest, html = _check(result.run_dir, "ner", "dynamic")
    assert manifest["data"]["class_names"][0] == "O"
    assert 0.0 <= result.metrics["entity_f1"] <= 1.0
    assert "Per entity type" in html and "geo-loc" in html
    assert os.listdir(os.path.join(result.run_dir, "tensorboard"))  # NER logs like the other recipes
    assert "export/ner_dynamic.tflite" in manifest["gate"]["deliver"]
    with open(os.path.join(result.run_dir, "export", "table.json")) as f:
        rows = json.load(f)["rows"]
    assert rows and all(row["latency_ms"] > 0 for row in rows)  # token-id files benchmarked in LiteRT
    with open(os.path.join(result.run_dir, "model", "history.json")) as f:
        history = json.load(f)
    assert history["lr_steps"] and history["lr_steps"][-1]["epoch"] > cfg.train.head_epochs - 1e-6
    assert cli.main(["predict", result.run_dir, "zoe visits paris", "--json", "-q"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]  # the tfxfer/1 document's results
    assert row["text"] == "zoe visits paris" and isinstance(row["result"], str)


def test_text_recipe_rejects_image_only_options(text_inputs, tmp_path):
    from tfxfer.errors import ConfigError
    from tfxfer.recipes import load_config, run_pipeline

    preset, reviews, _ = text_inputs
    cfg = load_config(recipe("text_classification"), overrides=tiny_text_overrides(
        reviews, preset, extra=["export.variants=[int8]", "export.deliver=int8"]))
    with pytest.raises(ConfigError, match=r"`export.variants`: \['int8'\] cannot hold a text encoder"):
        run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)


def test_text_recipe_model_weights(text_inputs, tmp_path):
    """A .weights.h5 path that does not exist (a typo) is an error naming `model.weights`, never a silent run
    from the preset's pretrained weights; an unknown word is refused before any stage runs."""
    import types

    from tfxfer.errors import ConfigError
    from tfxfer.recipes import load_config, run_pipeline
    from tfxfer.recipes.text_stages import encoder, encoder_weights

    preset, reviews, _ = text_inputs
    missing = str(tmp_path / "my_finetuned_encoder.weights.h5")
    model = types.SimpleNamespace(backbone=preset, weights=missing, sequence_length=16)
    with pytest.raises(ConfigError, match=r"`model.weights`: `weights` is not an existing file"):
        encoder(types.SimpleNamespace(cfg=types.SimpleNamespace(model=model)))
    assert [encoder_weights(w) for w in (None, "random", "pretrained", "imagenet", missing)] == [
        None, None, "pretrained", "pretrained", missing]
    cfg = load_config(recipe("text_classification"), overrides=tiny_text_overrides(
        reviews, preset, extra=["model.weights=pretrianed"]))
    with pytest.raises(ConfigError, match=r"`model.weights` must be 'pretrained'.*Received: 'pretrianed'"):
        run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
