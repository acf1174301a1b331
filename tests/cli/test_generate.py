"""``tfxfer generate``: argument errors before TensorFlow; a tiny GGUF model generates what
`tfxfer.causal_lm.generate` does (text and --json)."""

import contextlib
import io
import json

from tests.causal_lm.helpers import write_tiny_gguf
from tests.cli.test_fast_start import _run_blocked
from tfxfer.cli import main


def test_argument_errors_before_tensorflow(tmp_path):
    cases = [
        ["generate", "--help"],
        ["generate", "smollm3-1b", "Hi"],
        ["generate", str(tmp_path / "missing.gguf"), "Hi"],
        ["generate", "smollm2-135m", "Hi", "--sampler", "beam"],
        ["generate", "smollm2-135m", "Hi", "--temperature", "0.5"],
        ["generate", "smollm2-135m", "Hi", "--sampler", "top_p", "--top-p", "1.5"],
        ["generate", "smollm2-135m", "Hi", "--max-new-tokens", "0"],
        ["generate", "smollm2-135m", " ", "--json"],
        ["generate", "smollm2-135m", "caf\udce9"],  # the bytes b"caf\xe9" as argv (not UTF-8)
    ]
    results = _run_blocked(cases, tmp_path)
    assert results[tuple(cases[0])]["code"] == 0 and "--max-new-tokens" in results[tuple(cases[0])]["stdout"]
    for argv in cases[1:]:
        r = results[tuple(argv)]
        assert r["code"] == 2 and "imported by a command" not in r["stderr"], r
    err = {k: v["stderr"].strip() for k, v in results.items()}
    assert "`model` must be one of smollm2-135m" in err[tuple(cases[1])]
    assert "must be an existing .gguf file" in err[tuple(cases[2])]
    assert "'beam'" in err[tuple(cases[3])]
    assert 'has no effect with sampler="greedy"' in err[tuple(cases[4])]
    assert "`top_p`" in err[tuple(cases[5])] and "`--max-new-tokens`" in err[tuple(cases[6])]
    doc = json.loads(results[tuple(cases[7])]["stdout"])
    assert not doc["ok"] and "non-empty string" in doc["error"]["message"]
    # refused only after loading the model before, as a "lone surrogate"
    assert "`prompts[0]` must be valid UTF-8 text; it is not valid UTF-8 at index 3 (byte 0xe9)" in err[tuple(cases[8])]


def _main(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue()


def test_generates_like_the_library(tmp_path):
    from tfxfer.causal_lm import generate, load_causal_lm

    path = str(tmp_path / "tiny.gguf")
    write_tiny_gguf(path)
    expected = generate(load_causal_lm(path), ["the and", "on the"], max_new_tokens=5)
    code, out = _main(["generate", path, "the and", "on the", "--max-new-tokens", "5", "-q"])
    assert code == 0 and out == f"the and{expected[0]}\non the{expected[1]}\n", out
    code, out = _main(["generate", path, "the and", "--max-new-tokens", "5", "--sampler", "top_k", "--top-k", "3",
                       "--seed", "1", "--json"])
    doc = json.loads(out)
    assert code == 0 and doc["schema"] == "tfxfer/1" and doc["command"] == "generate" and doc["ok"]
    assert doc["results"][0]["prompt"] == "the and" and isinstance(doc["results"][0]["text"], str)


def test_chat_on_a_model_without_chatml_tokens_names_the_flag(tmp_path):
    """--chat on a model without <|im_end|> failed blaming `stop_tokens[0]`, an argument never given."""
    from tfxfer.causal_lm import LlamaConfig, build_language_model, save_causal_lm
    from tfxfer.causal_lm.tokenizer import BPETokenizer, byte_vocabulary

    tok = BPETokenizer(tokens=byte_vocabulary() + ["<|end|>"], merges=[], special_tokens=["<|end|>"],
                       eos_token_id=256)
    config = LlamaConfig(vocabulary_size=257, num_layers=1, num_query_heads=2, num_key_value_heads=1,
                         hidden_dim=16, intermediate_dim=32, context_length=32)
    folder = str(tmp_path / "plain-lm")
    save_causal_lm(build_language_model(config, tok), folder)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code, _ = _main(["generate", folder, "hello", "--chat", "--max-new-tokens", "2", "-q"])
    assert code == 2 and "stop_tokens" not in err.getvalue()
    assert "`--chat` needs a chat model whose vocabulary has the ChatML tokens" in err.getvalue()
    assert "has no <|im_start|>, <|im_end|>" in err.getvalue() and "leave out --chat" in err.getvalue()
