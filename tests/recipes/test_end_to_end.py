"""Recipes end to end on tiny overrides: report, manifest and a gated TFLite file; resume after a
crash in the export stage without redoing fine-tuning; re-running skips unchanged stages."""

import json
import os

import numpy as np
import pytest

from tests.recipes.helpers import recipe, tiny_overrides
from tfxfer.errors import ConfigError, ExportError


def _manifest(run_dir):
    with open(os.path.join(run_dir, "manifest.json")) as f:
        return json.load(f)


def _check_outputs(run_dir, name, *, channels, deliver="int8"):
    from ai_edge_litert.interpreter import Interpreter

    manifest = _manifest(run_dir)
    assert manifest["status"] == "ok" and manifest["gate"]["passed"] is True
    assert manifest["data"]["fingerprint"] and len(manifest["data"]["fingerprint"]) == 64
    assert manifest["packages"]["tensorflow"] and manifest["seeds"]["seed"] == 0
    assert manifest["config"]["name"] == name
    tflite = os.path.join(run_dir, manifest["gate"]["deliver"])
    assert tflite.endswith(f"{name}_{deliver}.tflite") and os.path.isfile(tflite)
    rel = os.path.relpath(tflite, run_dir)
    from tfxfer.recipes.fingerprint import file_sha256

    assert manifest["artefacts"][rel]["sha256"] == file_sha256(tflite)
    with open(tflite[:-len(".tflite")] + ".json") as f:
        sidecar = json.load(f)
    assert sidecar["gate"]["passed"] is True and sidecar["class_names"] == ["circle", "square", "stripes"]
    interpreter = Interpreter(model_path=tflite)
    assert list(interpreter.get_input_details()[0]["shape"][1:]) == [32, 32, channels]
    html = open(os.path.join(run_dir, "report", "report.html"), encoding="utf-8").read()
    assert 'id="export-table"' in html and "int8" in html and "data:image/png;base64," in html
    assert "empty_file" in html  # the broken file is listed among the skipped files
    md = open(os.path.join(run_dir, "report", "report.md"), encoding="utf-8").read()
    assert "| variant |" in md and "int8" in md
    for png in ("training_curves", "confusion", "reliability", "class_counts", "export"):
        assert os.path.getsize(os.path.join(run_dir, "report", f"{png}.png")) > 1000
    with open(os.path.join(run_dir, "model", "history.json")) as f:
        history = json.load(f)
    assert [s["epoch"] for s in history["stages"]] == [0, 1] and history["lr_steps"]
    assert os.listdir(os.path.join(run_dir, "tensorboard"))
    return manifest


def test_quick_recipe_crash_resume_and_rerun(image_folder, tmp_path, monkeypatch, capsys):
    from tfxfer import cli
    from tfxfer.recipes import export_stages

    out = str(tmp_path / "run")
    argv = ["run", recipe("quick"), "--out", out, "-q", "--allow-chance"] + [  # random weights: may be at chance
        a for s in tiny_overrides(image_folder) for a in ("--set", s)]

    def crash(ctx):
        raise ExportError("simulated crash after fine-tuning")

    monkeypatch.setattr(export_stages, "run_export", crash)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "tfxfer: error: simulated crash after fine-tuning"
    assert "Traceback" not in "\n".join(err)
    failed = _manifest(out)
    assert failed["status"] == "failed" and failed["stages"]["finetune"]["status"] == "done"
    finetune_record = json.load(open(os.path.join(out, "stages", "finetune.json")))
    model_mtime = os.path.getmtime(os.path.join(out, "model", "model.keras"))

    monkeypatch.undo()
    assert cli.main(argv + ["--resume"]) == 0
    printed = capsys.readouterr().out
    assert "Report:" in printed and "TFLite:" in printed and "quick_int8.tflite" in printed
    manifest = _check_outputs(out, "quick", channels=1)
    assert manifest["stages"]["finetune"]["status"] == "skipped"  # fine-tuning was not redone
    assert manifest["stages"]["export"]["status"] == "done"
    assert json.load(open(os.path.join(out, "stages", "finetune.json")))["fingerprint"] == finetune_record["fingerprint"]
    assert os.path.getmtime(os.path.join(out, "model", "model.keras")) == model_mtime
    assert not os.path.exists(os.path.join(out, "checkpoints"))  # per-epoch checkpoints go once the model is saved

    assert cli.main(argv) == 0  # unchanged: every stage is reused
    statuses = {k: v["status"] for k, v in _manifest(out)["stages"].items()}
    assert statuses == {"data": "skipped", "features": "skipped", "finetune": "skipped", "evaluate": "skipped",
                        "export": "skipped", "verify": "skipped", "report": "done"}

    # a stricter gate re-runs only verify (and the report); the run fails with exit code 3
    assert cli.main(argv + ["--set", "export.thresholds.int8.max_abs_error=0"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tfxfer: error: verification gate failed for int8; see the export")
    gated = _manifest(out)
    # the int8 file failed, so the float32 file that passed ships instead (and the run still says gate_failed)
    assert gated["status"] == "gate_failed" and gated["gate"]["deliver"] == "export/quick_float32.tflite"
    assert gated["stages"]["export"]["status"] == "skipped" and gated["stages"]["verify"]["status"] == "done"
    html = open(os.path.join(out, "report", "report.html"), encoding="utf-8").read()
    assert "int8: max abs error" in html and '<span class="fail">FAIL</span>' in html

    assert cli.main(argv + ["--resume", "--set", "train.epochs=2"]) == 2
    err = capsys.readouterr().err
    assert "--resume: the recipe differs from the interrupted run in" in err and "train.epochs" in err


@pytest.mark.slow
def test_default_image_recipe_on_a_tiny_folder(image_folder, tmp_path):
    from tfxfer.recipes import load_config, run_pipeline

    cfg = load_config(recipe("image_classification"), overrides=tiny_overrides(image_folder, extra=[
        "export.benchmark=false", "export.variants=[int8]", "quantize.enabled=false", "data.augment=light",
        "train.label_smoothing=0.1", "train.average_weights=ema"]))
    assert cfg.train.class_weight == "none" and cfg.data.color_mode == "grayscale"  # weights off by default
    result = run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
    selection = json.loads(open(os.path.join(result.run_dir, "model", "history.json")).read())["selection"]
    assert selection["averaging"] == "ema" and isinstance(selection["kept_average"], bool)  # the key reached training
    manifest = _check_outputs(result.run_dir, "image_classification", channels=1)
    assert result.tflite and result.gate_passed and 0.0 <= result.metrics["accuracy"] <= 1.0
    rows = manifest["gate"]["rows"]
    assert [r["variant"] for r in rows] == ["int8"] and rows[0]["latency_ms"] is None
    from tfxfer.recipes.inference import open_model

    keras_model = open_model(result.run_dir)
    file_model = open_model(result.tflite)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    assert keras_model.class_names == file_model.class_names == ["circle", "square", "stripes"]
    assert keras_model.predict(x).shape == file_model.predict(x).shape == (4, 3)


@pytest.mark.slow
def test_edge_recipe_distills_and_delivers_the_qat_file(image_folder, tmp_path):
    from tfxfer.recipes import load_config, run_pipeline

    cfg = load_config(recipe("edge"), overrides=tiny_overrides(image_folder, extra=[
        "export.benchmark=false", "distill.epochs=1", "distill.teacher_epochs=0", "distill.teacher_weights=null"]))
    assert cfg.distill.enabled and cfg.quantize.enabled and cfg.distill.teacher == "efficientnet_lite2"
    result = run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
    manifest = _check_outputs(result.run_dir, "edge", channels=1, deliver="int8_qat")
    assert [r["variant"] for r in manifest["gate"]["rows"]] == ["float32", "int8", "int8_qat"]
    assert set(manifest["stages"]) >= {"distill", "quantize"}
    assert manifest["artefacts"]["distill/student.keras"]["stage"] == "distill"
    with open(os.path.join(result.run_dir, "stages", "distill.json")) as f:
        retention = json.load(f)["outputs"]["retention"]
    assert retention["student_params"] < retention["teacher_params"]


def test_edge_options_that_are_not_wired_are_refused_up_front(image_folder, tmp_path):
    from tfxfer.recipes import load_config, run_pipeline

    for extra, message in ((["quantize.method=prune"], r"`quantize\.method: prune` is not wired"),
                           (["export.variants=[float32]", "export.deliver=float32"], r"needs `int8`")):
        cfg = load_config(recipe("edge"), overrides=tiny_overrides(image_folder, extra=extra))
        with pytest.raises(ConfigError, match=message):
            run_pipeline(cfg, out_dir=tmp_path / "run", verbosity=0)
        assert not os.path.exists(tmp_path / "run")  # refused before anything ran
