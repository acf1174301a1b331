"""The string-in, string-out SavedModel: the in-graph tokenizer matches `BPETokenizer` id for id, and
the SavedModel generates what `generate` does, loaded in a fresh process without tfxfer, keras-hub or
tensorflow-text."""

import json
import subprocess
import sys

import pytest

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
