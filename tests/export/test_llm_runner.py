"""export/llm_runner.py: a tiny random Llama saved by `save_decoder` generates, without TensorFlow, the
same greedy tokens as `tfxfer.causal_lm.generate`; the exact BPE it uses matches `BPETokenizer`."""

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

from tests.causal_lm.helpers import write_tiny_gguf

EXPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "export")
sys.path.insert(0, EXPORT)

import llm_runner  # noqa: E402
from bpe_tokenizer import BytePairTokenizer  # noqa: E402

PROMPTS = ["the and then on", "in 12  the\n\nand<|im_end|> a"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from tfxfer.causal_lm import load_causal_lm
    from tfxfer.export.decoder_tflite import save_decoder

    root = tmp_path_factory.mktemp("llm-runner")
    write_tiny_gguf(root / "tiny.gguf")
    lm = load_causal_lm(str(root / "tiny.gguf"), cache_dir=str(root / "cache"))
    paths = save_decoder(lm, str(root / "out"), cache_length=48, prefill_tokens=4,
                         gate_texts=["the and then", "on and in the"])
    return lm, paths


def test_same_greedy_tokens_as_generate(saved):
    from tfxfer.causal_lm import generate_ids

    lm, paths = saved
    assert paths["gate"].passed, paths["gate"]
    runner = llm_runner.LLMRunner(paths["sidecar"])
    for prompt in PROMPTS:
        ids = lm.tokenizer.encode(prompt)
        assert runner.encode(prompt) == ids
        expected = generate_ids(lm, [ids], max_new_tokens=12, stop_token_ids=(lm.tokenizer.eos_token_id,))[0]
        got = runner.generate(prompt, max_new_tokens=12)
        assert got["token_ids"] == [int(i) for i in expected], (prompt, got)
        assert got["text"] == lm.tokenizer.decode(expected) and got["prompt_tokens"] == len(ids)


def test_tokenizer_matches_hugging_face(saved):
    lm, paths = saved
    tok = BytePairTokenizer.from_causal_lm(paths["tokenizer"])
    texts = PROMPTS + ["  a", "a  b\n\n\nc  ", "it's 2024 é日😀\u00a0x", "<|im_start|>hi<|im_end|>\n", " \t ", "x'S 'll"]
    for text in texts:
        assert tok.encode(text) == lm.tokenizer.encode(text), text
        assert tok.decode(tok.encode(text)) == lm.tokenizer.decode(lm.tokenizer.encode(text)) == text


def test_samplers_and_errors(saved):
    _, paths = saved
    runner = llm_runner.LLMRunner(paths["sidecar"])
    a = runner.generate(PROMPTS[0], max_new_tokens=6, sampler=llm_runner.Sampler("top_k", top_k=5, seed=3))
    b = runner.generate(PROMPTS[0], max_new_tokens=6, sampler=llm_runner.Sampler("top_k", top_k=5, seed=3))
    assert a["token_ids"] == b["token_ids"]
    assert llm_runner.Sampler("top_p", top_p=1e-6, seed=0)([0.0, 5.0, 1.0]) == 1  # nucleus of one
    with pytest.raises(ValueError, match="greedy takes no"):
        llm_runner.Sampler("greedy", temperature=0.5)
    with pytest.raises(ValueError, match="`top_p` must be in"):
        llm_runner.Sampler("top_p", top_p=1.5)
    with pytest.raises(ValueError, match="non-empty string"):
        runner.generate("", max_new_tokens=4)
    with pytest.raises(ValueError, match=r"`max_new_tokens` must be in \[1, 47\]"):
        runner.generate("the", max_new_tokens=48)


def test_refuses_a_failed_or_foreign_file(saved, tmp_path):
    _, paths = saved
    sidecar = json.load(open(paths["sidecar"]))
    failed = dict(sidecar, gate={"passed": False, "failures": ["top-1 agreement 0.9 < 0.99"]})
    path = os.path.join(os.path.dirname(paths["sidecar"]), "failed.json")
    json.dump(failed, open(path, "w"))
    with pytest.raises(ValueError, match="failed its verification gate"):
        llm_runner.LLMRunner(path)
    assert llm_runner.LLMRunner(path, allow_failed=True).decoder.prefill_tokens == 4
    json.dump(dict(sidecar, sha256="0" * 64), open(path, "w"))
    with pytest.raises(ValueError, match="belongs to another file"):
        llm_runner.LLMRunner(path)


def test_cli_json_without_tensorflow(saved):
    _, paths = saved
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import llm_runner; "
            "rc = llm_runner.main(sys.argv[2:]); assert 'tensorflow' not in sys.modules; sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, EXPORT, paths["sidecar"], PROMPTS[0], "--max-new-tokens", "5",
                          "--json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert doc["schema"] == "tfxfer/1" and doc["ok"] and doc["command"] == "llm_runner"
    assert doc["results"][0]["new_tokens"] <= 5 and doc["model"] == "decoder.tflite"
    bad = subprocess.run([sys.executable, os.path.join(EXPORT, "llm_runner.py"), paths["sidecar"], "x",
                          "--sampler", "greedy", "--top-k", "3", "--json"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"]["type"] == "ValueError"


def test_decode_only_file_generates_the_same(saved, tmp_path):
    from tfxfer.export.decoder_tflite import save_decoder

    lm, paths = saved
    decode_only = save_decoder(lm, str(tmp_path / "decode-only"), cache_length=48, prefill_tokens=None)
    runner = llm_runner.LLMRunner(decode_only["sidecar"])
    assert runner.decoder.prefill_tokens is None and decode_only["gate"] is None
    expected = llm_runner.LLMRunner(paths["sidecar"]).generate(PROMPTS[1], max_new_tokens=10)
    assert runner.generate(PROMPTS[1], max_new_tokens=10)["token_ids"] == expected["token_ids"]


def test_int8_file_generates_like_keras(saved, tmp_path):
    """An int8-weight file (DEQUANTIZE once at load) runs in the TF-free runner: on the tiny model its greedy
    tokens are Keras's."""
    from tfxfer.causal_lm import generate_ids
    from tfxfer.export.decoder_tflite import save_decoder

    lm, _ = saved
    paths = save_decoder(lm, str(tmp_path / "int8"), cache_length=48, prefill_tokens=4, quantization="int8",
                         gate_texts=["the and then", "on and in the"])
    sidecar = json.load(open(paths["sidecar"]))
    assert paths["gate"].passed and sidecar["quantization"] == sidecar["requested"] == "int8"
    assert sidecar["rejected"] == []
    ids = lm.tokenizer.encode(PROMPTS[0])
    expected = generate_ids(lm, [ids], max_new_tokens=8, stop_token_ids=(lm.tokenizer.eos_token_id,))[0]
    got = llm_runner.LLMRunner(paths["sidecar"]).generate(PROMPTS[0], max_new_tokens=8)
    assert got["token_ids"] == [int(i) for i in expected]


def test_refuses_prompts_the_tokenizer_cannot_encode(saved, tmp_path, capsys):
    """A character whose byte has no token (SmolLM2 lacks 0x14, ...) and a command-line prompt that is not UTF-8
    are typed errors naming ``prompts[i]`` (exit code 2, "ok": false), never an id -1 fed to the model; a bad
    --seed names --seed."""
    import shutil

    _, paths = saved
    folder = tmp_path / "partial"
    shutil.copytree(os.path.dirname(paths["sidecar"]), folder)
    sidecar = str(folder / os.path.basename(paths["sidecar"]))
    tokenizer_file = folder / json.load(open(sidecar))["tokenizer"]
    config = json.load(open(tokenizer_file))
    byte_14 = BytePairTokenizer({}, [], start_token=None, end_token=None, pad_token=None).byte_encoder[0x14]
    config["tokens"][config["tokens"].index(byte_14)] = "<|unused|>"  # the vocabulary has no token for 0x14
    json.dump(config, open(tokenizer_file, "w"))
    meta = json.load(open(sidecar))  # as if saved with that vocabulary: its hash in the sidecar
    meta["tokenizer_sha256"] = hashlib.sha256(tokenizer_file.read_bytes()).hexdigest()
    json.dump(meta, open(sidecar, "w"))

    tok = BytePairTokenizer.from_causal_lm(str(tokenizer_file))
    with pytest.raises(ValueError, match=r"`text` holds '\\x14' at index 6, whose UTF-8 bytes"):
        tok.encode("Total:\x14 42")
    with pytest.raises(ValueError, match=r"`prompt` must be valid Unicode text.*index 2"):
        tok.encode("ab\udcff", name="prompt")
    for argv, match in (([sidecar, "the", "Total:\x14 42"], r"`prompts\[1\]` holds '\\x14' at index 6"),
                        ([sidecar, "ab\udcff\udcfe"], r"`prompts\[0\]` must be valid Unicode text.*lone surrogate"),
                        ([sidecar, "the", "--sampler", "random", "--seed", "-1"], r"`--seed` must be an int >= 0"),
                        ([sidecar, "the", "--threads", "0"], r"`--threads` must be an int >= 1")):
        assert llm_runner.main(argv + ["--max-new-tokens", "3", "--json"]) == 2
        doc = json.loads(capsys.readouterr().out)
        assert not doc["ok"] and doc["exit_code"] == 2 and doc["error"]["type"] == "ValueError", doc
        assert re.search(match, doc["error"]["message"]), doc["error"]["message"]
    assert llm_runner.main([sidecar, "the", "--max-new-tokens", "2", "--json"]) == 0  # the rest still runs
    assert json.loads(capsys.readouterr().out)["ok"]


def test_two_decoders_in_one_folder_keep_their_own_tokenizer(saved, tmp_path):
    """save_decoder wrote one tokenizer.json per folder: a second decoder saved beside the first replaced
    the first one's tokenizer. Each now has <name>.tokenizer.json, its sha256 in the sidecar."""
    import shutil

    _, paths = saved
    assert os.path.basename(paths["tokenizer"]) == "decoder.tokenizer.json"
    sidecar = json.load(open(paths["sidecar"]))
    assert sidecar["tokenizer"] == "decoder.tokenizer.json" and len(sidecar["tokenizer_sha256"]) == 64
    folder = tmp_path / "copy"
    shutil.copytree(os.path.dirname(paths["sidecar"]), folder)
    with open(folder / "decoder.tokenizer.json", "a", encoding="utf-8") as f:
        f.write(" ")  # another tokenizer under this decoder's name
    with pytest.raises(ValueError, match="is not the tokenizer"):
        llm_runner.LLMRunner(str(folder / "decoder.json"))
    old = dict(sidecar, tokenizer="decoder.tokenizer.json")
    del old["tokenizer_sha256"]  # a sidecar written before the hash was recorded still runs
    json.dump(old, open(folder / "decoder.json", "w"))
    shutil.copy(paths["tokenizer"], folder / "decoder.tokenizer.json")
    assert llm_runner.LLMRunner(str(folder / "decoder.json")).decoder.prefill_tokens == 4


def _damaged_folder(tmp_path):
    """A model file (any bytes: the sidecar's checks come before LiteRT) and a good sidecar for it."""
    (tmp_path / "decoder.tflite").write_bytes(b"not really a model")
    (tmp_path / "tok.json").write_text(json.dumps({"tokens": ["a"], "merges": [], "pre": "smollm"}))
    return {"format": "tfxfer-llm-tflite", "model": "decoder.tflite", "tokenizer": "tok.json",
            "sha256": hashlib.sha256(b"not really a model").hexdigest(), "stop_token_ids": [0]}


@pytest.mark.parametrize("change, field", [
    ([], "JSON object"), ({"model": 5}, "`model`"), ({"stop_token_ids": [None]}, "`stop_token_ids`"),
    ({"stop_token_ids": 2}, "`stop_token_ids`"), ({"tokenizer": None}, "`tokenizer`"),
    ({"tokenizer": "list.json"}, "list.json: not a causal LM tokenizer"), (b"\x18\x00TFL3", "not JSON"),
])
def test_a_damaged_sidecar_is_one_error_naming_the_field(tmp_path, capsys, change, field):
    good = _damaged_folder(tmp_path)
    (tmp_path / "list.json").write_text("[1]")
    path = tmp_path / "decoder.json"
    if isinstance(change, bytes):  # the .tflite given instead of its sidecar
        path.write_bytes(change)
    else:
        path.write_text(json.dumps(dict(good, **change) if isinstance(change, dict) else change))
    assert llm_runner.main([str(path), "the", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["exit_code"] == 2 and field in doc["error"]["message"], doc
    if not isinstance(change, dict) or "tokenizer" not in change or change["tokenizer"] is None:
        assert str(path) in doc["error"]["message"]


def test_threads_above_max_threads_is_refused_before_the_model_loads(tmp_path, capsys):
    path = tmp_path / "decoder.json"
    path.write_text(json.dumps(_damaged_folder(tmp_path)))
    assert llm_runner.main([str(path), "the", "--threads", "99999", "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and "`--threads` must be an int in [1, 1024]" in doc["error"]["message"]


@pytest.mark.parametrize("args, message", [
    (["the", "--max-new-tokens", "abc"], "argument --max-new-tokens: invalid int value: 'abc'"),
    (["the", "--sampler", "beam"], "argument --sampler: invalid choice: 'beam'"),
    ([], "the following arguments are required: prompts"),
    (["the", "--js"], "unrecognized arguments: --js"),
])
def test_usage_errors_print_the_ok_false_document_under_json(capsys, args, message):
    code = llm_runner.main(["decoder.json", *args, "--json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert code == doc["exit_code"] == 2 and doc["ok"] is False and doc["error"]["type"] == "UsageError"
    assert message in doc["error"]["message"] and err.startswith("llm_runner.py: error: " + message)


def test_sampler_refuses_what_tfxfers_check_sampler_refuses(saved):
    with pytest.raises(ValueError, match="`temperature` must be a finite number > 0"):
        llm_runner.Sampler("random", temperature=float("inf"))  # every draw would be uniform
    with pytest.raises(ValueError, match=r"`seed` \(--seed\) must be an int in \[0, 4294967295\]"):
        llm_runner.Sampler("random", seed=2**64)
    llm_runner.Sampler("random", seed=2**32 - 1)
    llm_runner.Sampler("top_k").check_vocabulary(10)  # the default 50 is cut to the vocabulary, as tfxfer does
    _, paths = saved
    runner = llm_runner.LLMRunner(paths["sidecar"])
    too_many = runner.decoder.vocabulary_size + 1
    with pytest.raises(ValueError, match=rf"`top_k` must be <= the vocabulary size \({too_many - 1}\)"):
        runner.generate("the", max_new_tokens=2, sampler=llm_runner.Sampler("top_k", top_k=too_many))
    runner.generate("the", max_new_tokens=2, sampler=llm_runner.Sampler("top_k", top_k=too_many - 1, seed=0))


def test_ms_per_token_divides_by_the_timed_decode_steps(monkeypatch):
    """Each decode step takes 10 ms on a fake clock; a stop token after two new tokens means two timed steps."""
    import numpy as np

    clock = [0.0]
    picks = iter([5, 6, 2])  # 2 is the stop token

    class FakeDecoder:
        cache_length, vocabulary_size = 48, 8

        def reset(self):
            pass

        def feed(self, ids):
            clock[0] += 0.010
            logits = np.zeros((len(ids), 8))
            logits[-1, next(picks)] = 1.0
            return logits

    class FakeTokenizer:
        def encode(self, text, name="prompt"):
            return [3, 4]

        def decode(self, ids):
            return "".join(map(str, ids))

    runner = object.__new__(llm_runner.LLMRunner)
    runner.decoder, runner.tokenizer = FakeDecoder(), FakeTokenizer()
    runner.bos_token_id, runner.stop_token_ids = None, {2}
    monkeypatch.setattr(llm_runner.time, "perf_counter", lambda: clock[0])
    got = runner.generate("the", max_new_tokens=10)
    assert got["token_ids"] == [5, 6] and got["stopped"] == "stop_token"
    assert got["ms_per_token"] == pytest.approx(10.0)
