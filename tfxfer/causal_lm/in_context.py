"""In-context classification: k labelled examples in the prompt, then score each label word.

`score_continuations` gives the log-probability of each candidate continuation after a prompt
(the sum over its tokens). `in_context_classify` builds a few-shot prompt per text from
``examples`` with a ``template`` and picks the label whose words are most probable next — no
gradient step, as in GPT-3's few-shot evaluation. With no examples it is zero-shot by prompt.

The continuation is tokenized on its own and appended to the prompt's tokens, so the label words
should carry their leading space (``" positive"``), which is how they appear inside text; the
template's ``{label}`` slot is filled the same way for the examples.

Example:
    >>> from tfxfer.causal_lm import load_causal_lm, in_context_classify
    >>> lm = load_causal_lm("smollm2-135m")                                       # doctest: +SKIP
    >>> in_context_classify(lm, ["A dull, lifeless film."],
    ...                     examples=[("A joy from start to end.", 1), ("Boring.", 0)],
    ...                     label_words=[" negative", " positive"])               # doctest: +SKIP
    array([0])
"""

from __future__ import annotations

import string

import numpy as np

from tfxfer.causal_lm.tokenizer import check_sequence, check_text
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.utils.validate import check_int

DEFAULT_TEMPLATE = "Text: {text}\nLabel:{label}\n\n"


def score_continuations(lm, prompts, continuations, *, batch_size: int = 4) -> np.ndarray:
    """``(len(prompts), len(continuations))`` summed log-probabilities of each continuation.

    Each continuation is tokenized on its own, without the start token (a tokenizer with
    ``add_bos_token`` puts it first in each prompt only). A prompt too long for the context together
    with a continuation keeps its end (and its start token). Prompts that
    share their first tokens (at least `MIN_SHARED_PREFIX`: the same few-shot examples) run them
    once and reuse their keys and values (the same scores, far less work).
    """
    import tensorflow as tf

    for name, values in (("prompts", prompts), ("continuations", continuations)):
        if isinstance(values, str) or not values:
            raise ArgumentError(name, values, "must be a non-empty list of strings")
        for i, value in enumerate(values):
            if not isinstance(value, str) or not value:
                raise ArgumentError(f"{name}[{i}]", value, "must be a non-empty string")
    batch_size = check_int("batch_size", batch_size, low=1)
    prompt_ids = lm.tokenizer.encode_batch(list(prompts), name="prompts")
    # a continuation follows its prompt's tokens: no start token of its own
    option_ids = [lm.tokenizer.encode(c, name=f"continuations[{o}]", add_bos=False)
                  for o, c in enumerate(continuations)]
    longest = max(len(ids) for ids in option_ids)
    if longest >= lm.context_length:
        raise ArgumentError("continuations", continuations,
                            f"must each be shorter than the context ({lm.context_length} tokens)")
    shared = _shared_prefix(prompt_ids, longest, lm.context_length)
    if shared:
        return _scores_after_prefix(lm, prompt_ids, option_ids, shared)
    rows = []  # (prompt index, option index, ids, continuation length)
    for p, ids in enumerate(prompt_ids):
        for o, option in enumerate(option_ids):
            keep = lm.context_length - len(option)
            rows.append((p, o, lm.tokenizer.keep_last(ids, keep) + option, len(option)))
    scores = np.zeros((len(prompt_ids), len(option_ids)))
    for start in range(0, len(rows), batch_size):
        batch = rows[start: start + batch_size]
        length = max(len(r[2]) for r in batch)
        token_ids = np.zeros((len(batch), length), dtype="int32")
        mask = np.zeros((len(batch), length), dtype=bool)
        for i, (_, _, ids, _) in enumerate(batch):
            token_ids[i, : len(ids)] = ids
            mask[i, : len(ids)] = True
        logits = lm.model({"token_ids": token_ids, "padding_mask": mask}, training=False)
        log_probs = tf.nn.log_softmax(tf.cast(logits, "float32"), axis=-1).numpy()
        for i, (p, o, ids, n) in enumerate(batch):
            positions = np.arange(len(ids) - n - 1, len(ids) - 1)  # each predicts the next token
            scores[p, o] = float(log_probs[i, positions, np.asarray(ids[-n:])].sum())
    return scores


#: Prompts sharing at least this many leading tokens (the few-shot examples) have them run once.
MIN_SHARED_PREFIX = 32


def _shared_prefix(prompt_ids, longest_option, context_length) -> int:
    """How many leading tokens every prompt shares (leaving each at least one of its own), or 0
    when sharing does not pay or a prompt would have to be cut to fit the context."""
    if len(prompt_ids) < 2 or max(len(ids) for ids in prompt_ids) + longest_option > context_length:
        return 0
    first, n = prompt_ids[0], min(len(ids) for ids in prompt_ids) - 1
    for ids in prompt_ids[1:]:
        n = next((i for i in range(n) if ids[i] != first[i]), n)
    return n if n >= MIN_SHARED_PREFIX else 0


def _scores_after_prefix(lm, prompt_ids, option_ids, shared):
    """`score_continuations` when every prompt starts with the same ``shared`` tokens: their keys and
    values are computed once (keras-hub's ``call_with_cache``) and each prompt's own tokens and
    continuation attend to them. Single-token continuations are all read from one call per prompt."""
    import tensorflow as tf
    from keras import ops

    model, backbone = lm.model, lm.backbone
    single = all(len(option) == 1 for option in option_ids)
    length = max(len(ids) for ids in prompt_ids) + (0 if single else max(len(o) for o in option_ids))
    head_dim = backbone.hidden_dim // backbone.num_query_heads
    cache = ops.zeros([1, backbone.num_layers, 2, length, backbone.num_key_value_heads, head_dim],
                      dtype=model.compute_dtype)
    _, _, cache = model.call_with_cache(ops.convert_to_tensor([prompt_ids[0][:shared]], "int32"), cache, 0)

    def log_probs(ids):
        logits, _, _ = model.call_with_cache(ops.convert_to_tensor([ids], "int32"), cache, shared)
        return tf.nn.log_softmax(tf.cast(logits[0], "float32"), axis=-1).numpy()

    scores = np.zeros((len(prompt_ids), len(option_ids)))
    for p, ids in enumerate(prompt_ids):
        own = ids[shared:]
        if single:
            last = log_probs(own)[-1]
            scores[p] = [last[option[0]] for option in option_ids]
            continue
        for o, option in enumerate(option_ids):
            row = log_probs(own + option)
            positions = np.arange(len(own) - 1, len(own) + len(option) - 1)  # each predicts the next token
            scores[p, o] = float(row[positions, np.asarray(option)].sum())
    return scores


def _bad_template(template: str, exc: Exception) -> ArgumentError:
    return ArgumentError("template", template, "must use only the fields {text} and {label} (write a "
                         f"literal brace as {{{{ or }}}}); formatting failed: {exc!r}")


def _query_template(template: str) -> str:
    """``template`` up to its first ``{label}`` field, checked: it must hold ``{text}`` before
    ``{label}`` (a template with the label first would leave the text out of every query prompt)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:  # an unmatched brace
        raise _bad_template(template, exc) from None
    pieces, fields, query = [], [], None
    for literal, field, spec, conversion in parsed:
        pieces.append(literal.replace("{", "{{").replace("}", "}}"))
        if field == "label" and query is None:
            query = "".join(pieces)
        if field is not None:
            fields.append(field)
            pieces.append("{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
    if "text" not in fields or "label" not in fields:
        raise ArgumentError("template", template, "must contain {text} and {label}")
    if fields.index("label") < fields.index("text"):
        raise ArgumentError("template", template,
                            "must put {text} before {label}: a text's prompt is the template up to "
                            "{label}, which here would not hold the text")
    return query


def few_shot_prompt(text: str, examples, label_words, *, template: str = DEFAULT_TEMPLATE) -> str:
    """The prompt for ``text``: each example rendered with its label word, then ``text`` with an
    empty label slot (the template up to ``{label}``, so ``{text}`` must come before ``{label}``).

    Example:
        >>> few_shot_prompt("so dull", [("loved it", 1)], [" bad", " good"])
        'Text: loved it\\nLabel: good\\n\\nText: so dull\\nLabel:'
    """
    if not isinstance(template, str):
        raise ArgumentTypeError("template", template, "a str")
    query = _query_template(template)
    try:
        template.format(text="", label="")
        shots = "".join(template.format(text=t, label=label_words[y]) for t, y in examples)
        return shots + query.format(text=text)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise _bad_template(template, exc) from None


def in_context_classify(lm, texts, *, examples=(), label_words, template: str = DEFAULT_TEMPLATE,
                        batch_size: int = 4, return_scores: bool = False):
    """Class index per text, by the most probable label word after a few-shot prompt.

    Args:
        lm: a `LanguageModel`.
        texts: strings to classify.
        examples: ``(text, class index)`` pairs put in every prompt, in order (empty: zero-shot).
        label_words: one continuation per class, e.g. ``[" negative", " positive"]``.
        template: how one example reads; must hold ``{text}`` and, after it, ``{label}``.
        return_scores: also return the ``(len(texts), classes)`` log-probabilities.
    """
    texts = check_sequence("texts", texts, "a list of strings (wrap a single text in a list)")
    if not texts:
        raise ArgumentError("texts", texts, "must hold at least one text")
    for i, text in enumerate(texts):
        check_text(f"texts[{i}]", text)
    label_words = check_sequence("label_words", label_words, "a list of strings, one per class")
    if len(label_words) < 2:
        raise ArgumentError("label_words", label_words, "must hold one word per class (>= 2)")
    for i, word in enumerate(label_words):
        check_text(f"label_words[{i}]", word)
        if not word:
            raise ArgumentError(f"label_words[{i}]", word, "must be a non-empty string")
        if word in label_words[:i]:
            raise ArgumentError("label_words", label_words,
                                f"must not repeat a word ({word!r} is at {label_words.index(word)} and {i}); "
                                "two classes with one word cannot be told apart")
    examples = check_sequence("examples", examples, "a list of (text, class index) pairs (empty: zero-shot)")
    for i, example in enumerate(examples):
        if not (isinstance(example, (tuple, list)) and len(example) == 2 and isinstance(example[0], str)
                and isinstance(example[1], (int, np.integer))
                and 0 <= example[1] < len(label_words)):
            raise ArgumentError(f"examples[{i}]", example,
                                f"must be a (text, class index in [0, {len(label_words)})) pair")
        check_text(f"examples[{i}][0]", example[0])
    prompts = [few_shot_prompt(t, examples, label_words, template=template) for t in texts]
    scores = score_continuations(lm, prompts, label_words, batch_size=batch_size)
    predictions = scores.argmax(axis=1)
    return (predictions, scores) if return_scores else predictions
