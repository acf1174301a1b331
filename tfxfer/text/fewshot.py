"""Few-shot and zero-shot text classification on frozen encoder embeddings (no gradient steps).

Both build an ordinary tfxfer text model, ``text -> tokenize -> encoder -> pool -> normalize ->
head``, whose head is a bias-free dense layer holding one unit vector per class divided by a
temperature, then softmax: a cosine-similarity classifier.

* `build_prototype_classifier`: each class vector is the mean of the L2-normalised embeddings of
  its k examples (a prototypical network without training).
* `build_zero_shot_classifier`: each class vector is the embedding of a label description
  (``template.format(description)``), so no labelled example is needed.

Being normal models, they predict raw strings, export like any classifier, and make a warm start
for `tfxfer.train.fine_tune.fine_tune`.

Example:
    >>> from tfxfer.text import build_bert_encoder, build_prototype_classifier
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> model = build_prototype_classifier(encoder, ["good film", "bad film"], [1, 0])
    >>> tuple(model.get_layer("head").kernel.shape)
    (8, 2)
"""

from __future__ import annotations

import keras
import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.text.encoders import TextEncoder, as_texts, pool_outputs
from tfxfer.utils.validate import check_float, check_int


def _check(encoder, temperature, pooling):
    if not isinstance(encoder, TextEncoder):
        raise ArgumentTypeError("encoder", encoder, "a tfxfer.text.TextEncoder")
    check_float("temperature", temperature, low=0, low_open=True)  # inf: every probability uniform
    if pooling == "tokens":
        raise ArgumentError("pooling", pooling, "must be 'mean', 'cls' or 'pooled'")


def _normalize(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def _same_rows(prototypes: np.ndarray):
    """The first pair ``(i, j)``, i < j, of unit rows that are equal (to float32 rounding), or None."""
    for j in range(1, len(prototypes)):
        close = np.flatnonzero(np.abs(prototypes[:j] - prototypes[j]).max(axis=1) <= 1e-6)
        if len(close):
            return int(close[0]), j
    return None


def prototype_model(encoder: TextEncoder, prototypes, *, pooling: str = "mean", temperature: float = 0.05,
                    name: str = "prototype_classifier") -> keras.Model:
    """A cosine classifier over ``encoder`` whose class vectors are ``prototypes`` ``[classes, dim]``.

    Raises:
        ArgumentError: not ``[classes >= 2, hidden_dim]``; two classes with the same direction (no input
            could tell them apart: every prediction would split evenly between them).
    """
    _check(encoder, temperature, pooling)
    prototypes = _normalize(np.asarray(prototypes, dtype=np.float32))
    if prototypes.ndim != 2 or prototypes.shape[1] != encoder.hidden_dim or len(prototypes) < 2:
        raise ArgumentError("prototypes", prototypes.shape, f"must be [classes >= 2, {encoder.hidden_dim}]")
    same = _same_rows(prototypes)
    if same:
        raise ArgumentError("prototypes", prototypes.shape, f"must give every class its own direction; classes "
                            f"{same[0]} and {same[1]} point the same way, so no input can tell them apart")
    text = keras.Input(shape=(), dtype="string", name="text")
    x = pool_outputs(encoder.backbone, encoder.tokenizer_layer()(text), pooling=pooling)
    x = keras.layers.UnitNormalization(name="normalize")(x)
    head = keras.layers.Dense(len(prototypes), use_bias=False, activation="softmax", dtype="float32", name="head")
    outputs = head(x)
    head.kernel.assign((prototypes.T / float(temperature)).astype(np.float32))
    return keras.Model(text, outputs, name=name)


def sample_per_class(labels, k: int, *, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` random examples of every class (sorted), for k-shot experiments."""
    labels = np.asarray(labels)
    k = check_int("k", k, low=1)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < k:
            raise DataError(f"class {c!r} has {len(members)} examples, fewer than k={k}")
        picked.extend(rng.choice(members, size=k, replace=False).tolist())
    return np.sort(np.asarray(picked))


def build_prototype_classifier(encoder: TextEncoder, texts, labels, *, num_classes: int | None = None,
                               pooling: str = "mean", temperature: float = 0.05, batch_size: int = 32) -> keras.Model:
    """A k-shot classifier from example ``texts`` and their class ids ``labels`` (no training).

    Args:
        encoder: a `TextEncoder` (its weights are used as they are).
        texts, labels: the support examples (a few per class) and their class ids 0..C-1.
        num_classes: default ``max(labels) + 1``; every class needs at least one example.
        pooling: how texts become embeddings ("mean" suits sentence encoders such as MiniLM).
        temperature: softmax temperature of the cosine similarities.
    """
    _check(encoder, temperature, pooling)
    texts = as_texts(texts)
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(texts) or not len(texts):
        raise DataError(f"{len(texts)} texts and {labels.shape} labels (need one class id per text)")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise DataError("`labels` must be class ids >= 0")
    k = int(num_classes or labels.max() + 1)
    if k < 2:
        raise DataError(f"`labels` hold a single class ({k - 1}); a classifier needs examples of at least 2 classes")
    counts = np.bincount(labels, minlength=k)
    if len(counts) > k or (counts == 0).any():
        raise DataError(f"every class 0..{k - 1} needs an example (counts: {counts.tolist()})")
    embeddings = encoder.embed(texts, pooling=pooling, normalize=True, batch_size=batch_size)
    prototypes = np.stack([embeddings[labels == c].mean(axis=0) for c in range(k)])
    same = _same_rows(_normalize(prototypes))
    if same:  # e.g. the same example text (or texts the tokenizer makes equal) for two classes
        raise DataError(f"classes {same[0]} and {same[1]} have the same prototype: their example texts embed "
                        "identically (the same text, or texts the tokenizer makes equal), so no input can tell "
                        "them apart")
    return prototype_model(encoder, prototypes, pooling=pooling, temperature=temperature)


def _fill(template, description: str) -> str:
    """``template`` with its one ``{}`` field replaced by ``description`` (a typed error for any other
    template: positional or named fields, escaped braces only, unbalanced braces)."""
    import string

    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None] \
            if isinstance(template, str) else None
    except ValueError:
        fields = None
    if fields != [""]:
        raise ArgumentError("template", template, "must be a str with exactly one '{}' field (e.g. 'This review is {}.')")
    return template.format(description)


def build_zero_shot_classifier(encoder: TextEncoder, descriptions, *, template: str = "{}", pooling: str = "mean",
                               temperature: float = 0.05) -> keras.Model:
    """A classifier from label descriptions alone: class ``i`` is ``template.format(descriptions[i])``.

    Args:
        descriptions: one description per class, in class order (e.g. ``["negative", "positive"]``
            or richer phrases), or several per class as a list of lists (their embeddings average).
        template: wraps each description, e.g. ``"This review is {}."``.
    """
    if isinstance(descriptions, str) or not isinstance(descriptions, (list, tuple)) or len(descriptions) < 2:
        raise ArgumentTypeError("descriptions", descriptions, "a list of >= 2 descriptions (one per class)")
    groups = []
    for i, d in enumerate(descriptions):
        group = [d] if isinstance(d, str) else list(d) if isinstance(d, (list, tuple)) else None
        if not group or not all(isinstance(t, str) and t.strip() for t in group):
            raise ArgumentTypeError(f"descriptions[{i}]", d, "a non-empty str, or a non-empty list of them")
        groups.append(group)
    flat = [_fill(template, d) for g in groups for d in g]
    _check(encoder, temperature, pooling)
    ids = encoder.tokenize(flat)["token_ids"]
    seen, start = {}, 0
    for i, g in enumerate(groups):  # two classes the tokenizer sees as the same text can never be told apart
        key = tuple(sorted(tuple(row) for row in ids[start: start + len(g)].tolist()))
        start += len(g)
        if key in seen:
            raise ArgumentError(f"descriptions[{i}]", descriptions[i],
                                f"must differ from descriptions[{seen[key]}] once tokenized (the same tokens, e.g. "
                                "after lowercasing or stripping spaces, make two classes no input can tell apart)")
        seen[key] = i
    embeddings = encoder.embed(flat, pooling=pooling, normalize=True)
    prototypes, start = [], 0
    for g in groups:
        prototypes.append(embeddings[start: start + len(g)].mean(axis=0))
        start += len(g)
    return prototype_model(encoder, np.stack(prototypes), pooling=pooling, temperature=temperature)
