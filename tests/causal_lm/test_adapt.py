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
    x, y, w = _batch(causal_lm_batches(fresh_lm, TEXTS[:3], sequence_length=n, batch_size=64, seed=None))
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
    x, y, w = _batch(causal_lm_batches(fresh_lm, [("the and", " then")], sequence_length=12,
                                       batch_size=4, seed=None))
    prompt, completion = tok.encode("the and"), tok.encode(" then") + [tok.eos_token_id]
    n = len(prompt) + len(completion)
    np.testing.assert_array_equal(x["token_ids"][0, :n], prompt + completion)
    np.testing.assert_array_equal(w[0], [0] * (len(prompt) - 1) + [1] * len(completion) + [0] * (12 - n + 1))
    np.testing.assert_array_equal(y[0][w[0] > 0], completion)
    assert x["padding_mask"][0].sum() == n


def test_pairs_hold_one_start_token_never_a_target(fresh_lm):
    """With add_bos_token the completion was encoded with its own start token: two per row, one a target."""
    import dataclasses

    from tfxfer.causal_lm import BPETokenizer

    tok = BPETokenizer(**{**fresh_lm.tokenizer.get_config(), "add_bos_token": True})
    bos_lm = dataclasses.replace(fresh_lm, tokenizer=tok)
    x, y, w = _batch(causal_lm_batches(bos_lm, [("the and", " then")], sequence_length=12, batch_size=1,
                                       seed=None))
    row = x["token_ids"][0][x["padding_mask"][0]].tolist()
    assert row == tok.encode("the and") + tok.encode(" then", add_bos=False) + [tok.eos_token_id]
    assert row.count(tok.bos_token_id) == 1 and row[0] == tok.bos_token_id
    np.testing.assert_array_equal(y[0][w[0] > 0], tok.encode(" then", add_bos=False) + [tok.eos_token_id])
    with pytest.warns(UserWarning, match="its prompt is cut"):  # a cut prompt keeps its start token
        x, _, w = _batch(causal_lm_batches(bos_lm, [("the and " * 10, " then")], sequence_length=8,
                                           batch_size=1))
    assert x["token_ids"][0, 0] == tok.bos_token_id and (x["token_ids"][0, 1:] != tok.bos_token_id).all()


def test_long_pair_keeps_the_end_of_its_prompt(fresh_lm):
    with pytest.warns(UserWarning, match=r"data\[0\] has \d+ tokens; the window holds 9"):
        x, _, w = _batch(causal_lm_batches(fresh_lm, [("the and " * 10, " then")], sequence_length=8,
                                           batch_size=1))
    assert w[0].sum() == len(fresh_lm.tokenizer.encode(" then")) + 1


def test_lora_trains_only_the_adapters(fresh_lm):
    backbone = fresh_lm.backbone
    before = {v.path: np.array(v) for v in backbone.weights}
    loss_before = perplexity(fresh_lm, TEXTS[:3])
    result = adapt_causal_lm(fresh_lm, TEXTS, epochs=3, sequence_length=16, batch_size=4,
                             base_lr=1e-2, lora_rank=4)
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert perplexity(fresh_lm, TEXTS[:3]) < loss_before
    for v in backbone.weights:
        if v.path in before:  # base weights: frozen, bit-identical
            np.testing.assert_array_equal(np.array(v), before[v.path], err_msg=v.path)
    assert any("lora" in v.path for v in backbone.trainable_weights)
    assert all("lora" in v.path for v in backbone.trainable_weights)


def test_full_fine_tuning_moves_every_layer(fresh_lm):
    before = np.array(fresh_lm.backbone.transformer_layers[0]._feedforward_gate_dense.kernel)
    result = adapt_causal_lm(fresh_lm, train=[("the", " and then")] * 8, epochs=1, sequence_length=8,
                             batch_size=4, base_lr=1e-2, lora_rank=None)
    assert result.settings["data"] == "pairs" and result.settings["lora_rank"] is None
    after = np.array(fresh_lm.backbone.transformer_layers[0]._feedforward_gate_dense.kernel)
    assert np.abs(after - before).max() > 1e-4


def test_full_fine_tuning_is_refused_once_lora_is_enabled(fresh_lm):
    """lora_rank=None after LoRA was enabled trained the adapters alone (base weights frozen) while
    reporting lora_rank None; LoRA cannot be switched off, so it is refused before any work."""
    fresh_lm.backbone.enable_lora(2)  # as an earlier adapt or a reloaded save_causal_lm folder leaves it
    trainable, optimizer = len(fresh_lm.model.trainable_weights), fresh_lm.model.optimizer
    with pytest.raises(ArgumentError, match=r"`lora_rank` cannot be None \(full fine-tuning\) on a model with "
                                            r"LoRA already enabled at rank 2.*pass lora_rank=2"):
        adapt_causal_lm(fresh_lm, TEXTS, sequence_length=8, lora_rank=None)
    assert len(fresh_lm.model.trainable_weights) == trainable and fresh_lm.model.optimizer is optimizer


def test_resume_continues_from_the_last_epoch(tmp_path):
    def run(epochs):
        write_tiny_gguf(tmp_path / "tiny.gguf")
        lm = load_causal_lm(str(tmp_path / "tiny.gguf"), cache_dir=str(tmp_path / "cache"))
        result = adapt_causal_lm(lm, TEXTS, epochs=epochs, sequence_length=16, batch_size=4,
                                 base_lr=1e-2, checkpoint_dir=str(tmp_path / "ckpt"))
        return lm, result

    _, first = run(2)
    lm, second = run(3)  # a rerun: only epoch 3 trains
    assert first.resumed_from is None and second.resumed_from is not None
    assert first.steps[1]["epochs"] == 2 and second.steps[1]["epochs"] == 1
    assert second.history["loss"][:2] == first.history["loss"]  # the merged history holds all 3 epochs
    assert second.history["loss"][2] < first.history["loss"][0]


def test_result_reports_history_wall_times_and_settings(fresh_lm):
    result = adapt_causal_lm(fresh_lm, TEXTS, val=TEXTS[:2], epochs=2, sequence_length=16, batch_size=4,
                             base_lr=1e-2, warmup_share=0.25, lr_decay="cosine", seed=3)
    assert [s["name"] for s in result.steps] == ["data", "train"]
    assert all(s["wall_s"] > 0 for s in result.steps)
    assert result.wall_s == pytest.approx(sum(s["wall_s"] for s in result.steps))
    assert len(result.history["loss"]) == len(result.history["val_loss"]) == 2
    assert result.final("val_loss") == result.history["val_loss"][-1]
    assert result.steps[1]["batches"] == 2  # 12 texts pack into 5 windows of 17 tokens, 4 per batch
    assert result.settings == {"data": "texts", "epochs": 2, "base_lr": 1e-2, "batch_size": 4,
                               "sequence_length": 16, "lora_rank": 8, "weight_decay": 0.0,
                               "warmup_share": 0.25, "lr_decay": "cosine", "seed": 3}


def test_warmup_then_cosine_schedule(fresh_lm):
    adapt_causal_lm(fresh_lm, TEXTS, epochs=2, sequence_length=16, batch_size=4, base_lr=1e-2,
                    warmup_share=0.25, lr_decay="cosine")
    schedule = fresh_lm.model.optimizer.learning_rate_schedule if hasattr(
        fresh_lm.model.optimizer, "learning_rate_schedule") else fresh_lm.model.optimizer._learning_rate
    rates = [float(schedule(step)) for step in range(4)]  # 2 epochs x 2 batches: 1 warmup step
    assert rates[0] == pytest.approx(0.0) and rates[1] == pytest.approx(1e-2)
    assert rates[1] > rates[2] > rates[3]


def test_same_seed_same_result(tmp_path):
    losses = []
    for run in range(2):
        write_tiny_gguf(tmp_path / f"tiny{run}.gguf")
        lm = load_causal_lm(str(tmp_path / f"tiny{run}.gguf"), cache_dir=str(tmp_path / f"cache{run}"))
        losses.append(adapt_causal_lm(lm, TEXTS, epochs=2, sequence_length=16, batch_size=4, base_lr=1e-2,
                                      seed=5).history["loss"])
    assert losses[0] == losses[1]


def test_callbacks_can_stop_training(fresh_lm):
    import keras

    class StopAfterOneBatch(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    result = adapt_causal_lm(fresh_lm, TEXTS, epochs=3, sequence_length=8, batch_size=2, base_lr=1e-2,
                             callbacks=[StopAfterOneBatch()])
    assert len(result.history["loss"]) == 1 and result.steps[1]["batches"] > 1
    with pytest.raises(ArgumentTypeError, match="`callbacks` must be a list of keras.callbacks.Callback"):
        adapt_causal_lm(fresh_lm, TEXTS, callbacks=StopAfterOneBatch())
    with pytest.raises(ArgumentTypeError, match="`callbacks` must be a list of keras.callbacks.Callback"):
        adapt_causal_lm(fresh_lm, TEXTS, callbacks=5)
    # None is no callbacks (it was a raw TypeError: 'NoneType' object is not iterable)
    result = adapt_causal_lm(fresh_lm, TEXTS[:2], sequence_length=8, batch_size=2, callbacks=None)
    assert len(result.history["loss"]) == 1


def test_bad_arguments(fresh_lm):
    with pytest.raises(ArgumentError, match=r"`data\[1\]` must be a \(prompt, completion\) pair like the first"):
        causal_lm_batches(fresh_lm, [("a", "b"), "a text"], sequence_length=8, batch_size=2)
    with pytest.raises(ArgumentTypeError, match="`train` must be a list of texts or a list of"):
        adapt_causal_lm(fresh_lm, "one text")
    with pytest.raises(ArgumentError, match=r"`val\[1\]` must be a non-empty string"):
        adapt_causal_lm(fresh_lm, TEXTS, val=["a b", ""])
    with pytest.raises(ArgumentError, match=r"`train\[0\]` must be a \(prompt, completion\) pair"):
        adapt_causal_lm(fresh_lm, train=[("only prompt",)])
    with pytest.raises(ArgumentError, match="leaves no room for the prompt"):
        causal_lm_batches(fresh_lm, [("a", "the and " * 10)], sequence_length=8, batch_size=2)
    with pytest.raises(ArgumentError, match="`sequence_length` must be an int in \\[1, 64\\]"):
        causal_lm_batches(fresh_lm, TEXTS, sequence_length=65, batch_size=2)
    with pytest.raises(DataError, match="No training example in `train`: .*fewer than two tokens"):
        adapt_causal_lm(fresh_lm, [], sequence_length=8)
    with pytest.raises(ArgumentError, match="`lora_rank` must be an int >= 1 or None"):
        adapt_causal_lm(fresh_lm, TEXTS, lora_rank=0)
    with pytest.raises(ArgumentError, match="`base_lr` must be"):
        adapt_causal_lm(fresh_lm, TEXTS, base_lr=-1)
    with pytest.raises(ArgumentError, match="`lr_decay` must be one of"):
        adapt_causal_lm(fresh_lm, TEXTS, lr_decay="linear")
    with pytest.raises(TypeError, match="texts"):
        adapt_causal_lm(fresh_lm, texts=TEXTS)  # the old keyword is gone (no alias)


def test_losses_are_per_target_token(fresh_lm):
    """``val_loss`` is the mean cross-entropy of the completion tokens alone: neither the prompt's zero
    weights nor the window's padding dilute it (Keras' default reduction divides by every position)."""
    import keras

    pairs = [("the and then the end and the", " theme"), ("then", " and the end")]
    result = adapt_causal_lm(fresh_lm, pairs, val=pairs, epochs=1, sequence_length=16, batch_size=2,
                             base_lr=1e-12, lora_rank=2, seed=0)  # the weights barely move
    x, y, w = _batch(causal_lm_batches(fresh_lm, pairs, sequence_length=16, batch_size=2, seed=None))
    logits = np.asarray(fresh_lm.model(x))
    nll = -np.take_along_axis(np.asarray(keras.ops.log_softmax(logits, axis=-1)), y[..., None], axis=-1)[..., 0]
    expected = float((nll * w).sum() / w.sum())
    assert result.final("val_loss") == pytest.approx(expected, rel=1e-4)
    assert w.sum() < w.size / 2  # most positions are prompt or padding: a diluted mean would be far lower


def test_bad_text_errors_name_the_argument_and_item(tiny_lm):
    """Errors named `texts[0]` / `text` (the tokenizer's defaults) instead of what the user passed."""
    from tfxfer.causal_lm import adapt_causal_lm
    from tfxfer.errors import ArgumentError

    kwargs = dict(sequence_length=8, batch_size=2, lora_rank=2)
    with pytest.raises(ArgumentError, match=r"`train\[0\]` must be valid Unicode"):
        adapt_causal_lm(tiny_lm, ["a\udc80"], **kwargs)
    with pytest.raises(ArgumentError, match=r"`train\[0\]\[1\]` must be valid Unicode"):
        adapt_causal_lm(tiny_lm, [("a", "b\udc80")], **kwargs)
    with pytest.raises(ArgumentError, match=r"`val\[0\]` must be valid Unicode"):
        adapt_causal_lm(tiny_lm, ["the cat sat"], val=["b\udc80"], **kwargs)
