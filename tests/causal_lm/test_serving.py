"""The string-in, string-out SavedModel: the in-graph tokenizer matches `BPETokenizer` id for id, and
the SavedModel generates what `generate` does, loaded in a fresh process without tfxfer, keras-hub or
tensorflow-text."""

import json
import subprocess
import sys

import pytest

from tfxfer.causal_lm.tokenizer import byte_vocabulary
from tfxfer.errors import ArgumentError, ArgumentTypeError

EDGE = ["hello  world", "a\n\nb", "a \tb", "x \n y", "  lead", "trail  ", "it's THE'S 'll", "1234 56.7",
        "a\u00a0b c\u2009d", "<|im_start|>user\nHi 12!<|im_end|>\n<|im_start|>assistant\n", "emoji \U0001F600 ok",
        "naïve café — “quotes”", "\n", " ", "tab\t\tx", "a  \n\n  b", "<|im_end|><|im_end|>x", "e=mc²½",
        "中文字符 测试", "end.\r\n", "the and theand  an and"]

CHILD = """
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["generate"](prompts=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"text": [t.decode("utf-8") for t in out["text"].numpy()], "new_tokens": out["new_tokens"].numpy().tolist(),
                  "imported": [m for m in ("tfxfer", "keras_hub", "tensorflow_text") if m in sys.modules]}))
"""


def test_graph_tokenizer_matches_the_tokenizer_id_for_id(tiny_lm):
    import tensorflow as tf

    from tfxfer.causal_lm.serving import GraphBPE

    graph = GraphBPE(tiny_lm.tokenizer)
    got = tf.function(graph.tokenize)(tf.constant(EDGE)).to_list()
    assert got == [tiny_lm.tokenizer.encode(t) for t in EDGE]
    assert any(len(ids) < len(t.encode("utf-8")) for ids, t in zip(got, EDGE))  # merges and control tokens applied
    back = graph.detokenize(tf.ragged.constant(got)).numpy()
    assert [b.decode("utf-8") for b in back] == EDGE


def test_savedmodel_generates_like_generate_in_a_fresh_process(tiny_lm, tmp_path):
    from tfxfer.causal_lm import generate, generate_ids
    from tfxfer.causal_lm.serving import save_generate_savedmodel

    prompts = ["the cat", "<|im_start|>user\nand 12<|im_end|>\n", "x" * 200]  # the last is cut to the context
    # the first token greedy decoding gives the first prompt is made a stop token: that row ends at once
    stop = generate_ids(tiny_lm, [tiny_lm.tokenizer.encode(prompts[0])], max_new_tokens=1)[0][0]
    path = save_generate_savedmodel(tiny_lm, tmp_path / "lm", max_new_tokens=6, stop_tokens=[stop])
    done = subprocess.run([sys.executable, "-c", CHILD, path, json.dumps(prompts)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["imported"] == []
    with pytest.warns(UserWarning, match="cut to its last"):
        expected = generate(tiny_lm, prompts, max_new_tokens=6, stop_tokens=[stop])
    assert out["text"] == expected
    assert out["new_tokens"][0] == 0 and expected[0] == ""
    assert all(0 <= n <= 6 for n in out["new_tokens"]) and any(n > 0 for n in out["new_tokens"])


def test_bad_arguments(tiny_lm, tmp_path):
    from tfxfer.causal_lm.serving import GraphBPE, save_generate_savedmodel

    with pytest.raises(ArgumentTypeError, match="lm"):
        save_generate_savedmodel("model", tmp_path / "x")
    with pytest.raises(ArgumentError, match="max_new_tokens"):
        save_generate_savedmodel(tiny_lm, tmp_path / "x", max_new_tokens=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArgumentError, match="must be a folder"):
        save_generate_savedmodel(tiny_lm, tmp_path / "file", max_new_tokens=2)
    with pytest.raises(ArgumentTypeError, match="BPETokenizer"):
        GraphBPE("tokenizer")


# A vocabulary without a token for the byte 0x14 (SmolLM2 lacks 21 bytes, 0x14 among them).
NO_0X14 = [t for b, t in enumerate(byte_vocabulary()) if b != 0x14] + ["ab", "<|end|>"]


@pytest.fixture(scope="module")
def partial_lm():
    import keras

    from tfxfer.causal_lm import LlamaConfig, build_language_model
    from tfxfer.causal_lm.tokenizer import BPETokenizer

    keras.utils.set_random_seed(0)
    tok = BPETokenizer(tokens=NO_0X14, merges=["a b"], special_tokens=["<|end|>"], eos_token_id=len(NO_0X14) - 1)
    config = LlamaConfig(vocabulary_size=len(NO_0X14), num_layers=1, num_query_heads=2, num_key_value_heads=1,
                         hidden_dim=16, intermediate_dim=32, context_length=32)
    return build_language_model(config, tok, name="partial")


def test_graph_tokenizer_keeps_the_reserved_characters_of_a_prompt(tiny_lm):
    """The separator (U+E000) and the control-token stand-ins are escaped: a prompt holding them is
    tokenized as `BPETokenizer` does, never cut there nor read as a control token."""
    import tensorflow as tf

    from tfxfer.causal_lm.serving import GraphBPE

    texts = ["a\ue000b", "\ua66eA\ua66e", "x \ua66eA\ua66e", "a \ue000 b", "\ue001\ue002\ue003\ue004\ue005",
             "\ue001\ue004 x", "<|im_end|>\ue002", "\ue002\ue002<|im_start|>", " \ue001\ue001\ue003y", "1\ue0002"]
    got = tf.function(GraphBPE(tiny_lm.tokenizer).tokenize)(tf.constant(texts)).to_list()
    assert got == [tiny_lm.tokenizer.encode(t) for t in texts]


def test_graph_tokenizer_refuses_a_character_the_vocabulary_has_no_byte_for(partial_lm):
    import tensorflow as tf

    from tfxfer.causal_lm.serving import GraphBPE

    with pytest.raises(ArgumentError, match=r"`text` holds '\\x14' at index 1"):
        partial_lm.tokenizer.encode("a\x14b")
    tokenize = tf.function(GraphBPE(partial_lm.tokenizer).tokenize)
    assert tokenize(tf.constant(["ab b", "a\x15"])).to_list() == [partial_lm.tokenizer.encode(t) for t in
                                                                 ["ab b", "a\x15"]]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"`strings\[1\]` holds the character U\+0014 at index 3, whose UTF-8 bytes"):
        tokenize(tf.constant(["ab", "ab \x14 42"]))


def test_savedmodel_refuses_what_generate_refuses(partial_lm, tmp_path):
    """An empty batch, an empty prompt, text that is not UTF-8 and a character without byte token each fail
    the request with a message naming the prompt; a good batch still answers as `generate`."""
    import tensorflow as tf

    from tfxfer.causal_lm import generate
    from tfxfer.causal_lm.serving import save_generate_savedmodel

    path = save_generate_savedmodel(partial_lm, tmp_path / "lm", max_new_tokens=3)
    serve = tf.saved_model.load(path).signatures["generate"]
    for prompts in ([""], ["", "ab"], ["ab", ""]):
        with pytest.raises(ArgumentError, match=rf"`prompts\[{prompts.index('')}\]` must be a non-empty string"):
            generate(partial_lm, prompts, max_new_tokens=3)
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=rf"`prompts\[{prompts.index('')}\]` must be a non-empty string"):
            serve(prompts=tf.constant(prompts))
    with pytest.raises(tf.errors.InvalidArgumentError, match="`prompts` must hold at least one prompt"):
        serve(prompts=tf.constant([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`prompts\[1\]` must be valid UTF-8"):
        serve(prompts=tf.constant([b"ab", b"a\xffb"]))
    with pytest.raises(ArgumentError, match=r"`prompts\[0\]` holds '\\x14'"):
        generate(partial_lm, ["Total:\x14 42"], max_new_tokens=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`prompts\[0\]` holds the character U\+0014 at index 6"):
        serve(prompts=tf.constant(["Total:\x14 42", "ab"]))
    good = ["ab ba", "a\ue000b"]
    out = serve(prompts=tf.constant(good))
    assert [t.decode("utf-8") for t in out["text"].numpy()] == generate(partial_lm, good, max_new_tokens=3)
