"""`fit_token_classifier`: train a NER model on words and tags through the one core, `fine_tune`.

Word tags are aligned to word pieces (`tfxfer.text.encode_tagged_words`); the model's token-id twin
(`tfxfer.text.token_model`, same weights) then goes through `fine_tune` with per-token weights, so
the head step trains on cached encoder outputs and the unfreezing step fine-tunes the encoder,
with the same arguments and `FineTuneResult` as images and text classifiers.

Example:
    >>> from tfxfer.text import build_bert_encoder, build_token_classifier
    >>> from tfxfer.train.ner import fit_token_classifier
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "zoe", "visits", "paris"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=12)
    >>> tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    >>> model = build_token_classifier(encoder, tags)
    >>> words = [["zoe", "visits", "paris"]] * 4; word_tags = [["B-PER", "O", "B-LOC"]] * 4
    >>> result = fit_token_classifier(model, (words, word_tags), tag_names=tags, head_epochs=1, epochs=1,
    ...                               batch_size=2, verbose=0)
    >>> len(result.history["loss"])
    2
"""

from __future__ import annotations

import contextlib

import keras

from tfxfer.errors import ArgumentTypeError
from tfxfer.train.fine_tune import fine_tune
from tfxfer.train.result import FineTuneResult


def _pair(data, name: str):
    if not isinstance(data, tuple) or len(data) != 2:
        raise ArgumentTypeError(name, data, "a (word lists, tag lists) tuple")
    return data


def fit_token_classifier(model: keras.Model, train, *, tag_names, val=None, test=None, scheme: str = "BIO",
                         alignment: str = "first", head_epochs: int = 0, epochs: int = 3, base_lr: float = 1e-3,
                         unfreeze_lr_factor: float = 0.05, stages: dict | None = None,
                         warmup_epochs: float | None = None, layer_decay: float = 1.0, batch_size: int = 16,
                         callbacks=(), verbose: int = 1, seed: int = 0, checkpoint_dir=None, monitor: str = "val_loss",
                         restore_best: bool = True, keep_if_better: bool = True) -> FineTuneResult:
    """Train a token classifier on word lists and their tags.

    Args:
        model: from `tfxfer.text.build_token_classifier` (raw strings in; trained in place).
        train: ``(words, tags)``: lists of word lists and of per-word tags (strings or ids into
            ``tag_names``).
        tag_names, scheme: as given to `build_token_classifier`.
        val: optional ``(words, tags)``.
        test: optional held-out ``(words, tags)``, evaluated at the end into ``result.test`` (loss and
            accuracy over the tagged word pieces), as `fine_tune`'s ``test``.
        monitor, restore_best, keep_if_better: as in `fine_tune`.
        alignment: which word pieces carry a word's tag, "first" or "all".
        head_epochs: epochs of the head alone on encoder outputs computed once (frozen encoder).
        epochs: epochs of the encoder fine-tune (0 skips it).
        base_lr: the head step's rate; the fine-tune peaks at ``base_lr * unfreeze_lr_factor``
            (default 1e-3 * 0.05 = 5e-5).
        stages, warmup_epochs, layer_decay: as in `fine_tune` (default: the whole encoder from the
            first epoch, warmup over 10 % of the steps, one rate for every layer).
        callbacks: Keras callbacks for the fine-tune (TensorBoard, a learning-rate log, ...).
        checkpoint_dir: resume an interrupted run (see `fine_tune`).

    Returns:
        `FineTuneResult` (``loss``, weighted ``accuracy`` over the tagged pieces, and their ``val_``).
    """
    from tfxfer.text import encode_tagged_words, token_model

    encode = dict(tag_names=tag_names, scheme=scheme, alignment=alignment)
    with _naming("train"):
        encoded = encode_tagged_words(model, *_pair(train, "train"), **encode)
    val_data = None
    if val is not None:
        with _naming("val"):
            v = encode_tagged_words(model, *_pair(val, "val"), **encode)
        val_data = (v.inputs, v.labels, v.weights)
    test_data = None
    if test is not None:
        with _naming("test"):
            t = encode_tagged_words(model, *_pair(test, "test"), **encode)
        test_data = (t.inputs, t.labels, t.weights)
    return fine_tune(token_model(model), (encoded.inputs, encoded.labels, encoded.weights), val=val_data,
                     head_epochs=head_epochs, epochs=epochs, base_lr=base_lr, unfreeze_lr_factor=unfreeze_lr_factor,
                     stages=stages, warmup_epochs=warmup_epochs, layer_decay=layer_decay, batch_size=batch_size,
                     callbacks=callbacks, verbose=verbose, seed=seed, checkpoint_dir=checkpoint_dir, test=test_data,
                     monitor=monitor, restore_best=restore_best, keep_if_better=keep_if_better)


@contextlib.contextmanager
def _naming(name: str):
    """Errors about words and tags ("example 0: 2 words but 1 tags", "tags[0][1]") say which
    argument, ``train`` or ``val``, holds them."""
    from tfxfer.errors import TfxferError

    try:
        yield
    except TfxferError as exc:
        if exc.args and isinstance(exc.args[0], str) and not exc.args[0].startswith(f"`{name}`"):
            exc.args = (f"`{name}`: {exc.args[0]}", *exc.args[1:])
        raise
