"""score_continuations / in_context_classify on a tiny random Llama."""

import numpy as np
import pytest

from tfxfer.causal_lm import few_shot_prompt, in_context_classify, score_continuations, token_losses
from tfxfer.errors import ArgumentError, ArgumentTypeError


def test_scores_are_continuation_log_probabilities(tiny_lm):
    tok = tiny_lm.tokenizer
    scores = score_continuations(tiny_lm, ["the and", "then"], [" the", " and then"])
    assert scores.shape == (2, 2) and (scores < 0).all()
    # the same number from the per-token losses of prompt + continuation
    ids = tok.encode("the and") + tok.encode(" and then")
    losses = token_losses(tiny_lm, [tok.decode(ids)])[0]
    assert tok.encode(tok.decode(ids)) == ids
    n = len(tok.encode(" and then"))
    assert scores[0, 1] == pytest.approx(-losses[-n:].sum(), rel=1e-5)
    assert np.allclose(score_continuations(tiny_lm, ["the and", "then"], [" the", " and then"], batch_size=1),
                       scores)


def _with_start_token(lm):
    """``lm`` whose tokenizer puts its start token (id 1, ``<|im_start|>``) before every text."""
    import dataclasses

    from tfxfer.causal_lm import BPETokenizer

    return dataclasses.replace(lm, tokenizer=BPETokenizer(**{**lm.tokenizer.get_config(), "add_bos_token": True}))


def test_continuations_carry_no_start_token(tiny_lm):
    """A tokenizer with add_bos_token scored "<bos> label" after the prompt: one start token per row,
    before the prompt, as when the start token is written at the head of the prompt by hand."""
    bos_lm = _with_start_token(tiny_lm)
    labels = [" the", " and then"]
    got = score_continuations(bos_lm, ["the and", "then"], labels)
    expected = score_continuations(tiny_lm, ["<|im_start|>the and", "<|im_start|>then"], labels)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    predictions, scores = in_context_classify(bos_lm, ["the and"], examples=[("and", 0)], label_words=labels,
                                              return_scores=True)
    prompt = few_shot_prompt("the and", [("and", 0)], labels)
    np.testing.assert_allclose(scores, score_continuations(tiny_lm, ["<|im_start|>" + prompt], labels), rtol=1e-5)


def test_few_shot_prompt_layout():
    prompt = few_shot_prompt("new one", [("good", 1), ("bad", 0)], [" no", " yes"])
    assert prompt == "Text: good\nLabel: yes\n\nText: bad\nLabel: no\n\nText: new one\nLabel:"


def test_classify_picks_the_best_scoring_label(tiny_lm):
    texts = ["the and", "then the end"]
    predictions, scores = in_context_classify(tiny_lm, texts, examples=[("and", 0), ("the", 1)],
                                              label_words=[" the", " and"], return_scores=True)
    np.testing.assert_array_equal(predictions, scores.argmax(1))
    prompts = [few_shot_prompt(t, [("and", 0), ("the", 1)], [" the", " and"]) for t in texts]
    np.testing.assert_allclose(scores, score_continuations(tiny_lm, prompts, [" the", " and"]))


@pytest.mark.parametrize("labels", [[" the", " and"], [" the", " and then"]])
def test_shared_examples_run_once_same_scores(tiny_lm, monkeypatch, labels):
    from tfxfer.causal_lm import in_context

    texts = ["the and", "then", "and"]
    examples = [("and", 0), ("the", 1)]
    prompts = [few_shot_prompt(t, examples, labels) for t in texts]
    ids = tiny_lm.tokenizer.encode_batch(prompts)
    monkeypatch.setattr(in_context, "MIN_SHARED_PREFIX", 8)  # the tiny model's context is 64 tokens
    longest = max(len(tiny_lm.tokenizer.encode(label)) for label in labels)
    shared = in_context._shared_prefix(ids, longest, tiny_lm.context_length)
    assert shared >= 8 and all(i[:shared] == ids[0][:shared] for i in ids), (shared, [len(i) for i in ids])
    fast = score_continuations(tiny_lm, prompts, labels)
    monkeypatch.setattr(in_context, "MIN_SHARED_PREFIX", 10**6)  # the plain path: every prompt whole
    plain = score_continuations(tiny_lm, prompts, labels)
    np.testing.assert_allclose(fast, plain, rtol=1e-4, atol=1e-4)


def test_shared_prefix_rules():
    from tfxfer.causal_lm.in_context import MIN_SHARED_PREFIX, _shared_prefix

    base = list(range(MIN_SHARED_PREFIX + 5))
    assert _shared_prefix([base, base + [7]], 1, 1000) == len(base) - 1  # each prompt keeps a token of its own
    assert _shared_prefix([base + [1], base + [2]], 1, 1000) == len(base)
    assert _shared_prefix([base[:5] + [1], base[:5] + [2]], 1, 1000) == 0  # too short to pay
    assert _shared_prefix([base + [1]], 1, 1000) == 0  # one prompt
    assert _shared_prefix([base + [1], base + [2]], 1, len(base)) == 0  # would not fit: the plain path cuts


def test_errors(tiny_lm):
    with pytest.raises(ArgumentError, match="`label_words` must hold one word per class"):
        in_context_classify(tiny_lm, ["a"], label_words=[" yes"])
    with pytest.raises(ArgumentError, match=r"`examples\[0\]` must be a \(text, class index in \[0, 2\)\) pair"):
        in_context_classify(tiny_lm, ["a"], examples=[("x", 2)], label_words=[" no", " yes"])
    with pytest.raises(ArgumentTypeError, match="`texts` must be a list"):
        in_context_classify(tiny_lm, "a", label_words=[" no", " yes"])
    with pytest.raises(ArgumentTypeError, match="`texts` must be a list.*Received: texts=None"):
        in_context_classify(tiny_lm, None, label_words=[" no", " yes"])
    with pytest.raises(ArgumentTypeError, match="`label_words` must be a list of strings"):
        in_context_classify(tiny_lm, ["a"], label_words=None)
    with pytest.raises(ArgumentTypeError, match="`examples` must be a list of"):
        in_context_classify(tiny_lm, ["a"], examples=None, label_words=[" no", " yes"])
    with pytest.raises(ArgumentError, match="`template` must contain"):
        few_shot_prompt("a", [], [" no", " yes"], template="{text}")
    with pytest.raises(ArgumentError, match="`template` must contain"):  # an escaped brace is no field
        few_shot_prompt("a", [], [" no", " yes"], template="{{text}} {label}")


def test_template_must_put_the_text_before_the_label(tiny_lm):
    """The query prompt is the template up to {label}: with the label first it held no text, so every
    text got the same prompt and the same prediction."""
    template = "Label:{label} Text: {text}\n"
    with pytest.raises(ArgumentError, match=r"`template` must put \{text\} before \{label\}.*Received: template="):
        few_shot_prompt("I loved it", [("Awful", 0)], [" neg", " pos"], template=template)
    with pytest.raises(ArgumentError, match=r"`template` must put \{text\} before \{label\}"):
        in_context_classify(tiny_lm, ["a"], label_words=[" no", " yes"], template=template)
    # the query is cut at the first real {label} field, not at an escaped "{{label}}"
    prompt = few_shot_prompt("q", [("a", 1)], [" x", " y"], template="{{label}} {text}:{label}|")
    assert prompt == "{label} a: y|{label} q:"
    with pytest.raises(ArgumentError, match=r"`continuations\[1\]` must be a non-empty string"):
        score_continuations(tiny_lm, ["a"], [" x", ""])
