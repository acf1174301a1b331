"""CORAL on the head's input: a closed-form linear map that gives one domain's features the other's
mean and covariance (Sun, Feng & Saenko, AAAI 2016, "Return of Frustratingly Easy Domain Adaptation").

`fit_coral_map(from_features, to_features)` whitens with the ``from`` covariance and re-colours
with the ``to`` covariance: ``x -> (x - mean_from) C_from^-1/2 C_to^1/2 + mean_to``. Each covariance
is regularised with ``shrinkage`` times its mean variance on the diagonal (the paper adds the
identity to standardised features: ``shrinkage=1``), so it stays invertible when there are fewer
examples than feature dimensions. No labels, no gradient step.

Two ways to use it, both leaving a plain Keras model:

* **target -> source** (deployment): `with_input_map` puts the map in front of the source-trained
  head (or any model taking features), so target features reach it with the source's statistics.
  `CoralMap` (defined in `tfxfer.adapt.coral`, beside Deep CORAL) is an ordinary serializable
  layer; the exported model carries it as one matmul.
* **source -> target** (the paper's recipe): map the source training features to the target's
  statistics and train the head on them; the trained head then takes raw target features and
  nothing of the adaptation stays in it.

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.adapt import fit_coral_map, with_input_map
    >>> rng = np.random.default_rng(0)
    >>> source = rng.normal(size=(500, 3)).astype("float32")
    >>> target = (source @ np.diag([3.0, 1.0, 0.5]) + 2.0).astype("float32")
    >>> coral = fit_coral_map(target, source, shrinkage=0.0)  # target -> source
    >>> mapped = np.asarray(coral(target))
    >>> np.allclose(np.cov(mapped, rowvar=False), np.cov(source, rowvar=False), atol=1e-3)
    True
    >>> head = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    >>> deployed = with_input_map(head, coral)
    >>> np.allclose(deployed.predict(target, verbose=0), head.predict(mapped, verbose=0), atol=1e-5)
    True
"""

from __future__ import annotations

import keras
import numpy as np

from tfxfer.adapt.coral import CoralMap
from tfxfer.adapt.two_sample import as_feature_matrix
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.utils.validate import check_float

__all__ = ["CoralMap", "fit_coral_map", "with_input_map"]


def _sqrt(covariance: np.ndarray, *, inverse: bool) -> np.ndarray:
    """``C^1/2`` (or ``C^-1/2``) of a symmetric positive semi-definite matrix whose largest eigenvalue
    is positive (by eigendecomposition). Eigenvalues below 1e-12 of the largest (a singular
    covariance's rounding noise, negative rounding errors) are floored there: ``C^-1/2`` stays finite."""
    values, vectors = np.linalg.eigh(covariance)
    root = np.sqrt(np.maximum(values, values.max() * 1e-12))
    return (vectors / root if inverse else vectors * root) @ vectors.T


def _regularised_covariance(x: np.ndarray, shrinkage: float, *, name: str) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused just below, not warned about
        covariance = np.atleast_2d(np.cov(x, rowvar=False))
    if not np.isfinite(covariance).all():
        raise DataError(f"`{name}`'s covariance overflows float64 (values up to {float(np.max(np.abs(x))):.3g}); "
                        "scale the features first")
    mean_variance = float(np.trace(covariance)) / len(covariance)
    if shrinkage == 0.0 and not mean_variance > 0.0:
        raise DataError(f"`{name}` has zero variance in every dimension (all {len(x)} examples are identical), so "
                        "with shrinkage=0 its covariance is the zero matrix: there is nothing to whiten or match. "
                        "Check the features (dead units, a constant input) or use shrinkage > 0")
    return covariance + shrinkage * max(mean_variance, 1e-12) * np.eye(len(covariance))


def fit_coral_map(from_features, to_features, *, shrinkage: float = 1.0, name: str = "coral_map") -> CoralMap:
    """A `CoralMap` giving ``from_features`` the mean and covariance of ``to_features``.

    Args:
        from_features: ``(n, d)`` features of the domain to move (e.g. unlabelled target features).
        to_features: ``(m, d)`` features of the domain to match (e.g. the source training features).
        shrinkage: ridge added to each covariance, in units of its mean variance (1.0: the paper's
            identity on standardised features; 0.0: none, needs more examples than dimensions).
        name: the layer's name.

    Raises:
        ArgumentError: features of different dimensions, or a negative shrinkage.
        DataError: fewer than 2 examples, NaN / infinite values, a covariance that overflows, or
            (with ``shrinkage=0``) features with zero variance in every dimension.
    """
    shrinkage = check_float("shrinkage", shrinkage, low=0.0)
    source = as_feature_matrix("from_features", from_features)
    target = as_feature_matrix("to_features", to_features)
    if source.shape[1] != target.shape[1]:
        raise ArgumentError("to_features", f"features of dimension {target.shape[1]}",
                            f"must have the dimension of from_features ({source.shape[1]})")
    if shrinkage == 0.0 and min(len(source), len(target)) <= source.shape[1]:
        raise ArgumentError("shrinkage", shrinkage, f"must be > 0 with {min(len(source), len(target))} examples "
                            f"for {source.shape[1]} dimensions (the covariance is singular)")
    whiten = _sqrt(_regularised_covariance(source, shrinkage, name="from_features"), inverse=True)
    colour = _sqrt(_regularised_covariance(target, shrinkage, name="to_features"), inverse=False)
    layer = CoralMap(source.shape[1], name=name)
    layer.set_weights([source.mean(axis=0), target.mean(axis=0), whiten @ colour])
    return layer


def with_input_map(model: keras.Model, input_map: keras.layers.Layer, *, name: str | None = None) -> keras.Model:
    """A functional model: ``input_map`` (e.g. a target -> source `CoralMap`), then ``model``.

    ``model`` is shared, not copied: training one trains the other. Save and export the result
    like any Keras model.
    """
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model taking one (batch, features) input")
    if not isinstance(input_map, keras.layers.Layer):
        raise ArgumentTypeError("input_map", input_map, "a keras layer such as the CoralMap of fit_coral_map")
    shape = tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else None
    if shape is None or len(shape) != 1:
        raise ArgumentError("model", getattr(model, "name", model), "must take one (batch, features) input",
                            hint=f"its input shape is {shape}")
    dim = getattr(input_map, "dim", shape[0])
    if shape[0] is not None and dim != shape[0]:
        raise ArgumentError("input_map", f"a map of dimension {dim}", f"must match the model's {shape[0]} features")
    inputs = keras.Input(shape, name="features")
    return keras.Model(inputs, model(input_map(inputs)), name=name or f"{model.name}_mapped")
