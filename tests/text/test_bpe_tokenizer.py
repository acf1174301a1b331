"""export/bpe_tokenizer.py matches keras-hub's RobertaTokenizer (in-graph tf-text path) id for id,
and a RoBERTa classifier exported to TFLite runs from raw strings through export/litert_runner.py."""

import importlib.util
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from tests.text.helpers import run_device_runner

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(ROOT, "export", "bpe_tokenizer.py")
RUNNER = os.path.join(ROOT, "export", "litert_runner.py")

# Words whose byte sequences get merge rules (built left to right), a few clashing on purpose.
WORDS = [" the", " film", "ing", " was", " good", "don", "'t", " great", "ly", " un", "believ", "able", "the",
         " 100", "  ", "\n\n", " é", "ca", "fé", " café", "👍", " !!", "...", " Zoë", "er", "ab", "ba", "aa", "aaa",
         " acting", " music", " bad", " dull", ","]

CORPUS = [
    "", " ", "  ", "a", "Hello, wörld! 你好 unaffable", "Crème brûlée à la carte — naïve café", "Zoë Saldaña",
    "don't can't won't I'm you're we've he'll she'd it's DON'T", "$100.50 & 20% off #tag @user http://x.com/a?b=c",
    "a  b   c    d", "trailing space ", "trailing  ", " leading", "tabs\tand\nnewlines\r\n", "a\n\nb \n c\t d",
    "emoji 👍🏽 😀!!", "the film was good. The acting, great!", "unbelievable unbelievably", "1,000,000 3.14 ½ ²",
    "x\u00a0y \u00a0z\u3000w \u2009v", "a\x0bb\x0c c\x1f", "<s> hi </s><pad><mask>", "a<s>b", "  <s>  ",
    "१२३ 456 7८9", "६ ६६ a६", "ĴA ĴB", "Ελληνικά Привет مرحبا 日本語 한국어", "aaaa aaaaa ababab baba",
    "e\u0301 combining", "C++ C# .NET", "end\u00a0", "x \u00a0\u2009\u202f\u3000", "the " * 40,
    "...!!!??? ,,, ;;", "''' 's 'S 'll'", "\u200b\u200dzw\ufeff", "\r\n\r\n  \n", "supercalifragilistic" * 5,
]


def _random_corpus(n_chars=150, n_words=120, seed=0):
    rng = random.Random(seed)
    pool = [chr(c) for c in [*range(9, 14), *range(32, 0x250), *range(0x370, 0x400), *range(0x2000, 0x2070),
                             0x3000, 0x96C, 0x1F600, 0x1F44D]]
    out = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 30))) for _ in range(n_chars)]
    words = [w.strip() for w in WORDS]
    out += ["".join(rng.choice([" ", "  ", "", "\n", "'", " '"]) + rng.choice(words)
                    for _ in range(rng.randint(1, 12))) for _ in range(n_words)]
    return out


def load_bpe_module():
    """export/bpe_tokenizer.py, imported from its file (as a device does, not from tfxfer)."""
    spec = importlib.util.spec_from_file_location("bpe_tokenizer", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bpe():
    return load_bpe_module()


def build_vocabulary(bpe, words=WORDS, *, all_bytes=True):
    """A RoBERTa-style vocabulary (special tokens, byte characters, merged pieces) and its merges."""
    table = bpe.bytes_to_unicode()
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for b in range(256) if all_bytes else sorted({b for w in words for b in w.encode("utf-8")}):
        vocab.setdefault(table[b], len(vocab))
    merges = []
    for word in words:
        chars = [table[b] for b in word.encode("utf-8")]
        current = chars[0]
        for char in chars[1:]:
            if f"{current} {char}" not in merges:
                merges.append(f"{current} {char}")
            current += char
            vocab.setdefault(current, len(vocab))
    vocab["<mask>"] = len(vocab)
    return vocab, merges


def _keras_hub_ids(tokenizer, texts):
    """Token ids from keras-hub on the in-graph path (what the Keras model and SavedModel run)."""
    import tensorflow as tf

    ragged = tf.function(lambda x: tokenizer(x), autograph=False)(tf.constant(texts))
    return [list(map(int, ids)) for ids in ragged.to_list()]


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_matches_keras_hub_roberta_tokenizer(bpe, add_prefix_space):
    import keras_hub

    vocab, merges = build_vocabulary(bpe)
    tok = keras_hub.models.RobertaTokenizer(vocabulary=vocab, merges=merges, add_prefix_space=add_prefix_space)
    texts = CORPUS + _random_corpus(seed=int(add_prefix_space))
    expected = _keras_hub_ids(tok, texts)
    mine = bpe.BytePairTokenizer(vocab, merges, unsplittable_tokens=tok.unsplittable_tokens,
                                 add_prefix_space=add_prefix_space)
    mismatches = [(t, e, mine.encode(t)) for t, e in zip(texts, expected) if mine.encode(t) != e]
    assert not mismatches, mismatches[:3]
    merged = [i for e in expected for i in e if i > 260 and i != vocab["<mask>"]]
    assert len(merged) > 300  # the corpus exercises real merges, not just bytes
    specials = expected[CORPUS.index("<s> hi </s><pad><mask>")]
    assert all(vocab[t] in specials for t in ("<s>", "</s>", "<pad>", "<mask>"))  # kept whole
    assert expected[0] == mine.encode("") == ([vocab["Ġ"]] if add_prefix_space else [])


def test_merge_order_and_missing_pieces_follow_keras_hub(bpe):
    """keras-hub merges one left-most best pair per step; pieces outside the vocabulary get id -1."""
    import keras_hub

    vocab, merges = build_vocabulary(bpe, ["ab", "bc", "abc", "ca"], all_bytes=False)
    # a rule ranked before the rule that creates its left token: order-sensitive on purpose
    vocab["abca"] = len(vocab)
    merges.insert(0, "abc a")
    vocab["abc"] = vocab.get("abc", len(vocab))
    tok = keras_hub.models.RobertaTokenizer(vocabulary=vocab, merges=merges)
    texts = ["abcabca", "bcab abc", "abcab z", "cacab", "ab\u00e9c", "a b c"]
    expected = _keras_hub_ids(tok, texts)
    mine = bpe.BytePairTokenizer(vocab, merges, unsplittable_tokens=tok.unsplittable_tokens)
    assert [mine.encode(t) for t in texts] == expected
    assert any(-1 in e for e in expected)  # " z", "é": bytes missing from this vocabulary


def test_pack_matches_keras_hub_preprocessor(bpe):
    import keras_hub
    import tensorflow as tf

    vocab, merges = build_vocabulary(bpe)
    texts = ["the film was good.", "", "unbelievable " * 20, "Zoë's café <mask>"]
    tok = keras_hub.models.RobertaTokenizer(vocabulary=vocab, merges=merges)
    pre = keras_hub.models.RobertaTextClassifierPreprocessor(tok, sequence_length=12)
    expected = tf.function(lambda x: pre(x), autograph=False)(tf.constant(texts))
    packed = bpe.BytePairTokenizer(vocab, merges, unsplittable_tokens=tok.unsplittable_tokens).pack(texts, 12)
    np.testing.assert_array_equal(np.array(packed["token_ids"]), expected["token_ids"].numpy())
    np.testing.assert_array_equal(np.array(packed["padding_mask"]), expected["padding_mask"].numpy().astype(int))


def test_module_needs_no_tensorflow_numpy_or_regex():
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(MODULE)!r}); import bpe_tokenizer; "
            "bad = [m for m in ('tensorflow', 'numpy', 'keras', 'regex') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_and_errors(bpe, tmp_path):
    vocab, merges = build_vocabulary(bpe)
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "".join(m + "\n" for m in merges), encoding="utf-8")
    sidecar = {"tokenizer": {"type": "bpe", "vocabulary": "vocab.json", "merges": "merges.txt", "sequence_length": 6}}
    (tmp_path / "m.json").write_text(json.dumps(sidecar), encoding="utf-8")
    out = subprocess.run([sys.executable, MODULE, str(tmp_path / "m.json"), "the film"], capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout)["token_ids"][0] == [0, vocab["the"], vocab["Ġfilm"], 2, 1, 1]
    out = subprocess.run([sys.executable, MODULE, str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"),
                          "don't"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["tokens"][0] == ["don", "'t"]
    (tmp_path / "none.json").write_text(json.dumps({"tokenizer": None}), encoding="utf-8")
    with pytest.raises(ValueError, match="ships no tokenizer"):
        bpe.BytePairTokenizer.from_config(str(tmp_path / "none.json"))
    (tmp_path / "wp.json").write_text(json.dumps({"tokenizer": {"type": "wordpiece"}}), encoding="utf-8")
    with pytest.raises(ValueError, match="is not 'bpe'"):
        bpe.BytePairTokenizer.from_config(str(tmp_path / "wp.json"))
    with pytest.raises(ValueError, match="Merge rule"):
        bpe.BytePairTokenizer(vocab, ["Ġ zz"])
    with pytest.raises(ValueError, match="start_token"):
        bpe.BytePairTokenizer({"a": 0}, [])
    with pytest.raises(ValueError, match="sequence_length"):
        bpe.BytePairTokenizer(vocab, merges).pack(["a"])


def _tiny_roberta_classifier(bpe, sequence_length=16):
    import keras_hub

    from tfxfer.text import build_text_classifier
    from tfxfer.text.encoders import TextEncoder

    vocab, merges = build_vocabulary(bpe)
    tok = keras_hub.models.RobertaTokenizer(vocabulary=vocab, merges=merges)
    pre = keras_hub.models.RobertaTextClassifierPreprocessor(tok, sequence_length=sequence_length)
    backbone = keras_hub.models.RobertaBackbone(vocabulary_size=len(vocab), num_layers=1, num_heads=2, hidden_dim=16,
                                                intermediate_dim=32, dropout=0.0, max_sequence_length=sequence_length)
    encoder = TextEncoder(backbone=backbone, preprocessor=pre, preset="random")
    return build_text_classifier(encoder, 3, dropout=0.0), vocab


def test_nul_character_is_a_space_in_the_model_and_on_the_device(bpe, tiny_roberta):
    """The model's tokenizer reads NUL as a space (keras-hub cut a string at NUL in graph mode); this
    tokenizer encoded it as a byte token, so Keras and the device saw different ids."""
    from tfxfer.export.text_gate import tokenize_for

    model, vocab = tiny_roberta  # _tiny_roberta_classifier(bpe), built once (tests/text/conftest.py)
    texts = ["good\x00 film", "the\x00film", "\x00", "good"]
    device = bpe.BytePairTokenizer(vocab, build_vocabulary(bpe)[1]).pack(texts, 16)
    assert tokenize_for(model, texts)["token_ids"].tolist() == device["token_ids"]
    assert device == bpe.BytePairTokenizer(vocab, build_vocabulary(bpe)[1]).pack(
        [t.replace("\x00", " ") for t in texts], 16)


def test_roberta_tflite_runs_from_raw_strings_in_the_standalone_runner(tiny_roberta, tmp_path):
    from tfxfer.export import export_text_tflite, verify
    from tfxfer.text import predict_texts

    model, vocab = tiny_roberta  # _tiny_roberta_classifier(bpe), built once (tests/text/conftest.py)
    texts = ["the film was good!", "Dull,  bad music.", "Zoë's café — don't 👍", "", "the acting " * 10,
             "<s> 100 </s>"]
    out = export_text_tflite(model, str(tmp_path / "roberta.tflite"), class_names=["neg", "neu", "pos"])
    assert verify(model, {"float32": out.path}, texts).passed
    assert sorted(os.listdir(tmp_path)) == ["roberta.json", "roberta.merges.txt", "roberta.tflite", "roberta.vocab.json"]
    config = json.loads((tmp_path / "roberta.json").read_text())["tokenizer"]
    assert config["type"] == "bpe" and config["start_token"] == "<s>" and config["sequence_length"] == 16
    assert json.loads((tmp_path / "roberta.vocab.json").read_text()) == vocab
    # the device side, as a user runs it: runner + tokenizer copied beside the model, no tfxfer
    proc = run_device_runner(tmp_path, out.path, texts, "bpe_tokenizer.py", "--json", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    got = np.array([r["probabilities"] for r in results])
    np.testing.assert_allclose(got, predict_texts(model, texts), atol=1e-4)
    assert [r["text"] for r in results] == texts and results[0]["top"][0]["label"] in ("neg", "neu", "pos")
    # a model without a reproducible tokenizer: the runner says so plainly
    sidecar = json.loads((tmp_path / "roberta.json").read_text())
    sidecar["tokenizer"] = None
    (tmp_path / "roberta.json").write_text(json.dumps(sidecar))
    proc = run_device_runner(tmp_path, out.path, ["text"], "bpe_tokenizer.py")
    assert proc.returncode != 0 and "SentencePiece" in proc.stderr and "own tokenizer" in proc.stderr


def test_cli_errors_are_one_line_and_it_reads_a_causal_lm_tokenizer(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bpe_cli", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokens = ["<|endoftext|>", *(chr(c) for c in range(97, 123)), "Ġ", "Ġt", "he", "Ġthe"]
    config = {"tokens": tokens, "merges": ["Ġ t", "h e", "Ġt he"], "pre": "smollm",
              "special_tokens": ["<|endoftext|>"]}
    (tmp_path / "lm.tokenizer.json").write_text(json.dumps(config), encoding="utf-8")
    assert module.main([str(tmp_path / "lm.tokenizer.json"), "a the"]) == 0  # through from_causal_lm
    assert json.loads(capsys.readouterr().out)["token_ids"] == [[tokens.index("a"), tokens.index("Ġthe")]]
    (tmp_path / "list.json").write_text("[1]", encoding="utf-8")
    for args, message in (([str(tmp_path / "nothere.json"), "x"], "FileNotFoundError"),
                          ([str(tmp_path / "lm.tokenizer.json"), os.fsdecode(b"caf\xe9")], "texts[0] is not UTF-8"),
                          ([str(tmp_path / "list.json"), "x"], "expected a JSON object")):
        assert module.main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("bpe_tokenizer.py: error: ") and message in err and err.count("\n") == 1, err
