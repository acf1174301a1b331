"""adapt_causal_lm / causal_lm_batches on tiny random Llamas: data layout, LoRA, full, resume."""

import numpy as np
import pytest

from tfxfer.causal_lm import adapt_causal_lm, causal_lm_batches, load_causal_lm, perplexity
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tests.causal_lm.helpers import write_tiny_gguf

TEXTS = ["the and then the end", "and the theme", "then and the"] * 4


@pytest.fixture
def fresh_lm(tmp_path):
    write_tiny_gguf(tmp_path / "tiny.gguf")
    return load_causal_lm(str(tmp_path / "tiny.gguf"), cache_dir=str(tmp_path / "cache"))


def _batch(dataset):
    x, y, w = next(iter(dataset))
    return {k: v.numpy() for k, v in x.items()}, y.numpy(), w.numpy()


def test_packed_text_windows(fresh_lm):
    tok = fresh_lm.tokenizer
    stream = [i for t in TEXTS[:3] for i in tok.encode(t) + [tok.eos_token_id]]
    n = next(n for n in range(6, 12) if (len(stream) - 1) % n > 1)  # the last window is partial
    x, y, w = _batch(causal_lm_batches(fresh_lm, texts=TEXTS[:3], sequence_length=n, batch_size=64, seed=None))
    np.testing.assert_array_equal(x["token_ids"][0], stream[:n])
    np.testing.assert_array_equal(y[0], stream[1:n + 1])
    np.testing.assert_array_equal(x["token_ids"][1], stream[n:2 * n])  # windows overlap by one token
    assert w[:-1].all() and x["padding_mask"][:-1].all()
    last = len(stream) - n * (len(w) - 1)  # tokens in the last window
    assert 2 <= last <= n
    assert w[-1].sum() == last - 1 and x["padding_mask"][-1].sum() == last
    assert len(w) == -(-(len(stream) - 1) // n)


def test_pairs_weigh_only_the_completion(fresh_lm):
    tok = fresh_lm.tokenizer
    x, y, w = _batch(causal_lm_batches(fresh_lm, pairs=[("the and", " then")], sequence_length=12,
                                       batch_size=4, seed=None))
    prompt, completion = tok.encode("the and"), tok.encode(" then") + [tok.eos_token_id]
    n = len(prompt) + len(completion)
    np.testing.assert_array_equal(x["token_ids"][0, :n], prompt + completion)
    np.testing.assert_array_equal(w[0], [0] * (len(prompt) - 1) + [1] * len(completion) + [0] * (12 - n + 1))
    np.testing.assert_array_equal(y[0][w[0] > 0], completion)
    assert x["padding_mask"][0].sum() == n


def test_long_pair_keeps_the_end_of_its_prompt(fresh_lm):
    with pytest.warns(UserWarning, match=r"pairs\[0\] has \d+ tokens; the window holds 9"):
        x, _, w = _batch(causal_lm_batches(fresh_lm, pairs=[("the and " * 10, " then")], sequence_length=8,
                                           batch_size=1))
    assert w[0].sum() == len(fresh_lm.tokenizer.encode(" then")) + 1


def test_lora_trains_only_the_adapters(fresh_lm):
    backbone = fresh_lm.backbone
    before = {v.path: np.array(v) for v in backbone.weights}
    loss_before = perplexity(fresh_lm, TEXTS[:3])
    history = adapt_causal_lm(fresh_lm, texts=TEXTS, epochs=3, sequence_length=16, batch_size=4,
                              learning_rate=1e-2, lora_rank=4)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert perplexity(fresh_lm, TEXTS[:3]) < loss_before
    for v in backbone.weights:
        if v.path in before:  # base weights: frozen, bit-identical
            np.testing.assert_array_equal(np.array(v), before[v.path], err_msg=v.path)
    assert any("lora" in v.path for v in backbone.trainable_weights)
    assert all("lora" in v.path for v in backbone.trainable_weights)


def test_full_fine_tuning_moves_every_layer(fresh_lm):
    before = np.array(fresh_lm.backbone.transformer_layers[0]._feedforward_gate_dense.kernel)
    adapt_causal_lm(fresh_lm, pairs=[("the", " and then")] * 8, epochs=1, sequence_length=8, batch_size=4,
                    learning_rate=1e-2, lora_rank=None)
    after = np.array(fresh_lm.backbone.transformer_layers[0]._feedforward_gate_dense.kernel)
    assert np.abs(after - before).max() > 1e-4


def test_resume_continues_from_the_last_epoch(tmp_path):
    def run(epochs):
        write_tiny_gguf(tmp_path / "tiny.gguf")
        lm = load_causal_lm(str(tmp_path / "tiny.gguf"), cache_dir=str(tmp_path / "cache"))
        history = adapt_causal_lm(lm, texts=TEXTS, epochs=epochs, sequence_length=16, batch_size=4,
                                  learning_rate=1e-2, checkpoint_dir=str(tmp_path / "ckpt"))
        return lm, history

    _, first = run(2)
    lm, second = run(3)  # a rerun: only epoch 3 trains
    assert len(first.history["loss"]) == 2 and len(second.history["loss"]) == 1
    assert second.history["loss"][0] < first.history["loss"][0]


def test_bad_arguments(fresh_lm):
    with pytest.raises(ArgumentError, match="exactly one of them"):
        causal_lm_batches(fresh_lm, texts=TEXTS, pairs=[("a", "b")], sequence_length=8, batch_size=2)
    with pytest.raises(ArgumentTypeError, match="`texts` must be a list of strings"):
        causal_lm_batches(fresh_lm, texts="one text", sequence_length=8, batch_size=2)
    with pytest.raises(ArgumentError, match=r"`texts\[1\]` must be a non-empty string"):
        causal_lm_batches(fresh_lm, texts=["a b", ""], sequence_length=8, batch_size=2)
    with pytest.raises(ArgumentError, match=r"`pairs\[0\]` must be a \(prompt, completion\) pair"):
        causal_lm_batches(fresh_lm, pairs=[("only prompt",)], sequence_length=8, batch_size=2)
    with pytest.raises(ArgumentError, match="leaves no room for the prompt"):
        causal_lm_batches(fresh_lm, pairs=[("a", "the and " * 10)], sequence_length=8, batch_size=2)
    with pytest.raises(ArgumentError, match="`sequence_length` must be an int in \\[1, 64\\]"):
        causal_lm_batches(fresh_lm, texts=TEXTS, sequence_length=65, batch_size=2)
    with pytest.raises(DataError, match="fewer than two tokens"):
        causal_lm_batches(fresh_lm, texts=[], sequence_length=8, batch_size=2)
    with pytest.raises(ArgumentError, match="`lora_rank` must be an int >= 1 or None"):
        adapt_causal_lm(fresh_lm, texts=TEXTS, lora_rank=0)
