"""A prompt longer than the context is cut from the left but keeps the start token its tokenizer put
first (the model was trained with one there), the same way in `generate`, the generation SavedModel
and the TensorFlow-free device runner."""

import dataclasses
import os
import sys

import numpy as np
import pytest

from tfxfer.causal_lm import BPETokenizer, generate, generate_ids

EXPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "export")
LONG = "in 12 the and then on a cat " * 5  # > 64 tokens
NEW = 20  # leaves 44 prompt tokens: the tiny model then answers differently with and without the start token


@pytest.fixture(scope="module")
def bos_lm(tiny_lm):
    """The tiny model with a tokenizer that puts its start token (id 1) first."""
    return dataclasses.replace(tiny_lm, tokenizer=BPETokenizer(**{**tiny_lm.tokenizer.get_config(),
                                                                   "add_bos_token": True}))


def test_generate_keeps_the_start_token(bos_lm):
    from tfxfer.causal_lm.generation import _prompt_ids

    tok = bos_lm.tokenizer
    text_ids = tok.encode(LONG, add_bos=False)
    with_start = [tok.bos_token_id] + text_ids[-43:]
    without = text_ids[-44:]  # the old cut: the start token lost
    with pytest.warns(UserWarning):
        assert _prompt_ids(bos_lm, [LONG], NEW) == [with_start]
    expected = generate_ids(bos_lm, [with_start], max_new_tokens=NEW)[0]
    assert expected != generate_ids(bos_lm, [without], max_new_tokens=NEW)[0]  # the tests below can tell them apart
    with pytest.warns(UserWarning, match=rf"max_new_tokens={NEW}, so it is cut to its start token and its last 43 "
                                         r"tokens"):
        got = generate(bos_lm, [LONG], max_new_tokens=NEW, stop_tokens=None)
    assert got[0] == tok.decode(expected)


def test_generation_savedmodel_cuts_the_same_way(bos_lm):
    import tensorflow as tf

    from tfxfer.causal_lm.serving import _module

    with pytest.warns(UserWarning, match="cut to its start token"):
        expected = generate(bos_lm, [LONG, "the cat"], max_new_tokens=NEW, stop_tokens=None)
    out = _module(bos_lm, NEW, ()).generate(tf.constant([LONG, "the cat"]))
    assert [t.decode("utf-8") for t in out["text"].numpy()] == expected


class _RecordingDecoder:
    """Stands in for the LiteRT decoder: records what it is fed, always predicts token 7."""
    cache_length, vocabulary_size = 16, 20

    def __init__(self):
        self.fed = []

    def reset(self):
        self.fed = []

    def feed(self, ids):
        self.fed.append(list(ids))
        logits = np.zeros((len(ids), self.vocabulary_size), np.float32)
        logits[:, 7] = 1.0
        return logits


class _Tokenizer:
    def encode(self, text, name="prompt"):
        return [10 + int(w) for w in text.split()]

    def decode(self, ids):
        return " ".join(str(i) for i in ids)


@pytest.mark.parametrize("bos,first", [(1, [1, 12, 13, 14]), (None, [11, 12, 13, 14])])
def test_device_runner_cuts_the_same_way(bos, first, capsys):
    sys.path.insert(0, EXPORT)
    try:
        import llm_runner
    finally:
        sys.path.remove(EXPORT)
    runner = object.__new__(llm_runner.LLMRunner)
    runner.decoder, runner.tokenizer, runner.bos_token_id, runner.stop_token_ids = \
        _RecordingDecoder(), _Tokenizer(), bos, ()
    out = runner.generate("0 1 2 3 4", max_new_tokens=12)  # room for 4 prompt ids
    assert runner.decoder.fed[0] == first and out["prompt_tokens"] == 4
    assert ("its start token and its last 3 tokens" if bos else "cut to its last 4 tokens") in capsys.readouterr().err
