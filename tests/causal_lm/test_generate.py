"""generate / generate_ids / perplexity on a tiny random Llama (2 layers, hidden 16)."""

import math

import numpy as np
import pytest

from tfxfer.causal_lm import generate, generate_ids, make_sampler, perplexity, token_losses
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, UnknownNameError


def _naive_greedy(lm, ids, steps):
    """Full forward pass per step, argmax of the last position: no cache, no sampler."""
    ids = list(ids)
    for _ in range(steps):
        x = np.asarray([ids], dtype="int32")
        logits = np.asarray(lm.model({"token_ids": x, "padding_mask": np.ones_like(x, bool)}))
        ids.append(int(logits[0, -1].argmax()))
    return ids


def test_greedy_matches_a_full_forward_loop(tiny_lm):
    prompts = [[3, 40, 71, 260], [1, 90], [50, 51, 52, 53, 54, 55]]  # different lengths, one batch
    new = generate_ids(tiny_lm, prompts, max_new_tokens=6)
    for prompt, got in zip(prompts, new):
        assert got == _naive_greedy(tiny_lm, prompt, 6)[len(prompt):]


def test_generate_text_and_batching(tiny_lm):
    prompts = ["the and", "hello there, the", "1 2 3"]
    together = generate(tiny_lm, prompts, max_new_tokens=5, stop_tokens=None)
    apart = [generate(tiny_lm, p, max_new_tokens=5, stop_tokens=None) for p in prompts]
    assert together == apart and all(isinstance(t, str) for t in together)
    ids = generate_ids(tiny_lm, [tiny_lm.tokenizer.encode(prompts[0])], max_new_tokens=5)[0]
    assert together[0] == tiny_lm.tokenizer.decode(ids)
    assert generate(tiny_lm, prompts, max_new_tokens=5, stop_tokens=None, batch_size=2) == together


def test_stop_tokens_cut_the_output(tiny_lm):
    prompt = [3, 40, 71, 260]
    free = generate_ids(tiny_lm, [prompt], max_new_tokens=8)[0]
    stop = free[3]
    first = free.index(stop)
    cut = generate_ids(tiny_lm, [prompt], max_new_tokens=8, stop_token_ids=(stop,))[0]
    assert cut == free[:first]
    text = generate(tiny_lm, "x", max_new_tokens=4, stop_tokens=[tiny_lm.tokenizer.tokens[stop], 2])
    assert isinstance(text, str)


def test_sampling_is_repeatable_with_a_seed(tiny_lm):
    kwargs = dict(max_new_tokens=8, stop_tokens=None, temperature=1.5, seed=7)
    a = generate(tiny_lm, ["the"], sampler="top_k", top_k=20, **kwargs)
    b = generate(tiny_lm, ["the"], sampler="top_k", top_k=20, **kwargs)
    assert a == b
    assert generate(tiny_lm, ["the"], sampler="top_k", top_k=20, **{**kwargs, "seed": 8}) != a
    c = generate(tiny_lm, ["the"], sampler="top_p", top_p=0.95, **kwargs)
    assert isinstance(c[0], str)
    # top_k=1 is greedy whatever the temperature
    one = generate(tiny_lm, ["the"], sampler="top_k", top_k=1, **kwargs)
    assert one == generate(tiny_lm, ["the"], max_new_tokens=8, stop_tokens=None)


def test_new_seeds_and_settings_reuse_one_trace(tiny_lm):
    """Each new seed, temperature, top_k or top_p traced and kept another decode loop (1-2 s a call on
    the tiny model, the cache growing without bound); they are variables of one loop now."""
    from tfxfer.causal_lm import generation

    generation.compiled_loops(tiny_lm.model).clear()
    kwargs = dict(max_new_tokens=6, stop_tokens=None)
    first = generate(tiny_lm, ["the"], sampler="top_k", top_k=20, temperature=1.5, seed=7, **kwargs)
    for seed, temperature, top_k in ((8, 1.5, 20), (9, 0.7, 5), (10, 2.0, 1)):
        generate(tiny_lm, ["the"], sampler="top_k", top_k=top_k, temperature=temperature, seed=seed, **kwargs)
    generate(tiny_lm, ["the"], sampler="top_k", **kwargs)  # unseeded, default top_k
    loops = generation.compiled_loops(tiny_lm.model)
    assert len(loops) == 1
    assert next(iter(loops.values())).function.experimental_get_tracing_count() == 1
    # the seed still restarts the stream: the same seed after other calls gives the same tokens
    assert generate(tiny_lm, ["the"], sampler="top_k", top_k=20, temperature=1.5, seed=7, **kwargs) == first
    for stop in range(generation.MAX_LOOPS + 2):  # other stop tokens trace other loops: the oldest go
        generate_ids(tiny_lm, [[3, 40]], max_new_tokens=2, stop_token_ids=(stop,))
    assert len(loops) == generation.MAX_LOOPS


def test_a_model_that_generated_is_freed(tiny_gguf, tmp_path):
    """The loops were kept in a weak dictionary keyed by the model, but each loop's traced function holds
    its model, so no model that had generated was ever freed."""
    import gc
    import weakref

    from tfxfer.causal_lm import load_causal_lm

    lm = load_causal_lm(tiny_gguf(), cache_dir=str(tmp_path / "cache"))
    generate(lm, ["the"], max_new_tokens=2, stop_tokens=None)
    model = weakref.ref(lm.model)
    del lm
    gc.collect()
    assert model() is None


def test_long_prompt_is_cut_from_the_left_with_a_warning(tiny_lm):
    long = "the and " * 40  # > 64 tokens
    ids = tiny_lm.tokenizer.encode(long)
    with pytest.warns(UserWarning, match=r"prompts\[0\] has \d+ tokens; the context holds 64 and "
                                         r"max_new_tokens=4, so it is cut to its last 60 tokens"):
        got = generate(tiny_lm, [long], max_new_tokens=4, stop_tokens=None)
    assert got[0] == tiny_lm.tokenizer.decode(generate_ids(tiny_lm, [ids[-60:]], max_new_tokens=4)[0])


def test_bad_generate_arguments(tiny_lm):
    with pytest.raises(ArgumentError, match=r"`prompts\[1\]` must be a non-empty string"):
        generate(tiny_lm, ["ok", ""], max_new_tokens=2)
    with pytest.raises(ArgumentError, match="`prompts` must hold at least one prompt"):
        generate(tiny_lm, [], max_new_tokens=2)
    with pytest.raises(ArgumentTypeError, match=r"`prompts\[0\]` must be a str"):
        generate(tiny_lm, [3], max_new_tokens=2)
    with pytest.raises(ArgumentError, match="`max_new_tokens` must be an int in \\[1, 63\\]"):
        generate(tiny_lm, ["a"], max_new_tokens=64)
    with pytest.raises(ArgumentError, match=r"`stop_tokens\[0\]` must be a token of the vocabulary"):
        generate(tiny_lm, ["a"], max_new_tokens=2, stop_tokens=["<|eot_id|>"])
    with pytest.raises(ArgumentError, match="`prompt_ids` must be a non-empty list"):
        generate_ids(tiny_lm, [[1], []], max_new_tokens=2)
    with pytest.raises(ArgumentError, match=r"plus the longest prompt \(60 tokens\) must fit the context"):
        generate_ids(tiny_lm, [[5] * 60], max_new_tokens=5)
    with pytest.raises(ArgumentTypeError, match="`stop_tokens` must be"):
        generate(tiny_lm, ["a"], max_new_tokens=2, stop_tokens="<|im_end|>")
    with pytest.raises(ArgumentError, match='`top_k` has no effect with sampler="top_p"'):
        generate(tiny_lm, ["a"], max_new_tokens=2, sampler="top_p", top_k=3)


@pytest.mark.parametrize("name, kwargs, error, match", [
    ("beam", {}, UnknownNameError, "Unknown sampler 'beam'"),
    ("greedy", {"temperature": 0.5}, ArgumentError, 'no effect with sampler="greedy"'),
    ("greedy", {"seed": 1}, ArgumentError, "`seed` has no effect"),
    ("top_k", {"temperature": 0.0}, ArgumentError, "`temperature` must be a finite number > 0"),
    ("top_k", {"top_k": 0}, ArgumentError, "`top_k` must be an int >= 1"),
    ("top_p", {"top_p": 1.5}, ArgumentError, r"`top_p` must be a finite number in \(0, 1\]"),
    ("random", {"temperature": float("nan")}, ArgumentError, "`temperature`"),
])
def test_sampler_settings_are_checked(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        make_sampler(name, **kwargs)


def test_perplexity_matches_a_direct_computation(tiny_lm):
    texts = ["the and then", "hello world, the end"]
    expected_losses = []
    for text in texts:
        ids = np.asarray([tiny_lm.tokenizer.encode(text)], dtype="int32")
        logits = np.asarray(tiny_lm.model({"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}),
                            dtype=np.float64)[0]
        log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
            - logits.max(-1, keepdims=True)
        expected_losses.extend(-log_probs[np.arange(len(ids[0]) - 1), ids[0, 1:]])
    expected = math.exp(float(np.mean(expected_losses)))
    assert perplexity(tiny_lm, texts) == pytest.approx(expected, rel=1e-5)
    assert perplexity(tiny_lm, texts, batch_size=1) == pytest.approx(expected, rel=1e-5)
    # a random model over ~270 tokens is near-uniform: perplexity in the hundreds
    assert 30 < expected < 3000


def test_perplexity_windows(tiny_lm):
    text = "the and " * 50
    n = len(tiny_lm.tokenizer.encode(text))
    assert n > 64
    # every window's first token is not predicted
    assert token_losses(tiny_lm, [text], window=16)[0].size == n - math.ceil(n / 16)
    assert token_losses(tiny_lm, [text])[0].size == n - math.ceil(n / 64)


def test_bad_perplexity_arguments(tiny_lm):
    with pytest.raises(ArgumentTypeError, match="`texts` must be a list of strings"):
        perplexity(tiny_lm, "one text")
    for not_a_list in (None, 5):  # a raw TypeError ("'NoneType' object is not iterable") before
        with pytest.raises(ArgumentTypeError, match=r"`texts` must be a list of strings.*Received: texts="):
            perplexity(tiny_lm, not_a_list)
        with pytest.raises(ArgumentTypeError, match="`texts` must be a list of strings"):
            token_losses(tiny_lm, not_a_list)
    with pytest.raises(ArgumentError, match=r"`texts\[0\]` must be a non-empty string"):
        perplexity(tiny_lm, [""])
    with pytest.raises(ArgumentError, match="`window` must be an int in \\[2, 64\\]"):
        perplexity(tiny_lm, ["a b"], window=65)
    with pytest.raises(DataError, match="two or more tokens"):
        perplexity(tiny_lm, ["a"])


def test_generation_follows_lora_enabled_after_a_first_call(tmp_path):
    from tfxfer.causal_lm import load_causal_lm
    from tests.causal_lm.helpers import write_tiny_gguf

    write_tiny_gguf(tmp_path / "t.gguf")
    lm = load_causal_lm(str(tmp_path / "t.gguf"), cache_dir=str(tmp_path / "cache"))
    prompt = [3, 40, 71, 260]
    before = generate_ids(lm, [prompt], max_new_tokens=6)[0]
    lm.backbone.enable_lora(2)
    rng = np.random.default_rng(0)
    for v in lm.backbone.weights:
        if "lora_kernel_b" in v.path:
            v.assign(rng.standard_normal(v.shape).astype("float32") * 3.0)
    after = generate_ids(lm, [prompt], max_new_tokens=6)[0]
    assert after == _naive_greedy(lm, prompt, 6)[len(prompt):]
    assert after != before
