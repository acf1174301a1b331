"""BPETokenizer: exact byte-level BPE, cross-checked with an independent implementation."""

import pytest

from tfxfer.causal_lm import BPETokenizer, read_gguf
from tfxfer.causal_lm.tokenizer import byte_vocabulary
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tests.causal_lm.bpe_reference import TRICKY, reference_encode
from tests.causal_lm.helpers import MERGES, SPECIALS, byte_tokens, tiny_tokens


def _tiny(pre="smollm"):
    return BPETokenizer(tokens=tiny_tokens(), merges=MERGES, pre=pre, special_tokens=SPECIALS,
                        bos_token_id=1, eos_token_id=2, pad_token_id=2)


def test_byte_vocabulary_is_gpt2_table():
    assert byte_vocabulary() == byte_tokens()
    assert byte_vocabulary()[32] == "Ġ" and byte_vocabulary()[10] == "Ċ"


@pytest.mark.parametrize("pre", ["smollm", "gpt-2"])
def test_matches_independent_reference(pre):
    tok = _tiny(pre)
    for text in TRICKY:
        expected = reference_encode(text, tokens=tiny_tokens(), merges=MERGES, pre=pre,
                                    special_tokens=SPECIALS)
        assert tok.encode(text) == expected, text


def test_whitespace_lookahead_and_digits():
    tok = _tiny("smollm")
    g = {t: i for i, t in enumerate(tiny_tokens())}
    # GPT-2's \s+(?!\S): of two spaces before a word, one stays alone and one joins the word.
    assert tok.encode("  and") == [g["Ġ"], g["Ġand"]]
    # smollm isolates digits: " 12" -> "Ġ", "1", "2"
    assert tok.encode(" 12") == [g["Ġ"], g["1"], g["2"]]
    assert _tiny("gpt-2").encode(" 12") == [g["Ġ"], g["1"], g["2"]]  # no digit merges either way


def test_special_tokens_and_round_trip():
    tok = _tiny()
    ids = tok.encode("<|im_start|>the and<|im_end|>")
    assert ids[0] == 1 and ids[-1] == 2
    for text in TRICKY:
        assert tok.decode(tok.encode(text)) == text
    assert tok.decode(ids, skip_special_tokens=True) == "the and"
    assert tok.token_to_id("<|im_end|>") == 2


def test_add_bos_token():
    tok = BPETokenizer(tokens=tiny_tokens(), merges=MERGES, special_tokens=SPECIALS, bos_token_id=1,
                       add_bos_token=True)
    assert tok.encode("a")[0] == 1 and tok.encode_batch(["a", "b"])[1][0] == 1
    # a text that continues other tokens (a label word, a completion) leaves the start token out
    assert tok.encode("a", add_bos=False) == tok.encode("a")[1:]
    assert tok.encode_batch(["a", "b"], add_bos=False) == [tok.encode("a")[1:], tok.encode("b")[1:]]
    assert tok.start_ids == [1] and _tiny().start_ids == []


def test_keep_last_keeps_the_start_token():
    tok = BPETokenizer(tokens=tiny_tokens(), merges=MERGES, special_tokens=SPECIALS, bos_token_id=1,
                       add_bos_token=True)
    ids = tok.encode("abcdef")
    assert tok.keep_last(ids, 3) == [1] + ids[-2:]
    assert tok.keep_last(ids, 1) == ids[-1:]  # no room for the start token and a text token
    assert tok.keep_last(ids, 100) == ids
    assert _tiny().keep_last(_tiny().encode("abcdef"), 3) == _tiny().encode("def")


def test_save_load_round_trip(tmp_path):
    tok = _tiny()
    tok.save(str(tmp_path / "tok.json"))
    again = BPETokenizer.load(str(tmp_path / "tok.json"))
    assert again.get_config() == tok.get_config()
    assert again.encode(TRICKY[10]) == tok.encode(TRICKY[10])


def test_from_gguf(tiny_gguf):
    tok = BPETokenizer.from_gguf(read_gguf(tiny_gguf()).vocab)
    assert tok.get_config() == _tiny().get_config()


def test_errors():
    tok = _tiny()
    with pytest.raises(ArgumentError, match="`token` must be a token of the vocabulary.*<\\|im_end\\|>"):
        tok.token_to_id("<|eot_id|>")
    with pytest.raises(ArgumentTypeError, match="`text` must be a str"):
        tok.encode(b"bytes")
    with pytest.raises(ArgumentError, match="`ids` must be ids"):
        tok.decode([len(tiny_tokens())])
    with pytest.raises(ArgumentError, match="`pre` must be one of"):
        BPETokenizer(tokens=tiny_tokens(), merges=MERGES, pre="qwen2")
    with pytest.raises(ArgumentError, match="`special_tokens` must all be in `tokens`"):
        BPETokenizer(tokens=tiny_tokens(), merges=MERGES, special_tokens=["<s>"])
    with pytest.raises(ArgumentError, match="`eos_token_id`"):
        BPETokenizer(tokens=tiny_tokens(), merges=MERGES, eos_token_id=10**6)
