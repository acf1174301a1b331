"""Re-running the export stage with fewer variants removes the earlier run's files of the dropped
variants (and the verify stage a remedy file it did not make again); a user's own files in export/
stay. The converter is replaced by a stand-in that writes the same file names, so this runs in a second."""

import os
import types

import pytest

import tfxfer.export
from tfxfer.recipes import load_config
from tfxfer.recipes.context import RunContext
from tfxfer.recipes.export_files import remove_stale
from tfxfer.recipes.export_stages import convert_stage, export_stages
from tfxfer.recipes.runner import Runner, Stage
from tests.recipes.helpers import recipe


class ConversionFailed(Exception):
    pass


@pytest.fixture
def converter(monkeypatch):
    calls = {"fail": False}

    def convert_variants(model, out_dir, *, variants, name, progress=None, **_):
        if calls["fail"]:
            raise ConversionFailed("stand-in conversion failed")
        os.makedirs(out_dir, exist_ok=True)
        out = {}
        for variant in variants:
            path = os.path.join(out_dir, f"{name}_{variant}.tflite")
            sidecar = os.path.splitext(path)[0] + ".json"
            for file, text in ((path, variant), (sidecar, "{}")):
                with open(file, "w") as f:
                    f.write(text)
            out[variant] = types.SimpleNamespace(path=path, sidecar_path=sidecar, size_bytes=len(variant))
        return out

    monkeypatch.setattr(tfxfer.export, "convert_variants", convert_variants)
    return calls


def _export(run_dir, variants, *, force=False):
    cfg = load_config(recipe("quick"), overrides=["name=m", "export.deliver=float32", f"export.variants=[{', '.join(variants)}]"])
    ctx = RunContext(cfg, run_dir)
    ctx.outputs["finetune"] = {"model": "model/m.keras"}
    ctx.remember("model:model/m.keras", object())  # ctx.model(): the stand-in converter ignores it
    stage = Stage("export", lambda c: convert_stage(c, class_names=["a", "b"]), config=export_stages()[0].config)
    return Runner(ctx, force=force).execute(stage)


def _files(run_dir):
    return sorted(os.listdir(os.path.join(run_dir, "export")))


def test_fewer_variants_remove_the_dropped_files(converter, tmp_path):
    _export(tmp_path, ["float32", "int8"])
    (tmp_path / "export" / "notes.txt").write_text("a user's file")
    (tmp_path / "export" / "other_int8.tflite").write_text("not listed by the stage")
    assert _files(tmp_path) == ["m_float32.json", "m_float32.tflite", "m_int8.json", "m_int8.tflite", "notes.txt",
                                "other_int8.tflite"]
    record = _export(tmp_path, ["float32"])
    assert not record["skipped"] and list(record["outputs"]["exports"]) == ["float32"]
    assert _files(tmp_path) == ["m_float32.json", "m_float32.tflite", "notes.txt", "other_int8.tflite"]
    _export(tmp_path, ["float32"], force=True)  # nothing more to remove; the current files stay
    assert _files(tmp_path) == ["m_float32.json", "m_float32.tflite", "notes.txt", "other_int8.tflite"]


def test_files_of_a_run_before_a_failed_one_are_still_removed(converter, tmp_path):
    _export(tmp_path, ["float32", "int8"])
    converter["fail"] = True
    with pytest.raises(ConversionFailed):
        _export(tmp_path, ["float32"])  # its record no longer lists the files; it carries them forward
    converter["fail"] = False
    _export(tmp_path, ["float32"])
    assert _files(tmp_path) == ["m_float32.json", "m_float32.tflite"]


def test_verify_removes_a_remedy_file_it_did_not_make_again(tmp_path):
    ctx = RunContext(load_config(recipe("quick")), tmp_path)
    export = tmp_path / "export"
    export.mkdir()
    for name in ("m_int8_selective.tflite", "m_int8_selective.json", "m_int8.tflite", "m_int8.json", "gate.json"):
        (export / name).write_text("x")
    (tmp_path / "keep.txt").write_text("outside export/")
    ctx.remember("previous:verify", {"outputs": {}, "artefacts": [
        "export/gate.json", "export/m_int8.json", "export/m_int8_selective.tflite", "../keep.txt",
        "export/../keep.txt", "/etc/passwd"]})
    removed = remove_stale(ctx, "verify", keep={"export/gate.json", "export/m_int8.tflite", "export/m_int8.json"})
    assert removed == ["export/m_int8_selective.json", "export/m_int8_selective.tflite"]
    assert sorted(os.listdir(export)) == ["gate.json", "m_int8.json", "m_int8.tflite"]
    assert (tmp_path / "keep.txt").exists()
