"""Re-running the export stage with fewer variants removes the earlier run's files of the dropped
variants (and the verify stage a remedy file it did not make again, or the ``export/serving/`` folder
it no longer writes, which a re-run that writes it replaces whole; the causal-LM verify stage its
decoder files and ``export/saved_model/``); a user's own files in export/ stay. The converters, gates
and SavedModel writers are stand-ins that write the same names, so each test runs in about a second."""

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


def test_verify_removes_a_folder_it_listed_whole_and_nothing_else(tmp_path):
    """A folder the last finished run listed under "folders" and this one did not write goes whole; a
    user's folder, a listed path outside export/ and a listed link (not what it points to) are safe."""
    ctx = RunContext(load_config(recipe("quick")), tmp_path)
    serving = tmp_path / "export" / "serving" / "m" / "1"
    serving.mkdir(parents=True)
    (serving / "saved_model.pb").write_text("x")
    (tmp_path / "export" / "mine").mkdir()
    (tmp_path / "export" / "mine" / "a.txt").write_text("a user's folder")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "b.txt").write_text("outside export/")
    os.symlink(tmp_path / "outside", tmp_path / "export" / "linked")
    ctx.remember("previous:verify", {"outputs": {"folders": ["export/serving", "export/linked", "export", "../outside",
                                                             "export/../outside"]}, "artefacts": []})
    removed = remove_stale(ctx, "verify", keep={"export/gate.json"})
    assert removed == ["export/linked", "export/serving"]
    assert _files(tmp_path) == ["mine"] and (tmp_path / "outside" / "b.txt").exists()


@pytest.fixture
def serving(monkeypatch):
    """A stand-in `export_serving` that writes as the real one does (the next version under
    ``<base>/<name>/``, then ``models.config``) and records what it saw of the final folder meanwhile."""
    from tfxfer.export.serving import write_models_config

    seen = []

    def export_serving(model, base_dir, *, name, serving_base_path=None, **_):
        final = os.path.join(serving_base_path, name, "1", "saved_model.pb")
        seen.append(open(final).read() if os.path.exists(final) else None)  # the earlier folder, intact
        folder = os.path.join(base_dir, name)
        version = 1 + max((int(v) for v in os.listdir(folder)), default=0) if os.path.isdir(folder) else 1
        path = os.path.join(folder, str(version))
        os.makedirs(path)
        with open(os.path.join(path, "saved_model.pb"), "w") as f:
            f.write(f"run {len(seen)}")
        write_models_config(base_dir, serving_base_path=serving_base_path)
        return types.SimpleNamespace(path=path)

    monkeypatch.setattr(tfxfer.export, "export_serving", export_serving)
    return seen


def _verify(run_dir, monkeypatch, *, saved_model, force=False):
    """The verify stage (`gate_stage`) of a run whose gate and tables are stand-ins: only the serving
    folder and the removal of stale outputs are real."""
    from tfxfer.recipes import export_stages as module
    from tfxfer.recipes.export_stages import gate_stage

    results = types.SimpleNamespace(results={"float32": types.SimpleNamespace(passed=True)})
    monkeypatch.setattr(tfxfer.export, "gate_variants", lambda *args, **kwargs: results)
    monkeypatch.setattr(module, "record_gate", lambda ctx, *args, saved_model=None: {
        "passed": True, "saved_model": ctx.rel(saved_model) if saved_model else None, "artefacts": []})
    cfg = load_config(recipe("quick"), overrides=["name=m", "export.benchmark=false",
                                                  f"export.saved_model={str(saved_model).lower()}"])
    ctx = RunContext(cfg, run_dir)
    ctx.outputs["export"] = {"exports": {"float32": {"path": "export/m_float32.tflite"}},
                             "artefacts": ["export/m_float32.tflite"]}
    ctx.remember("model:model/m.keras", object())
    ctx.outputs["finetune"] = {"model": "model/m.keras"}
    stage = Stage("verify", lambda c: gate_stage(c, eval_data=None, class_names=["a", "b"],
                                                 saved_model=c.cfg.export.saved_model),
                  config=export_stages()[1].config)
    return Runner(ctx, force=force).execute(stage)


def test_the_serving_folder_is_replaced_whole_and_removed_when_no_longer_asked_for(serving, monkeypatch, tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "m_float32.tflite").write_text("the export stage's file")
    record = _verify(tmp_path, monkeypatch, saved_model=True)
    assert record["outputs"]["folders"] == ["export/serving"]
    assert record["outputs"]["saved_model"] == "export/serving/m/1"
    _verify(tmp_path, monkeypatch, saved_model=True, force=True)  # exported again: replaced, atomically
    folder = tmp_path / "export" / "serving"
    assert sorted(os.listdir(folder / "m")) == ["1"]  # not a version 2 beside version 1
    assert (folder / "m" / "1" / "saved_model.pb").read_text() == "run 2"
    assert serving == [None, "run 1"]  # the earlier folder stayed whole while the new one was written
    assert f'base_path: "{folder}/m"' in (folder / "models.config").read_text()  # the final folder, not staging
    assert _files(tmp_path) == ["m_float32.tflite", "serving"]  # no staging folder left behind
    (tmp_path / "export" / "mine").mkdir()
    record = _verify(tmp_path, monkeypatch, saved_model=False)  # no longer asked for: removed
    assert not record["skipped"] and record["outputs"]["folders"] == [] and record["outputs"]["saved_model"] is None
    assert _files(tmp_path) == ["m_float32.tflite", "mine"]


@pytest.fixture
def decoder(monkeypatch):
    """Stand-ins for `save_decoder` and the causal LM's `save_generate_savedmodel`: the same file names."""
    import tfxfer.causal_lm
    import tfxfer.export.decoder_tflite

    def save_decoder(lm, folder, *, name, quantization, **_):
        os.makedirs(folder, exist_ok=True)
        paths = {key: os.path.join(folder, name + suffix)
                 for key, suffix in (("model", ".tflite"), ("sidecar", ".json"), ("tokenizer", ".tokenizer.json"))}
        for path in paths.values():
            with open(path, "w") as f:
                f.write(quantization or "float32")
        report = types.SimpleNamespace(variant=quantization or "float32", passed=True, failures=[], size_mib=0.1,
                                       top1_agreement=1.0, perplexity_change=0.0, ms_per_token=1.0, positions=4,
                                       format=lambda: "decoder: PASS")
        return {**paths, "quantization": quantization, "gate": report, "rejected": []}

    def save_generate_savedmodel(lm, path, *, max_new_tokens):
        os.makedirs(os.path.join(path, "variables"))
        for name in ("saved_model.pb", "variables/variables.index"):
            with open(os.path.join(path, name), "w") as f:
                f.write("x")
        return path

    monkeypatch.setattr(tfxfer.export.decoder_tflite, "save_decoder", save_decoder)
    monkeypatch.setattr(tfxfer.causal_lm, "save_generate_savedmodel", save_generate_savedmodel, raising=False)


def _lm_verify(run_dir, *, saved_model, previous=None):
    """The causal-LM verify stage on a stand-in model and corpus (the decoder writers are stand-ins too)."""
    from tfxfer.recipes.causal_lm_stages import causal_lm_stages, run_verify

    cfg = load_config(recipe("causal_lm"), overrides=[f"causal_lm.export.saved_model={str(saved_model).lower()}"])
    ctx = RunContext(cfg, run_dir)
    ctx.remember("lm_corpus", {"gate": ["the cat sat"]})
    ctx.remember("lm_adapted", types.SimpleNamespace(context_length=64))
    if previous is not None:
        ctx.remember("previous:verify", previous)
        return run_verify(ctx)
    config = next(s for s in causal_lm_stages(cfg) if s.name == "verify").config
    record = Runner(ctx).execute(Stage("verify", run_verify, config=config))
    return {**record["outputs"], "artefacts": sorted(record["artefacts"])}


def test_the_causal_lm_verify_stage_removes_what_its_last_run_wrote_and_this_one_did_not(decoder, tmp_path):
    decoder_files = ["decoder.json", "decoder.tflite", "decoder.tokenizer.json"]
    out = _lm_verify(tmp_path, saved_model=True)
    assert out["folders"] == ["export/saved_model"] and "export/saved_model/saved_model.pb" in out["artefacts"]
    assert _files(tmp_path) == [*decoder_files, "saved_model"]
    (tmp_path / "export" / "notes.txt").write_text("a user's file")
    out = _lm_verify(tmp_path, saved_model=False)  # the SavedModel is no longer asked for: removed whole
    assert out["folders"] == [] and out["saved_model"] is None
    assert _files(tmp_path) == [*decoder_files, "notes.txt"]
    # a last run that shipped another file (as a record lists it): its decoder, sidecar and tokenizer go
    old = ["export/decoder_int8.tflite", "export/decoder_int8.json", "export/decoder_int8.tokenizer.json"]
    for rel in old:
        (tmp_path / rel).write_text("int8")
    _lm_verify(tmp_path, saved_model=False, previous={"outputs": {}, "artefacts": old + ["export/decoder.tflite"]})
    assert _files(tmp_path) == [*decoder_files, "notes.txt"]
