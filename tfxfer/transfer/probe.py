"""Negative-transfer and domain-shift check: do pretrained features beat a control?

A quick linear probe (standardised features + logistic regression) is trained on the pretrained
backbone's features and on controls that know nothing of the source domain: the *same
architecture with random weights* and, for text, *TF-IDF + logistic regression*. If the
pretrained features do not beat the best control by more than the margin (or twice the standard
error of the difference, whichever is larger), what the backbone learned does not carry over to
this data: the report says so and lists remedies.

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

import dataclasses
import warnings

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.transfer._checks import as_class_labels, as_features
from tfxfer.transfer._data import as_image_arrays, single_labels
from tfxfer.transfer.candidates import Candidate
from tfxfer.transfer.embeddings import candidate_features
from tfxfer.utils.validate import check_float, check_int

VERDICTS = {
    "transfer_helps": "pretrained features beat every control: fine-tune from this backbone",
    "no_clear_gain": "pretrained features are no better than the control: likely domain shift",
    "negative_transfer": "pretrained features are worse than the control: negative transfer",
}

REMEDIES = (
    "Unfreeze more of the backbone and fine-tune deeper at a low learning rate "
    "(tfxfer.freezing.unfreeze(model, fraction=0.5) or fine_tune(..., with more stages)).",
    "Try another backbone, closer to your domain or at a higher input resolution (tfxfer rank).",
    "Check the input pipeline: preprocessing mode, channel order, grayscale vs RGB and input size "
    "must match what the backbone was trained on.",
    "Adapt to the domain: continue pretraining on unlabelled in-domain images (self-supervised), "
    "or, with enough labels, train from scratch and keep the control as the baseline.",
)


@dataclasses.dataclass
class ProbeReport:
    """Linear-probe accuracies, the verdict and remedies."""

    pretrained_accuracy: float
    controls: dict
    chance_accuracy: float
    gain: float
    threshold: float
    verdict: str
    remedies: list
    num_train: int
    num_test: int

    @property
    def best_control(self) -> str:
        return max(self.controls, key=self.controls.get)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"best_control": self.best_control, "summary": VERDICTS[self.verdict]}

    def to_markdown(self) -> str:
        lines = ["| features | linear-probe accuracy |", "|---|---:|",
                 f"| pretrained | {self.pretrained_accuracy:.3f} |"]
        lines += [f"| control: {name} | {acc:.3f} |" for name, acc in self.controls.items()]
        lines += [f"| chance (majority class) | {self.chance_accuracy:.3f} |", "",
                  f"**{self.verdict}**: {VERDICTS[self.verdict]} (gain {self.gain:+.3f} over "
                  f"{self.best_control}; threshold {self.threshold:.3f}; {self.num_train} train / "
                  f"{self.num_test} test examples)."]
        if self.remedies:
            lines += ["", "Remedies:", *[f"- {r}" for r in self.remedies]]
        return "\n".join(lines)


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
    """Seeded train/test indices, stratified when every class has at least two examples."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < float(test_fraction) < 1.0:
        raise ArgumentError("test_fraction", test_fraction, "must be in (0, 1)")
    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    index = np.arange(len(labels))
    train, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=stratify)
    if len(np.unique(labels[train])) < 2:
        raise DataError("The probe's training split holds a single class; pass more data")
    return np.sort(train), np.sort(test)


def verdict_from_accuracies(pretrained: float, controls: dict, *, num_test: int, num_train: int = 0,
                            chance: float = 0.0, margin: float = 0.02) -> ProbeReport:
    """The verdict: compare ``pretrained`` accuracy with the best of ``controls`` (name -> accuracy).

    The gain must exceed ``max(margin, 2 * standard error of the difference)`` to count.

    Example:
        >>> from tfxfer.transfer import verdict_from_accuracies
        >>> verdict_from_accuracies(0.62, {"random_weights": 0.71}, num_test=500).verdict
        'negative_transfer'
    """
    if not isinstance(controls, dict) or not controls:
        raise ArgumentTypeError("controls", controls, "a non-empty dict of control name -> accuracy")
    margin = check_float("margin", margin, low=0, high=1, high_open=True)
    num_test = check_int("num_test", num_test, low=1)
    best = max(controls.values())
    se = np.sqrt((pretrained * (1 - pretrained) + best * (1 - best)) / num_test)
    threshold = float(max(margin, 2.0 * se))
    gain = float(pretrained - best)
    if gain >= threshold:
        verdict = "transfer_helps"
    elif gain <= -threshold:
        verdict = "negative_transfer"
    else:
        verdict = "no_clear_gain"
    remedies = [] if verdict == "transfer_helps" else list(REMEDIES)
    return ProbeReport(pretrained_accuracy=float(pretrained), controls={k: float(v) for k, v in controls.items()},
                       chance_accuracy=float(chance), gain=gain, threshold=threshold, verdict=verdict,
                       remedies=remedies, num_train=int(num_train), num_test=int(num_test))


def probe_features(pretrained, controls: dict, labels, *, test_fraction: float = 0.3, margin: float = 0.02,
                   seed: int = 0, extra_controls: dict | None = None) -> ProbeReport:
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
    """
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
    return verdict_from_accuracies(
        linear_probe_accuracy(pretrained[train], y[train], pretrained[test], y[test]), accuracy,
        num_test=len(test), num_train=len(train), chance=chance, margin=margin)


def tfidf_accuracy(train_texts, train_labels, test_texts, test_labels, *, C: float = 10.0) -> float:
    """Accuracy of the classic text baseline: word 1-2-gram TF-IDF + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    train = vectorizer.fit_transform(list(train_texts))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(C=C, max_iter=1000).fit(train, train_labels)
    return float(np.mean(model.predict(vectorizer.transform(list(test_texts))) == np.asarray(test_labels)))


def probe_text(texts, labels, *, encode, encode_control=None, test_fraction: float = 0.3,
               margin: float = 0.02, seed: int = 0) -> ProbeReport:
    """Probe a text encoder: its features against TF-IDF (and, if given, a random-weights encoder).

    Args:
        texts: N strings.
        labels: N integer labels.
        encode: ``fn(list[str]) -> (N, D) array`` of pooled sentence features from the pretrained
            encoder (e.g. mean-pooled keras-hub BERT outputs).
        encode_control: the same for the encoder with random weights, or None.
        test_fraction, margin, seed: as in `probe_features`.

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import probe_text
        >>> texts = ["good fun", "great film", "bad plot", "awful acting"] * 25
        >>> labels = [1, 1, 0, 0] * 25
        >>> noise = lambda t: np.random.default_rng(len(t)).normal(size=(len(t), 4))
        >>> probe_text(texts, labels, encode=noise).verdict  # random "encoder" loses to TF-IDF
        'negative_transfer'
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ArgumentTypeError("texts", type(texts).__name__, "a sequence of strings")
    texts = list(texts)
    if not callable(encode) or (encode_control is not None and not callable(encode_control)):
        raise ArgumentTypeError("encode", encode, "a function list[str] -> (N, D) array")
    y = np.asarray(labels)
    controls = {} if encode_control is None else {"random_weights": encode_control(texts)}

    def tfidf(train, test):
        return tfidf_accuracy([texts[i] for i in train], y[train], [texts[i] for i in test], y[test])

    return probe_features(encode(texts), controls, y, test_fraction=test_fraction, margin=margin, seed=seed,
                          extra_controls={"tfidf": tfidf})


def probe_backbone(data, backbone, *, weights: str | None = "imagenet", input_size=None,
                   test_fraction: float = 0.3, margin: float = 0.02, max_samples: int | None = 2000,
                   batch_size: int = 32, seed: int = 0) -> ProbeReport:
    """Probe an image backbone: pretrained features against the same architecture with random weights.

    Args:
        data: ``(images, labels)`` raw 0-255 pixels (N, H, W, C) and integer labels, or a
            ``tf.data.Dataset`` of such batches.
        backbone: catalog name or `BackboneSpec`.
        weights: the pretrained weights ("imagenet" or a local file).
        input_size: (height, width) the images are resized to; default the backbone's.
        test_fraction, margin, seed: as in `probe_features`.
        max_samples: probe on a seeded subset of at most this many examples.
        batch_size: feature-extraction batch size.

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import probe_backbone
        >>> x = np.random.default_rng(0).uniform(0, 255, (40, 32, 32, 3)); y = np.arange(40) % 2
        >>> probe_backbone((x, y), "mobilenet_v2", weights=None, input_size=(32, 32)).verdict
        'no_clear_gain'
    """
    images, labels = as_image_arrays(data, max_samples=max_samples, seed=seed)
    labels = single_labels(labels)
    pretrained = Candidate(backbone, weights=weights, input_size=input_size)
    size = pretrained.input_size or pretrained.spec.input_size
    pretrained.spec.check_input_shape((*size, 3))
    control = Candidate(backbone, weights=None, input_size=size)
    feats = candidate_features(pretrained, images, input_size=size, batch_size=batch_size, source_head=False)
    random_feats = candidate_features(control, images, input_size=size, batch_size=batch_size, source_head=False)
    return probe_features(feats.features, {"random_weights": random_feats.features}, labels,
                          test_fraction=test_fraction, margin=margin, seed=seed)
