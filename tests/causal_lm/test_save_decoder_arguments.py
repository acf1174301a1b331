"""`save_decoder` checks every argument before converting (minutes on a real model), and a model
that does not compute in float32 is refused up front with the way out."""

import pytest

from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.export import decoder_tflite


@pytest.fixture
def no_conversion(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("converted before the arguments were checked")

    monkeypatch.setattr(decoder_tflite, "convert_decoder_tflite", boom)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(gate_texts=[]), ArgumentTypeError, "gate_texts"),
    (dict(gate_texts="the cat sat"), ArgumentTypeError, "gate_texts"),
    (dict(gate_texts=["the cat sat", "a"]), ArgumentError, r"gate_texts\[1\]"),
    (dict(gate_texts=[None]), ArgumentError, r"gate_texts\[0\]"),
    (dict(gate_texts=["the cat sat"], fallback="float16"), ArgumentTypeError, "fallback"),
    (dict(gate_texts=["the cat sat"], bogus=1), ArgumentError, "bogus"),
    (dict(gate_texts=["the cat sat"], min_top1_agreement=2), ArgumentError, "min_top1_agreement"),
    (dict(min_top1_agreement=0.9), ArgumentError, "gate_texts"),  # an option that would be ignored
    # wrote None.tflite / hidden .tflite files, or failed with a raw FileNotFoundError after converting
    (dict(name=None), ArgumentTypeError, "`name` must be a str"),
    (dict(name=""), ArgumentError, "`name` must be letters, digits.*no path separators"),
    (dict(name="sub/dec"), ArgumentError, "`name` must be letters.*Received: name='sub/dec'"),
    (dict(name=".hidden"), ArgumentError, "`name`"),
])
def test_bad_arguments_fail_before_any_conversion(tiny_lm, tmp_path, no_conversion, kwargs, error, match):
    with pytest.raises(error, match=match):
        decoder_tflite.save_decoder(tiny_lm, str(tmp_path / "out"), cache_length=8, prefill_tokens=4, **kwargs)


def test_a_folder_that_is_a_file_fails_before_any_conversion(tiny_lm, tmp_path, no_conversion):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArgumentError, match="`folder`.*it is a file"):
        decoder_tflite.save_decoder(tiny_lm, str(tmp_path / "file"), cache_length=8, prefill_tokens=4)


def test_a_bfloat16_model_is_refused_with_the_way_out(no_conversion):
    from tfxfer.causal_lm import LlamaConfig, build_language_model
    from tfxfer.causal_lm.tokenizer import BPETokenizer, byte_vocabulary

    tok = BPETokenizer(tokens=byte_vocabulary() + ["<|end|>"], merges=[], special_tokens=["<|end|>"],
                       eos_token_id=256)
    config = LlamaConfig(vocabulary_size=257, num_layers=1, num_query_heads=2, num_key_value_heads=1,
                         hidden_dim=16, intermediate_dim=32, context_length=32)
    lm = build_language_model(config, tok, dtype="bfloat16")
    with pytest.raises(ArgumentError, match=r"compute in float32.*dtype='float32'"):
        decoder_tflite.decoder_module(lm, cache_length=8)
    with pytest.raises(ArgumentTypeError, match="`lm`"):
        decoder_tflite.decoder_module(lm.model, cache_length=8)
