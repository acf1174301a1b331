"""``task: causal_lm`` recipes: strict keys, and pipelines/causal_lm.yaml end to end on a tiny random
Llama in a fresh process (`tfxfer run`): adapt -> evaluate -> verify (gated TFLite decoder with the
float16 fallback) -> report."""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.recipes.helpers import ROOT, recipe
from tfxfer.errors import ConfigError
from tfxfer.recipes.config_loader import load_config

BASE = "task: causal_lm\ndata: {source: bbc_news}\n"


def test_the_shipped_recipe_loads_with_its_documented_values():
    cfg = load_config(recipe("causal_lm"))
    c = cfg.causal_lm
    assert (cfg.task, cfg.data.source, c.model, c.lora_rank, c.budget_s) == (
        "causal_lm", "bbc_news", "smollm2-135m", 16, 780.0)
    assert (c.export.quantization, c.export.fallback, c.export.min_top1_agreement) == (
        "float16", ("float16", "float32"), 0.99)


@pytest.mark.parametrize("text,match", [
    ("train: {epochs: 3}", r"`train.epochs` is not used by task 'causal_lm'; use `causal_lm.epochs`"),
    ("train: {epochs: 2}", r"`train.epochs` is not used"),  # even set to train.epochs' own default
    ("distill: {enabled: false}", r"`distill.enabled` is not used .*; remove it"),
    ("data: {source: bbc_news, augment: none}", r"`data.augment` is not used"),
    ("model: {backbone: x}", r"`model.backbone` is not used .*; use `causal_lm.model`"),
    ("data: {source: bbc_news, max_train: 5}", r"`data.max_train` .*; use `causal_lm.train_texts`"),
    ("export: {variants: [float16], deliver: float16}", r"`export.variants` .*causal_lm.export.quantization"),
    ("causal_lm: {export: {quantization: int9}}",
     r"`causal_lm.export.quantization` must be one of .* Did you mean 'int8'"),
    ("causal_lm: {export: {fallback: [float16, fp32]}}", r"`causal_lm.export.fallback\[1\]` must be one of"),
    ("causal_lm: {lora_rank: 0}", r"`causal_lm.lora_rank` must be an integer >= 1 \(or null\)"),
    ("causal_lm: {warmup_share: 1.0}", r"`causal_lm.warmup_share` must be a finite number in \[0, 1\)"),
    ("causal_lm: {budget_s: 0}", r"`causal_lm.budget_s` must be a finite number > 0"),
    ("causal_lm: {lr_decay: cosin}", r"`causal_lm.lr_decay` .* Did you mean 'cosine'"),
    ("causal_lm: {prompts: ['  ']}", r"`causal_lm.prompts\[0\]` must be a non-empty string"),
    ("causal_lm: {lora_rnk: 4}", r"unknown key `causal_lm.lora_rnk`. Did you mean `causal_lm.lora_rank`"),
])
def test_bad_causal_lm_keys_are_config_errors(text, match):
    with pytest.raises(ConfigError, match=match):
        load_config(text=("task: causal_lm\n" if text.startswith("data:") else BASE) + text)


def test_overrides_are_checked_too():
    with pytest.raises(ConfigError, match="`train.epochs` is not used"):
        load_config(recipe("causal_lm"), overrides=["train.epochs=2"])
    with pytest.raises(ConfigError, match="`model.backbone` is not used"):
        load_config(text="data: {source: bbc_news}\nmodel: {backbone: x}", overrides=["task=causal_lm"])


def test_the_causal_lm_section_belongs_to_its_task():
    with pytest.raises(ConfigError, match="`causal_lm.lora_rank` is read by task 'causal_lm' only"):
        load_config(text="data: {source: animal_mnist}\ncausal_lm: {lora_rank: 4}")
    assert load_config(text="data: {source: animal_mnist}").causal_lm.lora_rank == 16  # defaults are fine


def test_the_corpus_is_checked_before_anything_runs(tmp_path):
    from tfxfer.recipes.run import plan_stages

    with pytest.raises(ConfigError, match="holds image_classification data"):
        plan_stages(load_config(text="task: causal_lm\ndata: {source: animal_mnist}"))
    table = tmp_path / "texts.csv"
    table.write_text("text\nhello\n")
    with pytest.raises(ConfigError, match="is not a .txt or .md file"):
        plan_stages(load_config(text=f"task: causal_lm\ndata: {{source: '{table}'}}"))
    with pytest.raises(ConfigError, match="Did you mean 'bbc_news'"):
        plan_stages(load_config(text="task: causal_lm\ndata: {source: bbc_new}"))
    names = [s.name for s in plan_stages(load_config(text=BASE))]
    assert names == ["data", "adapt", "evaluate", "verify", "report"]
    assert "verify" not in [s.name for s in plan_stages(load_config(text=BASE + "causal_lm: {export: {enabled: false}}"))]


def _tiny_model_and_corpus(tmp_path):
    from tests.causal_lm.helpers import write_tiny_gguf
    from tfxfer.causal_lm import load_causal_lm, save_causal_lm

    write_tiny_gguf(tmp_path / "tiny.gguf")
    lm = load_causal_lm(str(tmp_path / "tiny.gguf"), cache_dir=str(tmp_path / "cache"))
    save_causal_lm(lm, tmp_path / "tiny-lm")
    docs = [f"the cat {i} sat on the mat and the dog ran {i % 3} times around the garden" for i in range(30)]
    (tmp_path / "corpus.txt").write_text("\n\n".join(docs), encoding="utf-8")
    return tmp_path / "tiny-lm", tmp_path / "corpus.txt"


def test_recipe_end_to_end_in_a_fresh_process(tmp_path, capsys, monkeypatch):
    import warnings

    from tfxfer import cli

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # cli.main sets it; restored after
    model, corpus = _tiny_model_and_corpus(tmp_path)
    out = tmp_path / "run"
    # int8 asked for under a perplexity limit it cannot meet: float16 ships, and the run says why.
    sets = [f"data.source={corpus}", f"causal_lm.model={model}", "causal_lm.train_texts=null",
            "causal_lm.val_texts=null", "causal_lm.sequence_length=16", "causal_lm.batch_size=4", "causal_lm.epochs=2",
            "causal_lm.lora_rank=2", "causal_lm.budget_s=null", "causal_lm.max_new_tokens=4",
            "causal_lm.prompts=['the cat', 'the dog ran']", "causal_lm.export.cache_length=32",
            "causal_lm.export.quantization=int8", "causal_lm.export.max_perplexity_change=0.0005",
            "causal_lm.export.saved_model=true"]
    argv = [sys.executable, "-m", "tfxfer.cli", "run", recipe("causal_lm"), "--out", str(out)]
    for item in sets:
        argv += ["--set", item]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "int8 failed its gate" in done.stdout + done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "ok" and manifest["task"] == "causal_lm"
    metrics = manifest["metrics"]
    assert metrics["perplexity_after"] < metrics["perplexity_before"]  # two epochs on a repetitive corpus
    assert manifest["gate"]["passed"] is True and manifest["gate"]["deliver"] == "export/decoder.tflite"
    assert [r["variant"] for r in manifest["gate"]["rows"]] == ["int8", "float16"]
    assert [r["gate"] for r in manifest["gate"]["rows"]] == ["fail", "pass"]
    sidecar = json.loads((out / "export" / "decoder.json").read_text())
    assert (sidecar["quantization"], sidecar["requested"]) == ("float16", "int8")
    samples = json.loads((out / "eval" / "samples.json").read_text())
    assert [s["prompt"] for s in samples] == ["the cat", "the dog ran"]
    assert all(set(s) == {"prompt", "before", "after"} for s in samples)
    html = (out / "report" / "report.html").read_text()
    assert "Delivered decoder" in html and "int8 failed its gate" in html and "data:image/png;base64" in html
    # the device command the report prints runs on the shipped files (it named the .tflite, which the runner
    # cannot read: it takes the sidecar)
    command = re.search(r'<code>python (export/llm_runner\.py) (\S+) (?:"|&quot;)prompt(?:"|&quot;)</code>', html)
    ran = subprocess.run([sys.executable, command.group(1), str(out / command.group(2)), "the cat", "--max-new-tokens",
                          "2"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert (out / "report" / "perplexity.png").stat().st_size > 1000
    assert "the cat" in (out / "report" / "report.md").read_text()
    # the adapted model is saved with its LoRA rank, for `tfxfer generate <run>/model`
    assert json.loads((out / "model" / "causal_lm.json").read_text())["lora_rank"] == 2
    assert os.path.isfile(out / "model" / "causal_lm.weights.h5")
    # the SavedModel takes strings and gives the adapted model's greedy continuations
    assert manifest["config"]["causal_lm"]["export"]["saved_model"] is True
    assert (out / "export" / "saved_model" / "saved_model.pb").is_file()
    assert "SavedModel for TF Serving" in html
    import tensorflow as tf

    served = tf.saved_model.load(str(out / "export" / "saved_model")).signatures["generate"](
        prompts=tf.constant([s["prompt"] for s in samples]))
    assert [t.decode("utf-8") for t in served["text"].numpy()] == [s["after"] for s in samples]
    # `tfxfer report` re-renders the causal-LM report (not the classifier one)
    (out / "report" / "report.html").unlink()
    # (in this process: only the first run has to be a fresh one; each further `python -m tfxfer.cli` costs an
    # import of TensorFlow, and what the re-render and the rerun read is on disk)
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == 0, capsys.readouterr()
    assert "Delivered decoder" in (out / "report" / "report.html").read_text()
    # the same recipe again: every stage but the report is reused
    monkeypatch.chdir(ROOT)
    code = cli.main(argv[3:])
    again = capsys.readouterr()
    assert code == 0, again.out[-3000:] + again.err[-3000:]
    for stage in ("data", "adapt", "evaluate", "verify"):
        assert re.search(rf"{stage}\s+skipped", again.out), again.out[-2000:]


def test_the_recipe_offers_every_decoder_variant_the_exporter_writes():
    from tfxfer.export.decoder_tflite import QUANTIZATIONS as EXPORTER
    from tfxfer.recipes.causal_lm_config import QUANTIZATIONS as RECIPE

    assert set(RECIPE) == {"float32" if q is None else q for q in EXPORTER}
