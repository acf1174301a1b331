"""Negative-transfer and domain-shift check: do pretrained features beat a control?

A quick linear probe (standardised features + logistic regression) is trained on the pretrained
backbone's features and on controls that know nothing of the source domain: the *same
architecture with random weights* and, for text, *TF-IDF + logistic regression*. A gain counts
when it exceeds the margin and twice the standard error of the difference (Agresti-Caffo: it never
collapses to 0 at accuracy 0 or 1, so a handful of test examples decides nothing).

A linear probe measures *frozen* features only. Frozen features can lose to the control while
fine-tuning the same backbone wins clearly (MiniLM on short movie snippets: its frozen embeddings
tie TF-IDF, fine-tuning it gains about 8 points), so a losing probe alone never says "transfer does
not pay". Give the probe a short fine-tune check (``fine_tune_epochs=`` for `probe_backbone` and
`probe_text`, which also needs ``make_encoder=``; ``fine_tune=`` for a check of your own, in
`probe_features` too; it runs only when the frozen features do not already win) and the verdict
tells the two apart:

* ``transfer_helps``: frozen features beat every control (fine-tune from this backbone);
* ``fine_tuning_wins``: frozen features lose, a short fine-tune beats every control: fine-tune;
* ``transfer_does_not_pay``: neither the frozen features nor the short fine-tune do better than the
  control, and the test set is large enough to rule out a gain of the margin;
* ``no_clear_gain`` / ``negative_transfer``: frozen features tie / lose and fine-tuning was not
  checked; the first remedy is to run the check before dropping the backbone;
* ``inconclusive``: the test set is too small to tell (``report.detail`` says on how many test
  examples, and ``report.examples_needed`` about how many would decide), or a fine-tune leads by
  less than the margin. Where the backbone leads at all, the recommendation is never the control.

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer import probe_features
    >>> rng = np.random.default_rng(0)
    >>> y = np.arange(300) % 3
    >>> informative = np.eye(3)[y] * 2 + rng.normal(size=(300, 3))
    >>> report = probe_features(informative, {"random_weights": rng.normal(size=(300, 8))}, y)
    >>> report.verdict
    'transfer_helps'
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.transfer._checks import as_class_labels, as_features
from tfxfer.transfer._data import as_image_arrays, single_labels
from tfxfer.transfer.candidates import Candidate
from tfxfer.transfer.embeddings import candidate_features
from tfxfer.transfer.probe_verdict import (  # noqa: F401  (re-exported: tfxfer.transfer.probe.VERDICTS, ...)
    CHECK_FINE_TUNING,
    FINE_TUNE,
    RECOMMENDATIONS,
    REMEDIES,
    VERDICTS,
    ProbeReport,
    _threshold,
    examples_needed,
    verdict_from_accuracies,
)
from tfxfer.utils.validate import check_float, check_int

#: The fewest examples a probe can split: 2 to train on and 1 to test.
MIN_EXAMPLES = 3


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels, *, C: float = 1.0) -> float:
    """Accuracy of standardised features + multinomial logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a probe need not be fully converged
        probe.fit(train_features, train_labels)
    return float(np.mean(probe.predict(test_features) == test_labels))


def split_indices(labels: np.ndarray, *, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test indices, stratified when every class has at least two examples.

    A stratified split needs one example of each class on both sides, so ``test_fraction`` must
    leave at least as many test and train examples as there are classes.

    Example:
        >>> train, test = split_indices(np.arange(20) % 2, test_fraction=0.3, seed=0)
        >>> len(train), len(test)
        (14, 6)
    """
    from sklearn.model_selection import train_test_split

    test_fraction = check_float("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
    seed = check_int("seed", seed, low=0, high=2**32 - 1)
    labels = np.asarray(labels)
    total = len(labels)
    num_test = math.ceil(test_fraction * total)
    num_train = total - num_test
    if num_test < 1 or num_train < 2:
        raise ArgumentError("test_fraction", test_fraction,
                            f"must leave at least 1 test and 2 train examples of the {total} examples")
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    stratify = labels if counts.min() >= 2 else None
    if stratify is not None and min(num_test, num_train) < counts.size:
        classes = int(counts.size)
        low, high = f"{classes / total:.3g}", f"{1 - classes / total:.3g}"
        raise ArgumentError("test_fraction", test_fraction,
                            f"leaves too few examples per class for a stratified split: {num_test} test and "
                            f"{num_train} train examples cannot each hold one of each of the {classes} classes",
                            hint=(f"Use test_fraction={low}" if low == high else
                                  f"Use a test_fraction in [{low}, {high}]") + " or more examples per class")
    index = np.arange(total)
    train, test = train_test_split(index, test_size=num_test, random_state=seed, stratify=stratify)
    if len(np.unique(labels[train])) < 2:
        raise DataError("The probe's training split holds a single class; pass more data")
    return np.sort(train), np.sort(test)


def probe_features(pretrained, controls: dict, labels, *, test_fraction: float = 0.3, margin: float = 0.02,
                   seed: int = 0, extra_controls: dict | None = None, fine_tune=None) -> ProbeReport:
    """Linear-probe ``pretrained`` features against control features on one seeded split.

    Args:
        pretrained: (N, D) features of the pretrained backbone.
        controls: name -> (N, D') control features (e.g. ``{"random_weights": ...}``).
        labels: (N,) integer labels.
        test_fraction: share of the examples held out for the accuracy.
        margin: minimum accuracy gain that counts as transfer (see `verdict_from_accuracies`).
        seed: seed of the split.
        extra_controls: name -> ``fn(train_index, test_index) -> accuracy`` for controls that are
            not features (the TF-IDF baseline of `probe_text`).
        fine_tune: ``fn(train_index, test_index) -> accuracy`` of a short fine-tune of the
            pretrained backbone on that split, or None. Called only when the frozen features do not
            beat the controls; its accuracy decides ``fine_tuning_wins`` vs ``transfer_does_not_pay``.
    """
    if fine_tune is not None and not callable(fine_tune):
        raise ArgumentTypeError("fine_tune", fine_tune, "a function (train_index, test_index) -> accuracy, or None")
    check_float("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
    check_int("seed", seed, low=0, high=2**32 - 1)
    check_float("margin", margin, low=0, high=1, high_open=True)
    pretrained = as_features(pretrained, name="pretrained")
    y, _ = as_class_labels(labels, pretrained.shape[0])
    if not isinstance(controls, dict) or not (controls or extra_controls):
        raise ArgumentTypeError("controls", controls, "a dict of control name -> features (at least one control)")
    control_features = {name: as_features(f, name=f"controls[{name!r}]") for name, f in controls.items()}
    for name, f in control_features.items():
        if f.shape[0] != pretrained.shape[0]:
            raise DataError(f"Control {name!r} has {f.shape[0]} rows but the pretrained features have {pretrained.shape[0]}")
    train, test = split_indices(y, test_fraction=test_fraction, seed=seed)
    accuracy = {name: linear_probe_accuracy(f[train], y[train], f[test], y[test]) for name, f in control_features.items()}
    for name, fn in (extra_controls or {}).items():
        accuracy[name] = float(fn(train, test))
    chance = float(np.mean(y[test] == np.bincount(y[train]).argmax()))
    frozen = linear_probe_accuracy(pretrained[train], y[train], pretrained[test], y[test])
    report = verdict_from_accuracies(frozen, accuracy, num_test=len(test), num_train=len(train), chance=chance,
                                     margin=margin)
    if fine_tune is None or report.verdict == "transfer_helps":
        return report
    return verdict_from_accuracies(frozen, accuracy, num_test=len(test), num_train=len(train), chance=chance,
                                   margin=margin, fine_tuned=float(fine_tune(train, test)))


def tfidf_accuracy(train_texts, train_labels, test_texts, test_labels, *, C: float = 10.0) -> float:
    """Accuracy of the classic text baseline: word 1-2-gram TF-IDF + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    try:
        train = vectorizer.fit_transform(list(train_texts))
    except ValueError as exc:  # "empty vocabulary": no word of two or more characters in any text
        raise DataError(f"The {len(train_texts)} training texts give no TF-IDF vocabulary (no word of two or more "
                        "letters or digits); the TF-IDF control of `texts` needs real words") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=C, max_iter=1000).fit(train, train_labels)
    return float(np.mean(model.predict(vectorizer.transform(list(test_texts))) == np.asarray(test_labels)))


def _text_data(data, labels, texts):
    """``(texts, labels)`` from `probe_text`'s call forms: ``data=(texts, labels)``, or texts then labels
    (``probe_text(texts, labels, ...)``; ``texts=`` is the old keyword name of ``data``)."""
    if texts is not None:
        if data is not None:
            raise ArgumentError("texts", "...", "is the old name of `data`; pass one of them, not both")
        data = texts
    if data is None:
        raise ArgumentTypeError("data", data, "a (texts, labels) pair, or texts with labels=")
    if labels is None:
        if not (isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], str)
                and not isinstance(data[1], str)):
            raise ArgumentTypeError("data", data, "a (texts, labels) pair, or texts with labels=")
        data, labels = data
    if isinstance(data, str) or not all(isinstance(t, str) for t in data):
        raise ArgumentTypeError("texts", type(data).__name__, "a sequence of strings")
    texts, y = list(data), np.asarray(labels)
    if y.ndim == 0 or len(y) != len(texts):
        raise DataError(f"`data` has {len(texts)} texts but {len(y) if y.ndim else 'no'} labels")
    return texts, y


def probe_text(data=None, labels=None, *, encode, encode_control=None, test_fraction: float = 0.3,
               margin: float = 0.02, max_samples: int | None = None, seed: int = 0, fine_tune_epochs: int = 0,
               make_encoder=None, batch_size: int = 16, fine_tune=None, texts=None) -> ProbeReport:
    """Probe a text encoder: its features against TF-IDF (and, if given, a random-weights encoder).

    The same names as `probe_backbone`: ``data=(texts, labels)``, ``max_samples``, ``batch_size``,
    ``fine_tune_epochs``. The older form ``probe_text(texts, labels, ...)`` still works
    (``texts=`` is the old keyword name of ``data``).

    Args:
        data: ``(texts, labels)``: N strings and N integer labels; or the N strings, with ``labels``.
        labels: N integer labels when ``data`` holds the texts only.
        encode: ``fn(list[str]) -> (N, D) array`` of pooled sentence features from the pretrained
            encoder (e.g. mean-pooled keras-hub BERT outputs).
        encode_control: the same for the encoder with random weights, or None.
        test_fraction, margin, seed: as in `probe_features`.
        max_samples: probe on a seeded subset of at most this many texts (an int >= 3), or None
            (the default) for all.
        fine_tune_epochs: > 0 adds the short fine-tune check, as in `probe_backbone`: when the frozen
            features do not win, a classifier on ``make_encoder()`` trains its head for one epoch,
            then the whole encoder for this many epochs (`fine_tune_check_text`), on the probe's
            training split; its test accuracy decides ``fine_tuning_wins`` vs ``transfer_does_not_pay``
            (or ``inconclusive``).
        make_encoder: ``fn() -> tfxfer.text.TextEncoder`` (a fresh one each call), needed by
            ``fine_tune_epochs``.
        batch_size: the fine-tune check's batch size, an int >= 1.
        fine_tune: a check of your own instead, ``fn(train_texts, train_labels, test_texts,
            test_labels) -> accuracy`` (`fine_tune_check_text` builds one), or None.

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import probe_text
        >>> texts = ["good fun", "great film", "bad plot", "awful acting"] * 25
        >>> labels = [1, 1, 0, 0] * 25
        >>> noise = lambda t: np.random.default_rng(len(t)).normal(size=(len(t), 4))
        >>> probe_text((texts, labels), encode=noise).verdict  # random "encoder" loses to TF-IDF
        'negative_transfer'
    """
    texts, y = _text_data(data, labels, texts)
    if not callable(encode):
        raise ArgumentTypeError("encode", encode, "a function list[str] -> (N, D) array")
    if encode_control is not None and not callable(encode_control):
        raise ArgumentTypeError("encode_control", encode_control, "a function list[str] -> (N, D) array, or None")
    fine_tune = _fine_tune_option(fine_tune, fine_tune_epochs, "train_texts, train_labels, test_texts, test_labels")
    max_samples, batch_size, seed = _probe_options(max_samples=max_samples, batch_size=batch_size, seed=seed,
                                                   test_fraction=test_fraction, margin=margin)
    if fine_tune_epochs:
        if not callable(make_encoder):
            raise ArgumentError("make_encoder", make_encoder, "must be a function () -> tfxfer.text.TextEncoder "
                                f"when fine_tune_epochs > 0 (received fine_tune_epochs={fine_tune_epochs})")
        fine_tune = fine_tune_check_text(make_encoder, epochs=fine_tune_epochs, batch_size=batch_size, seed=seed)
    elif make_encoder is not None:
        raise ArgumentError("make_encoder", make_encoder, "is used only by the fine-tune check; pass "
                            "fine_tune_epochs > 0 with it")
    if max_samples is not None and len(texts) > max_samples:
        index = np.sort(np.random.default_rng(seed).choice(len(texts), size=max_samples, replace=False))
        texts, y = [texts[i] for i in index], y[index]
    controls = {} if encode_control is None else {"random_weights": encode_control(texts)}

    def tfidf(train, test):
        return tfidf_accuracy([texts[i] for i in train], y[train], [texts[i] for i in test], y[test])

    def check(train, test):
        return fine_tune([texts[i] for i in train], y[train], [texts[i] for i in test], y[test])

    return probe_features(encode(texts), controls, y, test_fraction=test_fraction, margin=margin, seed=seed,
                          extra_controls={"tfidf": tfidf}, fine_tune=None if fine_tune is None else check)


def _takes(fn, count: int) -> bool:
    """False only when ``fn``'s signature is known and cannot take ``count`` positional arguments."""
    import inspect

    try:
        inspect.signature(fn).bind(*range(count))
    except TypeError:
        return False
    except ValueError:  # no signature to read (some builtins): let the call decide
        pass
    return True


def _fine_tune_option(fine_tune, fine_tune_epochs, signature: str):
    """``fine_tune`` (a check of the caller's own), checked; it and ``fine_tune_epochs`` exclude each other."""
    fine_tune_epochs = check_int("fine_tune_epochs", fine_tune_epochs, low=0)
    if fine_tune is not None and not (callable(fine_tune) and _takes(fine_tune, 4)):
        raise ArgumentTypeError("fine_tune", fine_tune, f"a function ({signature}) -> accuracy, or None")
    if fine_tune is not None and fine_tune_epochs:
        raise ArgumentError("fine_tune", fine_tune, f"and fine_tune_epochs={fine_tune_epochs} are two fine-tune "
                            "checks; pass one of them")
    return fine_tune


def fine_tune_check_text(make_encoder, *, epochs: int = 2, head_epochs: int = 1, batch_size: int = 16,
                         base_lr: float = 1e-3, unfreeze_lr_factor: float = 0.05, seed: int = 0):
    """A short fine-tune check for `probe_text`: ``fn(train_texts, train_labels, test_texts, test_labels)
    -> accuracy`` that builds a classifier on ``make_encoder()`` (a fresh `tfxfer.text.TextEncoder`
    each call), trains its head for ``head_epochs`` and the whole encoder for ``epochs`` with
    `tfxfer.fine_tune`, and scores the test texts.

    Example:
        >>> from tfxfer.text import load_encoder                                   # doctest: +SKIP
        >>> check = fine_tune_check_text(lambda: load_encoder("all-minilm-l6-v2"))  # doctest: +SKIP
        >>> probe_text(texts, labels, encode=embed, fine_tune=check).verdict      # doctest: +SKIP
        'fine_tuning_wins'
    """
    epochs = check_int("epochs", epochs, low=1)
    head_epochs = check_int("head_epochs", head_epochs, low=0)
    batch_size = check_int("batch_size", batch_size, low=1)
    if not callable(make_encoder):
        raise ArgumentTypeError("make_encoder", make_encoder, "a function () -> tfxfer.text.TextEncoder")

    def check(train_texts, train_labels, test_texts, test_labels) -> float:
        import keras

        from tfxfer.backbones import layer_groups
        from tfxfer.text import build_text_classifier, predict_texts
        from tfxfer.train.fine_tune import fine_tune

        keras.utils.set_random_seed(seed)
        train_y, test_y = np.asarray(train_labels), np.asarray(test_labels)
        model = build_text_classifier(make_encoder(), int(max(train_y.max(), test_y.max())) + 1)
        x = np.asarray(list(train_texts), dtype=object)
        fine_tune(model, (x, train_y), head_epochs=head_epochs, epochs=epochs, base_lr=base_lr,
                  unfreeze_lr_factor=unfreeze_lr_factor, stages={0: len(layer_groups(model)) - 1},
                  batch_size=batch_size, verbose=0, seed=seed)
        probs = predict_texts(model, np.asarray(list(test_texts), dtype=object), batch_size=batch_size)
        return float(np.mean(np.asarray(probs).argmax(axis=1) == test_y))

    return check


def _probe_options(*, max_samples, batch_size, seed, test_fraction, margin):
    """The options every probe checks before any feature is computed: ``(max_samples, batch_size, seed)``."""
    check_float("test_fraction", test_fraction, low=0, high=1, low_open=True, high_open=True)
    check_float("margin", margin, low=0, high=1, high_open=True)
    max_samples = check_int("max_samples", max_samples, low=MIN_EXAMPLES, allow_none=True)
    batch_size = check_int("batch_size", batch_size, low=1)
    return max_samples, batch_size, check_int("seed", seed, low=0, high=2**32 - 1)


def probe_backbone(data, backbone, *, weights: str | None = "imagenet", input_size=None,
                   test_fraction: float = 0.3, margin: float = 0.02, max_samples: int | None = 2000,
                   batch_size: int = 32, seed: int = 0, fine_tune_epochs: int = 0, fine_tune=None) -> ProbeReport:
    """Probe an image backbone: pretrained features against the same architecture with random weights.

    Args:
        data: ``(images, labels)`` raw 0-255 pixels (N, H, W, C) and integer labels, or a
            ``tf.data.Dataset`` of such batches.
        backbone: catalog name or `BackboneSpec`.
        weights: the pretrained weights ("imagenet" or a local file).
        input_size: (height, width) the images are resized to; default the backbone's.
        test_fraction, margin, seed: as in `probe_features`.
        max_samples: probe on a seeded subset of at most this many examples (an int >= 3: 2 to
            train on and 1 to test), or None for all.
        batch_size: feature-extraction (and fine-tune check) batch size, an int >= 1.
        fine_tune_epochs: > 0 adds the short fine-tune check: when the frozen features do not win,
            `tfxfer.fine_tune` trains the head for one epoch then unfreezes the backbone for this
            many epochs on the probe's training split, and its test accuracy decides
            ``fine_tuning_wins`` vs ``transfer_does_not_pay`` (or ``inconclusive``).
        fine_tune: a check of your own instead, ``fn(train_images, train_labels, test_images,
            test_labels) -> accuracy`` (raw pixels, as in ``data``), or None; as in `probe_text`.

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import probe_backbone
        >>> x = np.random.default_rng(0).uniform(0, 255, (40, 32, 32, 3)); y = np.arange(40) % 2
        >>> report = probe_backbone((x, y), "mobilenet_v2", weights=None, input_size=(32, 32))
        >>> report.verdict, report.num_test  # 12 test examples decide nothing
        ('inconclusive', 12)
    """
    fine_tune = _fine_tune_option(fine_tune, fine_tune_epochs, "train_images, train_labels, test_images, test_labels")
    fine_tune_epochs = check_int("fine_tune_epochs", fine_tune_epochs, low=0)
    max_samples, batch_size, seed = _probe_options(max_samples=max_samples, batch_size=batch_size, seed=seed,
                                                   test_fraction=test_fraction, margin=margin)
    images, labels = as_image_arrays(data, max_samples=max_samples, seed=seed)
    labels = single_labels(labels)
    pretrained = Candidate(backbone, weights=weights, input_size=input_size)
    size = pretrained.input_size or pretrained.spec.input_size
    pretrained.spec.check_input_shape((*size, 3))
    control = Candidate(backbone, weights=None, input_size=size)
    feats = candidate_features(pretrained, images, input_size=size, batch_size=batch_size, source_head=False)
    random_feats = candidate_features(control, images, input_size=size, batch_size=batch_size, source_head=False)

    def check(train, test) -> float:
        import keras

        from tfxfer.models import build_model
        from tfxfer.train.fine_tune import fine_tune

        keras.utils.set_random_seed(seed)
        y = np.asarray(labels)
        x = np.asarray(images, dtype=np.float32)
        if tuple(x.shape[1:3]) != tuple(size):
            import tensorflow as tf

            x = tf.image.resize(x, tuple(size)).numpy()
        model = build_model(pretrained.spec, int(y.max()) + 1, input_size=tuple(size), channels=images.shape[-1],
                            weights=weights)
        fine_tune(model, (x[train], y[train]), head_epochs=1, epochs=fine_tune_epochs, batch_size=batch_size,
                  verbose=0, seed=seed)
        probs = model.predict(x[test], batch_size=batch_size, verbose=0)
        return float(np.mean(np.asarray(probs).argmax(axis=1) == y[test]))

    def own_check(train, test) -> float:
        return fine_tune(images[train], labels[train], images[test], labels[test])

    return probe_features(feats.features, {"random_weights": random_feats.features}, labels,
                          test_fraction=test_fraction, margin=margin, seed=seed,
                          fine_tune=check if fine_tune_epochs else own_check if fine_tune is not None else None)
