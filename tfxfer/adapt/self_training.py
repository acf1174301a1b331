"""Self-training: fit on the source plus the target examples the model is already sure about.

Each round predicts the unlabelled target, keeps the examples whose top-1 probability reaches
``threshold`` with their predicted class as a pseudo-label, and ``fit`` s the compiled model on
the labelled source plus those pseudo-labelled target examples. Pseudo-labels are checked before
they are trained on: when nearly all of them (more than ``max_class_fraction``) fall in one class
the method is collapsing (the model confirms its own bias), so it stops, restores the weights from
before the round that caused it and raises `AdaptationDivergedError`; a non-finite loss does the same.
After the last round the target is predicted once more and checked the same way, so a collapse
that the last round's training caused is undone and raised too.

Example:
    >>> import keras, numpy as np
    >>> from tfxfer.adapt import self_train
    >>> rng = np.random.default_rng(0)
    >>> xs = rng.normal(size=(64, 2)).astype("float32"); ys = (xs[:, 0] > 0).astype(int)
    >>> xt = xs + np.float32(0.5)
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> result = self_train(model, (xs, ys), xt, threshold=0.5, rounds=2, epochs=1, verbose=0)
    >>> [r.selected for r in result.rounds]  # every target example clears a 0.5 threshold
    [64, 64]
"""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np

from tfxfer.adapt.domain_data import check_inputs, check_labels, class_count, sparse_labels, split_data
from tfxfer.adapt.trainer import AdaptationDivergedError
from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.optim.prebuild import build_optimizer
from tfxfer.utils.validate import check_float, check_int


@dataclasses.dataclass(frozen=True)
class PseudoLabelRound:
    """One round: how many target examples were ``selected``, their per-class ``class_counts``,
    the mean confidence of the selected ones and the last training ``loss`` (None if not trained)."""

    round: int
    selected: int
    candidates: int
    class_counts: tuple
    mean_confidence: float
    loss: float | None


@dataclasses.dataclass
class SelfTrainingResult:
    """All rounds of `self_train` and why it stopped ("completed" or "no confident predictions")."""

    rounds: list
    stopped: str

    def summary(self) -> str:
        lines = [f"self-training: {len(self.rounds)} round(s), {self.stopped}"]
        for r in self.rounds:
            loss = "not trained" if r.loss is None else f"loss {r.loss:.4f}"
            lines.append(f"  round {r.round}: {r.selected}/{r.candidates} pseudo-labelled, per class "
                         f"{list(r.class_counts)}, confidence {r.mean_confidence:.3f}, {loss}")
        return "\n".join(lines)


def _snapshot(model):
    return [np.array(w) for w in model.get_weights()]


def _select(probs: np.ndarray, threshold: float, per_class_fraction: float | None) -> np.ndarray:
    """Rows to pseudo-label: top-1 probability >= ``threshold``; with ``per_class_fraction``, also
    the most confident ``per_class_fraction`` of the rows predicted as each class (class-balanced)."""
    confidence, labels = probs.max(axis=1), probs.argmax(axis=1)
    keep = confidence >= threshold
    if per_class_fraction is not None:
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            take = max(1, int(round(per_class_fraction * len(rows))))
            keep[rows[np.argsort(-confidence[rows], kind="stable")[:take]]] = True
    return keep


def self_train(model: keras.Model, source, target, *, threshold: float = 0.9, rounds: int = 3, epochs: int = 1,
               batch_size: int = 32, max_class_fraction: float | None = 0.95,
               per_class_fraction: float | None = None, verbose: int = 0, seed: int = 0) -> SelfTrainingResult:
    """Confidence-thresholded pseudo-labelling rounds on ``target`` (``model`` trained in place).

    Args:
        model: a compiled single-output softmax classifier (``model.compile(optimizer, loss)``
            with a sparse or categorical cross-entropy matching the source labels).
        source: labelled ``(x, y)`` source data, trained on in every round (class ids ``(n,)`` or
            ``(n, 1)``, or one-hot rows ``(n, classes)``).
        target: unlabelled target inputs (``x``, or ``(x, y)`` whose labels are ignored).
        threshold: minimum top-1 probability for a target example to get a pseudo-label, in (0, 1].
        rounds: pseudo-labelling rounds (each predicts, selects, then fits ``epochs``).
        epochs: epochs of ``fit`` per round.
        batch_size: batch size of predict and fit.
        max_class_fraction: stop with `AdaptationDivergedError` when more than this share of
            the selected pseudo-labels is one class (None: never; set it above the largest class
            share you expect on the target).
        per_class_fraction: class-balanced selection (Zou et al., 2018, CBST): besides the
            examples above ``threshold``, keep the most confident ``per_class_fraction`` (in (0, 1])
            of the target examples predicted as each class, so a class the shifted model is unsure
            about still gets pseudo-labels (a fixed threshold alone starves it and self-training
            drifts toward the confident majority class). None: the threshold alone.
        verbose: passed to ``fit``.
        seed: shuffling seed.

    Returns:
        A `SelfTrainingResult` (one `PseudoLabelRound` per round run).

    Raises:
        AdaptationDivergedError: pseudo-labels collapsed or the loss became NaN (weights restored).
        ModelError: the model is not compiled or is not a softmax classifier.
        ArgumentError: target inputs of another shape or channel count than the model takes.
    """
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a compiled keras.Model")
    threshold = check_float("threshold", threshold, low=0.0, high=1.0, low_open=True)
    rounds = check_int("rounds", rounds, low=1)
    epochs = check_int("epochs", epochs, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    max_class_fraction = check_float("max_class_fraction", max_class_fraction, low=0.0, high=1.0, low_open=True,
                                     allow_none=True)
    per_class_fraction = check_float("per_class_fraction", per_class_fraction, low=0.0, high=1.0, low_open=True,
                                     allow_none=True)
    if getattr(model, "optimizer", None) is None or not getattr(model, "compiled", False):
        raise ModelError(f"Model {model.name!r} is not compiled: call model.compile(optimizer, loss) before self_train")
    num_classes = class_count(model)
    if num_classes is None:
        raise ModelError(f"self_train needs a softmax classifier with >= 2 outputs; {model.name!r} has "
                         f"output shape {model.output_shape}")
    x_source, y_source = split_data(source, name="source")
    if y_source is None:
        raise ArgumentError("source", "inputs without labels", "must be an (x, y) tuple: the source is labelled")
    x_target, _ = split_data(target, name="target")
    check_inputs(model, x_source, name="source")
    check_inputs(model, x_target, name="target")
    check_labels(model, y_source, name="source")
    one_hot = np.asarray(y_source).ndim == 2 and np.asarray(y_source).shape[1] > 1
    y_source = np.asarray(y_source)
    history, previous = [], _snapshot(model)
    stopped = "completed"
    for index in range(rounds + 1):  # the last pass only checks what the last round's training did
        final = index == rounds
        probs = np.asarray(model.predict(x_target, batch_size=batch_size, verbose=0), dtype=np.float64)
        confidence, labels = probs.max(axis=1), probs.argmax(axis=1)
        keep = _select(probs, threshold, per_class_fraction)
        counts = tuple(int(c) for c in np.bincount(labels[keep], minlength=num_classes))
        mean_conf = float(confidence[keep].mean()) if keep.any() else 0.0
        if not keep.any():
            if not final:
                history.append(PseudoLabelRound(index, 0, len(x_target), counts, mean_conf, None))
                stopped = "no confident predictions"
            break
        top_share = max(counts) / keep.sum()
        if max_class_fraction is not None and top_share > max_class_fraction and keep.sum() > 1:
            if not final:
                history.append(PseudoLabelRound(index, int(keep.sum()), len(x_target), counts, mean_conf, None))
            if index:  # the previous round's training caused it: undo that round
                model.set_weights(previous)
            where = f"after the last round ({index - 1})" if final else f"in round {index}"
            raise AdaptationDivergedError(
                f"self_train: pseudo-labels collapsed {where}: {top_share:.0%} of the {int(keep.sum())} "
                f"confident target predictions are class {int(np.argmax(counts))} (limit "
                f"max_class_fraction={max_class_fraction}). The weights from before "
                f"{'round ' + str(index - 1) if index else 'self-training'} are kept. Raise `threshold`, "
                "balance the source classes, or adapt the features first (adapt_batchnorm, DANN).",
                reason="collapse", method="self_train", epoch=index, value=top_share)
        if final:
            break
        pseudo = labels[keep]
        if one_hot:
            pseudo_y = np.eye(num_classes, dtype=np.float32)[pseudo]
        else:
            # in the source labels' own shape, (n,) or (n, 1): the model may have been fitted on either
            pseudo_y = pseudo.astype(sparse_labels(y_source).dtype).reshape((-1, *y_source.shape[1:]))
        x_train = np.concatenate([x_source, x_target[keep]])
        y_train = np.concatenate([y_source, pseudo_y])
        order = np.random.default_rng(seed + index).permutation(len(x_train))
        previous = _snapshot(model)
        build_optimizer(model, batch=(x_train[:1], y_train[:1]))  # the first step is traced once, not twice
        fit = model.fit(x_train[order], y_train[order], epochs=epochs, batch_size=batch_size, shuffle=True,
                        verbose=verbose)
        loss = float(fit.history["loss"][-1])
        history.append(PseudoLabelRound(index, int(keep.sum()), len(x_target), counts, mean_conf, loss))
        if not math.isfinite(loss) or not all(np.all(np.isfinite(w)) for w in model.get_weights()):
            model.set_weights(previous)
            raise AdaptationDivergedError(
                f"self_train: the loss became {loss} in round {index}; the weights from before that round are kept. "
                "Lower the learning rate.", reason="nan", method="self_train", epoch=index, value=loss)
    return SelfTrainingResult(history, stopped)
