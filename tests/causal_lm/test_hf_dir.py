"""load_causal_lm on a local Hugging Face Llama directory: same model as its GGUF twin."""

import dataclasses
import json
import os

import numpy as np
import pytest

from tfxfer.causal_lm import load_causal_lm
from tfxfer.causal_lm.hf_dir import hf_tokenizer
from tfxfer.errors import ModelError
from tests.causal_lm.bpe_reference import TRICKY
from tests.causal_lm.helpers import write_tiny_gguf

IDS = [1, 40, 71, 260, 3, 261, 90, 2]


def _logits(lm):
    x = np.asarray([IDS], dtype="int32")
    return np.asarray(lm.model({"token_ids": x, "padding_mask": np.ones_like(x, bool)}))


@pytest.mark.parametrize("tied", [True, False])
def test_hf_dir_matches_the_gguf_twin(tmp_path, tied):
    write_tiny_gguf(tmp_path / "m.gguf", hf_dir=tmp_path / "hf", tied=tied)
    from_gguf = load_causal_lm(str(tmp_path / "m.gguf"), cache_dir=str(tmp_path / "cache"))
    from_hf = load_causal_lm(str(tmp_path / "hf"))
    # GGUF stores rms_norm_eps as float32 (1e-5 -> 9.99999975e-06)
    assert from_hf.config == dataclasses.replace(from_gguf.config, layer_norm_epsilon=1e-5)
    assert from_hf.name == "hf"
    np.testing.assert_allclose(_logits(from_hf), _logits(from_gguf), atol=1e-5)
    assert (from_hf.tokenizer.bos_token_id, from_hf.tokenizer.eos_token_id) == (1, 2)
    for text in TRICKY:
        assert from_hf.tokenizer.encode(text) == from_gguf.tokenizer.encode(text)


def test_refuses_other_models_and_tokenizers(tmp_path):
    write_tiny_gguf(tmp_path / "m.gguf", hf_dir=tmp_path / "hf")
    config_file = tmp_path / "hf" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}))
    with pytest.raises(ModelError, match="rope_scaling"):
        load_causal_lm(str(tmp_path / "hf"))
    config_file.write_text(json.dumps({**config, "model_type": "qwen2"}))
    with pytest.raises(ModelError, match="model_type 'qwen2' is not supported"):
        load_causal_lm(str(tmp_path / "hf"))
    config_file.write_text(json.dumps(config))
    tokenizer_file = tmp_path / "hf" / "tokenizer.json"
    spec = json.loads(tokenizer_file.read_text())
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁"}
    tokenizer_file.write_text(json.dumps(spec))
    with pytest.raises(ModelError, match="pre-tokenizer .*Metaspace"):
        hf_tokenizer(str(tmp_path / "hf"))
    os.remove(tokenizer_file)
    with pytest.raises(ModelError, match="has no tokenizer.json"):
        load_causal_lm(str(tmp_path / "hf"))


def _damaged(tmp_path, name, file=None, edit=None, remove=None):
    """A copy of a tiny Hugging Face directory with ``edit`` applied to the JSON ``file`` or ``remove`` gone."""
    import shutil

    if not (tmp_path / "hf").exists():
        write_tiny_gguf(tmp_path / "m.gguf", hf_dir=tmp_path / "hf")
    folder = tmp_path / name
    shutil.copytree(tmp_path / "hf", folder)
    if edit:
        spec = json.loads((folder / file).read_text())
        edit(spec)
        (folder / file).write_text(json.dumps(spec))
    if remove:
        os.remove(folder / remove)
    return str(folder)


def test_damaged_folders_are_model_errors_naming_the_missing_piece(tmp_path):
    """These were a raw FileNotFoundError, KeyError('vocab') and KeyError('content')."""
    folder = _damaged(tmp_path, "noweights", remove="model.safetensors")
    with pytest.raises(ModelError, match=r"noweights' has no model.safetensors.*weights are missing"):
        load_causal_lm(folder)
    assert load_causal_lm(folder, weights=None).config.num_layers == 2  # random weights need no file
    folder = _damaged(tmp_path, "novocab", "tokenizer.json", lambda j: j["model"].pop("vocab"))
    with pytest.raises(ModelError, match=r"novocab/tokenizer.json' has no model.vocab"):
        load_causal_lm(folder)
    folder = _damaged(tmp_path, "nocontent", "tokenizer.json", lambda j: j["added_tokens"][0].pop("content"))
    with pytest.raises(ModelError, match=r"nocontent/tokenizer.json': added_tokens\[0\] has no content"):
        load_causal_lm(folder)


@pytest.mark.parametrize("key", ["bos_token", "eos_token", "pad_token"])
def test_a_configured_token_outside_the_vocabulary_is_refused(tmp_path, key):
    """eos_token "<nope>" loaded with eos_token_id None: generation never stopped. Refused, naming it."""
    folder = _damaged(tmp_path, "unknown", "tokenizer_config.json", lambda j: j.update({key: {"content": "<nope>"}}))
    with pytest.raises(ModelError, match=rf"tokenizer_config.json': {key} '<nope>' is not a token of"):
        hf_tokenizer(folder)
