"""H-score, k-NN, LEEP and NCE transferability scores (numpy only); LogME lives in `tfxfer.transfer.logme`.

* **H-score** (Bao et al., 2019) scores frozen features: ``tr(cov(f)^+ cov(E[f | y]))``, the
  between-class variance a linear head can see, in units of the feature covariance.
* **k-NN** (`knn`): leave-one-out accuracy of a k-nearest-neighbour vote (cosine similarity of
  centred features). No fitting and no assumption about the head; a 2025 study of 23
  transferability metrics on 16 data sets (arXiv 2503.18528) found a simple k-NN score among the
  most reliable.
* **LEEP** (Nguyen et al., 2020) and **NCE** (Tran et al., 2019) score the *source classifier*
  (for image backbones, the 1000-class ImageNet head): they measure how well target labels can be
  predicted from the source model's predicted classes. They need no features, only the (N, Z)
  source probabilities.

All scores are "higher is better" and comparable between backbones on the same data only.

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer import hscore, leep, nce
    >>> round(hscore(np.array([0.0, 2.0, 4.0, 6.0]), np.array([0, 0, 1, 1])), 6)
    0.8
    >>> knn(np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]]), np.array([0, 0, 1, 1]), k=1)
    1.0
    >>> probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> leep(probs, np.array([0, 1])), nce(probs, np.array([0, 1]))
    (0.0, 0.0)
"""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.transfer._checks import as_class_labels, as_features, as_probabilities
from tfxfer.utils.validate import check_int, is_number

_EPS = np.finfo(np.float64).eps


def hscore(features, labels, *, shrinkage: "float | str | None" = "auto") -> float:
    """H-score of ``features`` for class ``labels`` (higher is better; at most C - 1 unshrunk).

    Args:
        features: (N, D) frozen features.
        labels: (N,) integer class labels.
        shrinkage: "auto" (default) is the shrinkage-based H-score of Ibrahim et al. (2022),
            ``tr(((1-a) cov(f) + a mu I)^-1 (1-a) cov(E[f|y]))`` with the Ledoit-Wolf amount ``a``
            (``mu`` the mean variance). Without it the score approaches its ceiling C - 1
            whenever D nears N (e.g. 1280-d features of 1,000 images), whatever the features.
            None gives the original H-score (pseudo-inverse, eigenvalues below the rank
            tolerance ignored); a float in [0, 1] fixes ``a``.

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import hscore
        >>> x = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0], [6.0, 1.0]])  # second column constant
        >>> round(hscore(x, [0, 0, 1, 1], shrinkage=None), 6)
        0.8
    """
    f = as_features(features)
    indices, classes = as_class_labels(labels, f.shape[0])
    f = f - f.mean(axis=0, keepdims=True)
    peak = float(np.max(np.abs(f)))
    if peak > 0.0:
        f = f / peak  # the H-score is scale invariant; this keeps the covariance far from overflow
    n, d = f.shape
    amount = 0.0 if shrinkage is None else _shrinkage_amount(f, shrinkage)
    # Work in the smaller Gram matrix: class means lie in the row space of the centred features,
    # so only the (at most min(N, D)) non-zero covariance directions contribute, shrunk or not.
    dual = n < d
    gram = f @ f.T if dual else f.T @ f
    evals, evecs = np.linalg.eigh(gram)
    top = float(evals.max()) if evals.size else 0.0
    keep = evals > max(top, 0.0) * max(n, d) * _EPS * 10
    if not np.any(keep):
        return 0.0
    evals, evecs = evals[keep], evecs[:, keep]
    counts = np.bincount(indices, minlength=classes.size).astype(np.float64)
    sums = np.zeros((classes.size, n if dual else d))
    if dual:  # means @ V with V = F^T U / s: (onehot^T F F^T U) / s / counts
        np.add.at(sums, indices, gram)
        projected = (sums @ evecs) / np.sqrt(evals)[None, :] / counts[:, None]
    else:
        np.add.at(sums, indices, f)
        projected = (sums / counts[:, None]) @ evecs
    variance = evals / n
    mean_variance = float(np.sum(variance)) / d
    shrunk = (1.0 - amount) * variance + amount * mean_variance
    between = (1.0 - amount) * np.sum((counts / n)[:, None] * projected**2 / shrunk[None, :])
    return float(between)


def knn(features, labels, *, k: int = 10, chunk: int = 1024) -> float:
    """Leave-one-out k-nearest-neighbour accuracy of ``features`` for class ``labels`` (higher is
    better, in [0, 1]).

    Features are rescaled (one global factor, so the score does not depend on their scale),
    centred and L2-normalised; each example's ``k`` most cosine-similar other examples
    vote (ties go to the class with the larger summed similarity). ``k`` is capped at N - 1. The
    (N, N) similarities are computed ``chunk`` rows at a time, so memory stays O(chunk * N).

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import knn
        >>> rng = np.random.default_rng(0)
        >>> y = np.arange(200) % 2
        >>> knn(rng.normal(size=(200, 8)) + 3.0 * y[:, None], y) > 0.9 > knn(rng.normal(size=(200, 8)), y) > 0.2
        True
    """
    f = as_features(features)
    indices, classes = as_class_labels(labels, f.shape[0])
    k = min(check_int("k", k, low=1), f.shape[0] - 1)
    check_int("chunk", chunk, low=1)
    f = _unit_scale(f)  # one global factor: cosines unchanged, no overflow at 1e300 nor underflow at 1e-300
    f = _unit_scale(f - f.mean(axis=0, keepdims=True))
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    f = np.divide(f, norms, out=np.zeros_like(f), where=norms > 0)
    n, correct = f.shape[0], 0
    onehot = np.eye(classes.size)[indices]
    for start in range(0, n, chunk):
        sims = f[start:start + chunk] @ f.T
        rows = np.arange(sims.shape[0])
        sims[rows, start + rows] = -np.inf  # leave one out
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near_sims = np.take_along_axis(sims, nearest, axis=1)
        votes = onehot[nearest].sum(axis=1) + 1e-6 * np.einsum("rk,rkc->rc", near_sims + 1.0, onehot[nearest])
        correct += int(np.sum(votes.argmax(axis=1) == indices[start:start + chunk]))
    return correct / n


def _unit_scale(f: np.ndarray) -> np.ndarray:
    """``f`` divided by its largest absolute value (unchanged when all zero)."""
    peak = float(np.max(np.abs(f))) if f.size else 0.0
    return f / peak if peak > 0 else f


def _shrinkage_amount(centred: np.ndarray, shrinkage) -> float:
    if isinstance(shrinkage, str):
        if shrinkage != "auto":
            raise ArgumentError("shrinkage", shrinkage, 'must be None, "auto" or a float in [0, 1]')
        return ledoit_wolf_amount(centred)
    if is_number(shrinkage) and 0.0 <= shrinkage <= 1.0:
        return float(shrinkage)
    raise ArgumentError("shrinkage", shrinkage, 'must be None, "auto" or a float in [0, 1]')


def ledoit_wolf_amount(centred: np.ndarray) -> float:
    """Ledoit-Wolf shrinkage intensity of centred (N, D) data, as scikit-learn computes it,
    evaluated through the smaller Gram matrix (``||X^T X||_F = ||X X^T||_F``)."""
    n, d = centred.shape
    sq_norms = np.sum(centred * centred, axis=1)
    gram = centred @ centred.T if n < d else centred.T @ centred
    trace = float(np.sum(sq_norms)) / n
    mu = trace / d
    frob = float(np.sum(gram * gram)) / n**2  # ||S||_F^2
    beta = (float(np.sum(sq_norms**2)) / n - frob) / (d * n)
    delta = (frob - 2.0 * mu * trace + d * mu**2) / d
    beta = min(beta, delta)
    return 0.0 if beta <= 0.0 or delta <= 0.0 else float(beta / delta)


def leep(source_probs, labels, *, from_logits: bool = False) -> float:
    """LEEP: log expected empirical prediction of the source classifier (higher is better, <= 0).

    Args:
        source_probs: (N, Z) probabilities of the source model's Z classes (e.g. ImageNet's 1000).
        labels: (N,) integer target labels.
        from_logits: set True if ``source_probs`` are logits (a softmax is applied).

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import leep
        >>> round(leep(np.full((2, 2), 0.5), [0, 1]), 4)  # uninformative source: log(1/2)
        -0.6931
    """
    theta = as_probabilities(source_probs, from_logits=from_logits)
    indices, classes = as_class_labels(labels, theta.shape[0])
    n = theta.shape[0]
    joint = np.zeros((classes.size, theta.shape[1]))
    np.add.at(joint, indices, theta)
    joint /= n
    marginal = joint.sum(axis=0)
    conditional = np.divide(joint, marginal[None, :], out=np.zeros_like(joint), where=marginal[None, :] > 0)
    expected = np.sum(conditional[indices] * theta, axis=1)
    return float(np.mean(np.log(np.maximum(expected, 1e-300))))


def nce(source, labels) -> float:
    """NCE: negative conditional entropy ``-H(Y | Z)`` of target labels given source labels (<= 0).

    Args:
        source: (N, Z) source-model probabilities or logits (their argmax is the source label),
            or (N,) integer source labels.
        labels: (N,) integer target labels.

    Example:
        >>> import numpy as np
        >>> from tfxfer.transfer import nce
        >>> round(nce(np.array([0, 0, 0, 1]), [0, 0, 1, 1]), 4)  # 0.5 log(2/3) + 0.25 log(1/3)
        -0.4774
    """
    array = np.asarray(source)
    if array.ndim == 1:
        if array.dtype.kind not in "iub":
            raise ArgumentError("source", f"1-D array of dtype {array.dtype}", "must be integer source labels or (N, Z) probabilities")
        z = np.unique(array, return_inverse=True)[1].reshape(-1)
    else:
        z = np.argmax(as_features(array, name="source"), axis=1)
    n = z.shape[0]
    y, _ = as_class_labels(labels, n)
    joint = np.zeros((y.max() + 1, z.max() + 1))
    np.add.at(joint, (y, z), 1.0)
    joint /= n
    marginal = np.broadcast_to(joint.sum(axis=0)[None, :], joint.shape)
    nonzero = joint > 0
    return float(np.sum(joint[nonzero] * np.log(joint[nonzero] / marginal[nonzero])))
