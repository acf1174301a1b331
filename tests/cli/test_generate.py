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
