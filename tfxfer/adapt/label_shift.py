"""Label shift: the classes are as frequent on the target as on the source no longer.

A classifier trained where 50 % of the examples are positive over-predicts the positive class
where 20 % are. Without target labels, the target class priors are estimated by EM on the model's
probabilities for unlabelled target examples (Saerens, Latinne & Decaestecker, Neural Computation
2002), after an optional temperature calibration on labelled source validation data (calibration
makes the EM estimate reliable: Alexandari, Kundaje & Shrikumar, ICML 2020). The correction is
Bayes' rule: ``p_t(y|x) ∝ p_s(y|x) · π_t(y) / π_s(y)``.

* `estimate_target_priors`: the EM estimate (`LabelShiftEstimate`: priors, weights, iterations).
* `fold_prior_correction`: the correction folded into the model's output Dense layer (its kernel
  and bias change; no layer is added, so the model saves and exports as before).
* `correct_label_shift(model, target, source_labels=...)`: both in one, in place, returning the
  estimate (``applied`` False, and the model untouched, when EM did not converge). It composes
  with every other method: correct the model that AdaBN / CORAL / DANN / self-training produced.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt import estimate_target_priors
    >>> rng = np.random.default_rng(0)
    >>> y = (rng.random(4000) < 0.2).astype(int)          # 20 % positives on the target
    >>> score = rng.normal(loc=2.0 * y - 1.0)             # a source-calibrated score (50/50 source)
    >>> p1 = 1 / (1 + np.exp(-2.0 * score))
    >>> estimate = estimate_target_priors(np.stack([1 - p1, p1], axis=1), source_priors=[0.5, 0.5])
    >>> round(float(estimate.priors[1]), 1)
    0.2
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from scipy.optimize import minimize_scalar

from tfxfer.adapt.domain_data import check_inputs, check_labels, sparse_labels, split_data
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.utils.validate import check_float, check_int

#: Below this many unlabelled target examples per class the prior estimate is not applied to a model
#: (at 10 per class a prior's standard error is still about 0.1 at 50 %).
MIN_EXAMPLES_PER_CLASS = 10


@dataclasses.dataclass(frozen=True)
class LabelShiftEstimate:
    """EM's estimate: target ``priors``, the source priors it started from, ``weights`` (their
    ratio), the calibration ``temperature`` (1.0 when none was fitted), the ``iterations``, whether
    EM ``converged``, the target ``examples`` it saw, and whether `correct_label_shift` ``applied``
    it to the model (never when EM did not converge or the target is `too_small`; always False from
    `estimate_target_priors`, which changes no model)."""

    priors: np.ndarray
    source_priors: np.ndarray
    weights: np.ndarray
    temperature: float
    iterations: int
    converged: bool
    applied: bool = False
    examples: int | None = None

    @property
    def too_small(self) -> bool:
        """Fewer than `MIN_EXAMPLES_PER_CLASS` target examples per class: EM converges on such a
        target (one example gives priors of 0 and 1) but the priors it finds are noise."""
        return self.examples is not None and self.examples < MIN_EXAMPLES_PER_CLASS * len(self.priors)

    @property
    def usable(self) -> bool:
        """Whether the estimate is a basis for changing a model (converged on a large enough target)."""
        return self.converged and not self.too_small

    def describe(self) -> str:
        fmt = lambda p: "[" + ", ".join(f"{v:.3f}" for v in p) + "]"  # noqa: E731
        text = (f"class priors {fmt(self.source_priors)} (source) -> {fmt(self.priors)} (target, EM estimate"
                f" after {self.iterations} iterations, temperature {self.temperature:.3g})")
        if not self.converged:
            text += ("; EM did not converge (too few target examples?), so the estimate is unreliable and no "
                     "correction was applied")
        elif self.too_small:
            text += (f"; {self.examples} target example(s) are too few for {len(self.priors)} classes (at least "
                     f"{MIN_EXAMPLES_PER_CLASS * len(self.priors)}), so the estimate is unreliable and no correction "
                     "was applied")
        return text


def _probabilities(name: str, probabilities) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or len(p) == 0:
        raise ArgumentError(name, f"an array of shape {p.shape}", "must be (n_examples, n_classes >= 2) probabilities")
    if not np.all(np.isfinite(p)) or (p < 0).any():
        raise DataError(f"`{name}` holds negative, NaN or infinite values")
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)


def _priors(name: str, priors, classes: int) -> np.ndarray:
    p = np.asarray(priors, dtype=np.float64).reshape(-1)
    if len(p) != classes or not np.all(np.isfinite(p)) or (p <= 0).any():
        raise ArgumentError(name, priors, f"must be {classes} positive class frequencies (one per class)")
    return p / p.sum()


def _tempered(p: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.maximum(p, 1e-12)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(probabilities, labels) -> float:
    """The temperature minimising the negative log-likelihood of ``labels`` (source validation)."""
    p = _probabilities("probabilities", probabilities)
    check_labels(None, labels, name="labels", classes=p.shape[1])
    y = sparse_labels(labels, name="labels")
    if len(y) != len(p):
        raise ArgumentError("labels", f"{len(y)} labels", f"must match the {len(p)} rows of probabilities")

    def nll(log_t):
        q = _tempered(p, float(np.exp(log_t)))
        return -float(np.mean(np.log(np.maximum(q[np.arange(len(y)), y], 1e-12))))

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def estimate_target_priors(target_probabilities, *, source_priors, temperature: float = 1.0,
                           max_iterations: int = 1000, tolerance: float = 1e-8) -> LabelShiftEstimate:
    """EM estimate of the target class priors from a source model's probabilities on target data.

    Args:
        target_probabilities: ``(n, k)`` predicted probabilities on unlabelled target examples.
        source_priors: the ``k`` class frequencies of the model's training data.
        temperature: calibration temperature applied first (see `fit_temperature`).
        max_iterations, tolerance: EM stops when no prior moves by more than ``tolerance``.
    """
    p = _probabilities("target_probabilities", target_probabilities)
    source = _priors("source_priors", source_priors, p.shape[1])
    temperature = check_float("temperature", temperature, low=0.0, low_open=True)
    max_iterations = check_int("max_iterations", max_iterations, low=1)
    p = _tempered(p, temperature) if temperature != 1.0 else p
    priors, converged, iteration = source.copy(), False, 0
    for iteration in range(1, max_iterations + 1):
        posterior = p * (priors / source)
        posterior /= np.maximum(posterior.sum(axis=1, keepdims=True), 1e-300)
        new = np.maximum(posterior.mean(axis=0), 1e-6)
        new /= new.sum()
        moved = float(np.abs(new - priors).max())
        priors = new
        if moved < tolerance:
            converged = True
            break
    return LabelShiftEstimate(priors, source, priors / source, temperature, iteration, converged, examples=len(p))


def _output_dense(model: keras.Model) -> keras.layers.Dense:
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(getattr(layer, "activation", None), "__name__", None)
    if not isinstance(layer, keras.layers.Dense) or activation != "softmax":
        raise ArgumentError("model", getattr(model, "name", model),
                            "must end in a Dense layer with a softmax activation (the correction is folded into it)",
                            hint=f"its last layer is {type(layer).__name__} with activation {activation}")
    return layer


def fold_prior_correction(model: keras.Model, weights, temperature: float = 1.0) -> None:
    """Fold ``softmax(logits / temperature + log(weights))`` into ``model``'s output Dense layer (in place).

    A softmax output ``p = softmax(z)`` gives ``log p = z - const``, so reweighting the classes by
    ``weights`` after temperature ``T`` is ``softmax(z / T + log w)``: the kernel and bias divided
    by ``T``, ``log w`` added to the bias. Nothing is added to the model; it saves and exports as before.
    """
    layer = _output_dense(model)
    temperature = check_float("temperature", temperature, low=0.0, low_open=True)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != layer.units or not np.all(np.isfinite(w)) or (w <= 0).any():
        raise ArgumentError("weights", weights, f"must be {layer.units} positive per-class weights")
    if not layer.use_bias:
        raise ArgumentError("model", model.name, "must have a bias in its output Dense layer to fold the correction")
    kernel, bias = layer.kernel, layer.bias
    kernel.assign(np.asarray(kernel) / temperature)
    bias.assign(np.asarray(bias) / temperature + np.log(w).astype(np.asarray(bias).dtype))


def correct_label_shift(model: keras.Model, target, *, source_labels=None, source_priors=None, calibration=None,
                        batch_size: int = 256) -> LabelShiftEstimate:
    """Correct ``model`` (in place) for the target's EM-estimated class priors.

    The correction (temperature and prior ratio) is folded into the output Dense layer by
    `fold_prior_correction`, so the corrected model is the same Keras model with other weights.
    When EM does not converge, or the target has fewer than `MIN_EXAMPLES_PER_CLASS` examples per
    class (EM then settles on noise: one example gives priors of 0 and 1), nothing is folded in: the
    returned estimate has ``applied`` False and ``describe()`` says why.

    Args:
        model: a classifier ending in a Dense layer with a softmax activation.
        target: unlabelled target inputs (labels, if given as ``(x, y)``, are ignored).
        source_labels: the model's training labels (their frequencies are the source priors;
            every class must occur), or
        source_priors: the source class frequencies directly.
        calibration: optional labelled source validation ``(x, y)``: a temperature is fitted on it
            first (EM needs calibrated probabilities) and folded in as well.
        batch_size: prediction batch size.

    Returns:
        The `LabelShiftEstimate` (target priors, weights, temperature; ``applied``: whether the
        model was changed).

    Raises:
        ArgumentError: ``target`` or ``calibration`` inputs of another shape or channel count than
            the model takes; ``source_labels`` or ``calibration`` labels that are not the model's
            class ids, or ``source_labels`` missing a class.
        DataError: NaN or infinite inputs.
    """
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model with a softmax output")
    classes = _output_dense(model).units
    batch_size = check_int("batch_size", batch_size, low=1)
    if (source_labels is None) == (source_priors is None):
        raise ArgumentError("source_labels", "both or neither of source_labels / source_priors",
                            "must be given, or else source_priors (exactly one of them)")
    # Every check before any work: the model changes only at the end, and only when EM converged.
    x_target, _ = split_data(target, name="target")
    check_inputs(model, x_target, name="target")
    if source_priors is None:
        check_labels(model, source_labels, name="source_labels", classes=classes)
        counts = np.bincount(sparse_labels(source_labels, name="source_labels"), minlength=classes)
        if (counts == 0).any():
            missing = np.flatnonzero(counts == 0).tolist()
            raise ArgumentError("source_labels", f"labels with per-class counts {counts.tolist()[:8]}",
                                f"must hold every one of the model's {classes} classes (class(es) {missing[:8]} "
                                "never occur, so their source prior is 0 and the correction is undefined)",
                                hint="Pass source_priors= with the class frequencies the model was trained on")
        source_priors = counts / counts.sum()
    else:
        source_priors = _priors("source_priors", source_priors, classes)
    if calibration is not None:
        x_val, y_val = split_data(calibration, name="calibration")
        if y_val is None:
            raise ArgumentError("calibration", "inputs without labels", "must be labelled (x, y) source data")
        check_inputs(model, x_val, name="calibration")
        check_labels(model, y_val, name="calibration", classes=classes)
    probabilities = model.predict(x_target, verbose=0, batch_size=batch_size)
    temperature = 1.0
    if calibration is not None:
        temperature = fit_temperature(model.predict(x_val, verbose=0, batch_size=batch_size),
                                      sparse_labels(y_val, name="calibration"))
    estimate = estimate_target_priors(probabilities, source_priors=source_priors, temperature=temperature)
    if not estimate.usable:  # still moving, or settled on a handful of examples: no basis for changing the model
        return estimate
    fold_prior_correction(model, estimate.weights, temperature)
    return dataclasses.replace(estimate, applied=True)
