"""Hostile inputs to the causal LM functions: each is a typed error naming the argument, raised
before anything changes (LoRA rank, lone surrogates, sampler limits, token ids, tokenizer files)."""

import json

import numpy as np
import pytest

from tests.causal_lm.helpers import MERGES, SPECIALS, tiny_tokens
from tfxfer.causal_lm import adapt_causal_lm, generate, generate_ids, in_context_classify, perplexity
from tfxfer.causal_lm import loader
from tfxfer.causal_lm.tokenizer import BPETokenizer
from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.export.decoder_runner import TFLiteDecoder
from tfxfer.export.decoder_tflite import convert_decoder_tflite
from tfxfer.export.decoder_verification import decoder_agreement, decoder_gate


@pytest.fixture(scope="module")
def tok():
    return BPETokenizer(tokens=tiny_tokens(), merges=MERGES, special_tokens=SPECIALS, eos_token_id=2)


def test_lora_rank_above_the_projections_is_refused_before_enabling(tiny_lm):
    with pytest.raises(ArgumentError, match="`lora_rank` must be <= 8"):
        adapt_causal_lm(tiny_lm, ["the cat sat on the mat"], lora_rank=10**8, sequence_length=8)
    assert getattr(tiny_lm.backbone, "_lora_rank", None) is None  # nothing was changed


def test_lone_surrogates_name_the_argument(tiny_lm, tok):
    with pytest.raises(ArgumentError, match=r"`text` must be valid Unicode.*index 0"):
        tok.encode("\ud800")
    with pytest.raises(ArgumentError, match=r"`texts\[1\]` must be valid Unicode"):
        tok.encode_batch(["ok", "\udfff"])
    with pytest.raises(ArgumentError, match=r"`prompts\[0\]` must be valid Unicode.*index 1"):
        generate(tiny_lm, "a\ud800b", max_new_tokens=2)
    with pytest.raises(ArgumentError, match=r"`texts\[0\]` must be valid Unicode"):
        perplexity(tiny_lm, ["a\ud800b"])
    with pytest.raises(ArgumentError, match=r"`label_words\[1\]` must be valid Unicode"):
        in_context_classify(tiny_lm, ["a"], label_words=[" yes", "\ud800"])


def test_sampler_limits(tiny_lm):
    with pytest.raises(ArgumentError, match=r"`top_k` must be <= the vocabulary size \(267\)"):
        generate(tiny_lm, "hi", max_new_tokens=2, sampler="top_k", top_k=10**6, seed=1)
    with pytest.raises(ArgumentError, match="`seed` must be an int in"):
        generate(tiny_lm, "hi", max_new_tokens=2, sampler="random", seed=2**70)


def test_token_ids_are_checked(tiny_lm):
    with pytest.raises(ArgumentError, match=r"`prompt_ids\[0\]` must be ids in \[0, 267\); prompt_ids\[0\]\[0\]=-5 is not"):
        generate_ids(tiny_lm, [[-5]], max_new_tokens=2)
    with pytest.raises(ArgumentError, match=r"prompt_ids\[0\]\[1\]=1000000 is not"):
        generate_ids(tiny_lm, [[3, 10**6]], max_new_tokens=2)
    with pytest.raises(ArgumentTypeError, match="`prompt_ids`"):
        generate_ids(tiny_lm, "abc", max_new_tokens=2)


def test_decoder_file_token_ids_are_checked(tiny_lm):
    blob = convert_decoder_tflite(tiny_lm, cache_length=16, prefill_tokens=4)
    with pytest.raises(ArgumentError, match=r"`token_ids` must be ids in \[0, 267\); token_ids\[1\]=-3 is not"):
        decoder_agreement(tiny_lm, blob, [5, -3, 7])
    with pytest.raises(ArgumentError, match=r"token_ids\[1\]=1000000 is not"):
        decoder_agreement(tiny_lm, blob, [5, 10**6, 7])
    with pytest.raises(ArgumentError, match=r"`texts\[0\]` must be ids.*texts\[0\]\[1\]=-1 is not"):
        decoder_gate(tiny_lm, blob, [[4, -1, 9]])
    with pytest.raises(ArgumentError, match=r"`texts\[0\]` must be valid Unicode"):
        decoder_gate(tiny_lm, blob, ["a\ud800"])
    decoder = TFLiteDecoder(blob)
    with pytest.raises(ArgumentTypeError, match=r"`token_ids\[0\]` must be an int token id"):
        decoder.feed([1.9, 2.2])
    with pytest.raises(ArgumentTypeError, match="`token_ids` must be a list of int token ids"):
        decoder.feed("12")
    with pytest.raises(ArgumentError, match=r"token_ids\[0\]=-1 is not"):
        decoder.feed([-1])
    assert decoder.position == 0
    assert decoder.feed(np.array([[1, 2]])).shape == (2, 267)  # one row of ids still reads as before


def test_tokenizer_refuses_bad_ids_and_vocabularies(tok):
    with pytest.raises(ArgumentTypeError, match=r"`ids\[0\]` must be an int token id"):
        tok.decode([1.7])
    with pytest.raises(ArgumentTypeError, match="`ids` must be a list of int token ids"):
        tok.decode("12")
    # a vocabulary without some byte tokens loads (real ones leave out bytes UTF-8 never uses), but a text
    # that needs a missing one is refused instead of losing those characters
    from tfxfer.causal_lm.tokenizer import byte_vocabulary

    partial = BPETokenizer(tokens=[t for b, t in enumerate(byte_vocabulary()) if b not in (ord("!"), 0xC3)], merges=[])
    assert partial.decode(partial.encode("abc")) == "abc"
    with pytest.raises(ArgumentError, match=r"`text` .*'!' at index 3"):
        partial.encode("abc!")
    with pytest.raises(ArgumentError, match=r"`texts\[1\]` .*'é' at index 0"):
        partial.encode_batch(["ok", "é"])
    with pytest.raises(ArgumentError, match=r"`merges\[0\]` must name tokens of the vocabulary"):
        BPETokenizer(tokens=tiny_tokens(), merges=["zz qq"])
    with pytest.raises(ArgumentError, match=r"`merges\[0\]` must be \"left right\""):
        BPETokenizer(tokens=tiny_tokens(), merges=["ab"])


def test_saved_model_with_a_damaged_tokenizer_is_a_model_error(tiny_lm, tmp_path):
    folder = loader.save_causal_lm(tiny_lm, tmp_path / "saved")
    meta_file = tmp_path / "saved" / loader.SAVED_META
    meta = json.loads(meta_file.read_text())
    meta["tokenizer"]["merges"] = meta["tokenizer"]["merges"] + ["zz qq"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="saved.*is damaged.*merges"):
        loader.load_causal_lm(str(folder))


def test_in_context_label_words_and_template(tiny_lm):
    with pytest.raises(ArgumentError, match="`label_words` must not repeat a word"):
        in_context_classify(tiny_lm, ["good", "bad"], label_words=[" yes", " yes"])
    with pytest.raises(ArgumentError, match="`template` must use only the fields"):
        in_context_classify(tiny_lm, ["a"], label_words=[" yes", " no"], template="{text} {x} {label}")
    with pytest.raises(ArgumentError, match=r"`stop_tokens\[0\]` must be a token of the vocabulary"):
        generate(tiny_lm, "hi", max_new_tokens=2, stop_tokens=["zzzz"])


def test_a_language_model_is_required(tiny_lm, tmp_path):
    """A keras model (``lm.model``, an easy slip) or None is a typed error naming the argument."""
    from tfxfer.causal_lm import load_causal_lm, save_causal_lm

    for wrong in (None, tiny_lm.model):
        with pytest.raises(ArgumentTypeError, match=r"`lm` must be a tfxfer.causal_lm.LanguageModel.*not its .model"):
            generate(wrong, "hi", max_new_tokens=2)
        with pytest.raises(ArgumentTypeError, match="`lm` must be a tfxfer.causal_lm.LanguageModel"):
            generate_ids(wrong, [[5]], max_new_tokens=2)
        with pytest.raises(ArgumentTypeError, match="`lm` must be a tfxfer.causal_lm.LanguageModel"):
            save_causal_lm(wrong, tmp_path / "saved")
    assert not (tmp_path / "saved").exists()
    with pytest.raises(ArgumentTypeError, match=r"`name_or_path` must be .*Received: name_or_path=None"):
        load_causal_lm(None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArgumentError, match="`folder` must be a folder"):
        save_causal_lm(tiny_lm, tmp_path / "file")


def test_decode_loop_refuses_a_row_without_prompt_tokens(tiny_lm):
    """The compiled loop starts after the shortest prompt: a row with none is a clear error, not a slice at -1."""
    import tensorflow as tf

    from tfxfer.causal_lm.generation import _decode_loop
    from tfxfer.causal_lm.samplers import make_sampler

    loop = _decode_loop(tiny_lm.model, make_sampler("greedy"), ())
    ids = np.full((2, 6), 5, dtype="int32")
    mask = np.zeros((2, 6), dtype=bool)
    mask[0, :3] = True
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs at least one prompt token"):
        loop(ids, mask)
    mask[1, :1] = True
    assert np.asarray(loop(ids, mask)).shape == (2, 6)
