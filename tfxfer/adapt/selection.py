"""Choosing an adaptation method (or its weight) without target labels: reverse validation.

Target labels are what an unsupervised adaptation method does not have, so they cannot pick its
hyperparameters either. Reverse validation (Zhong et al., ECML 2010; used for DANN by Ganin et al.,
JMLR 2016) scores a candidate by how well its *target predictions* carry the source labelling
back: a reverse classifier is trained on the target features with the candidate's predicted
labels as targets and scored on labelled source validation features. A candidate whose target
pseudo-labels are wrong teaches the reverse classifier a wrong boundary, which shows on the source.

The reverse classifier is an L2-regularised multinomial logistic regression on standardised
features (deterministic, seconds on CPU); the score is its source-validation accuracy.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt import reverse_validation
    >>> rng = np.random.default_rng(0)
    >>> xs = rng.normal(size=(200, 2)); ys = (xs[:, 0] > 0).astype(int)
    >>> xt = rng.normal(size=(200, 2)) + 0.5
    >>> good = reverse_validation(xt, (xt[:, 0] > 0.5).astype(int), xs, ys)
    >>> bad = reverse_validation(xt, (xt[:, 1] > 0.5).astype(int), xs, ys)
    >>> good > 0.75, bad < 0.6  # the right boundary carries back; the wrong one is a coin flip
    (True, True)
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from tfxfer.adapt.domain_data import sparse_labels
from tfxfer.adapt.two_sample import as_feature_matrix
from tfxfer.errors import ArgumentError
from tfxfer.utils.validate import check_float


def _fit_softmax(x: np.ndarray, y: np.ndarray, classes: int, l2: float) -> np.ndarray:
    design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    onehot = np.eye(classes)[y]

    def loss_and_grad(flat):
        w = flat.reshape(design.shape[1], classes)
        logits = design @ w
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -np.mean(np.sum(onehot * log_p, axis=1)) + 0.5 * l2 * np.sum(w[:-1] ** 2)
        grad = design.T @ (np.exp(log_p) - onehot) / len(x)
        grad[:-1] += l2 * w[:-1]
        return loss, grad.ravel()

    result = minimize(loss_and_grad, np.zeros(design.shape[1] * classes), jac=True, method="L-BFGS-B",
                      options={"maxiter": 300})
    return result.x.reshape(design.shape[1], classes)


def reverse_validation(target_features, target_predictions, source_features, source_labels, *,
                       l2: float = 1e-2) -> float:
    """Source-validation accuracy of a classifier trained on target features with predicted labels.

    Args:
        target_features: ``(n, d)`` features of unlabelled target examples (the candidate's inputs).
        target_predictions: the candidate's predictions for them: labels ``(n,)`` or probabilities
            ``(n, k)`` (argmax taken). Never the true target labels.
        source_features: ``(m, d)`` features of labelled source validation examples.
        source_labels: their true labels.
        l2: ridge penalty of the reverse logistic regression (standardised features).

    Returns:
        The accuracy in [0, 1]; higher is better. A candidate predicting one class for every target
        example scores the source's majority share at most.
    """
    l2 = check_float("l2", l2, low=0.0)
    xt = as_feature_matrix("target_features", target_features)
    xs = as_feature_matrix("source_features", source_features)
    if xt.shape[1] != xs.shape[1]:
        raise ArgumentError("source_features", f"features of dimension {xs.shape[1]}",
                            f"must have the target features' dimension {xt.shape[1]}")
    predicted = sparse_labels(target_predictions, name="target_predictions")  # ids, or argmax of probabilities
    if len(predicted) != len(xt):
        raise ArgumentError("target_predictions", f"{len(predicted)} predictions",
                            f"must match the {len(xt)} target examples")
    ys = sparse_labels(source_labels, name="source_labels")
    if len(ys) != len(xs):
        raise ArgumentError("source_labels", f"{len(ys)} labels", f"must match the {len(xs)} source examples")
    for name, ids in (("target_predictions", predicted), ("source_labels", ys)):
        if len(ids) and ids.min() < 0:
            raise ArgumentError(name, f"class ids including {int(ids.min())}", "must be class ids >= 0")
    classes = int(max(predicted.max(), ys.max())) + 1
    if len(np.unique(predicted)) < 2:  # nothing to learn: the constant classifier
        return float(np.mean(ys == predicted[0]))
    mean, std = xt.mean(axis=0), xt.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    weights = _fit_softmax((xt - mean) / std, predicted, classes, l2)
    scores = np.concatenate([(xs - mean) / std, np.ones((len(xs), 1))], axis=1) @ weights
    return float(np.mean(scores.argmax(axis=1) == ys))
