"""chat_prompt renders what SmolLM2-Instruct's chat template renders."""

import pytest

from tfxfer.causal_lm import chat_prompt
from tfxfer.causal_lm.chat import SMOLLM2_SYSTEM
from tfxfer.errors import ArgumentError, ArgumentTypeError


def test_matches_the_template():
    # the GGUF template, rendered by hand for a two-turn conversation without a system message
    expected = ("<|im_start|>system\n" + SMOLLM2_SYSTEM + "<|im_end|>\n"
                "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                "<|im_start|>user\nAnd you?<|im_end|>\n<|im_start|>assistant\n")
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "And you?"}]
    assert chat_prompt(messages) == expected
    given_system = chat_prompt([{"role": "system", "content": "S"}, {"role": "user", "content": "u"}],
                               add_generation_prompt=False)
    assert given_system == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n"
    assert chat_prompt("u", system=None) == "<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n"


def test_errors():
    with pytest.raises(ArgumentError, match="`messages` must be a string or a non-empty list"):
        chat_prompt([])
    with pytest.raises(ArgumentTypeError, match="`messages` must be a str or a list of .*Received: messages=5"):
        chat_prompt(5)
    with pytest.raises(ArgumentError, match=r"`messages\[0\]\['role'\]` must be one of"):
        chat_prompt([{"role": "bot", "content": "x"}])
    with pytest.raises(ArgumentTypeError, match=r"`messages\[0\]` must be a dict"):
        chat_prompt([("user", "x")])
