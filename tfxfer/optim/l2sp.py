"""L2-SP: keep fine-tuned weights close to their pretrained values (Li, Grandvalet & Davoine, 2018).

Plain weight decay pulls weights towards zero, which fights the pretrained solution; L2-SP pulls
them back towards their starting point instead, which limits catastrophic forgetting when the
target data set is small. The penalty follows Keras's convention (no 1/2 factor)::

    alpha * sum((w - w_pretrained) ** 2)  for backbone kernels      (L2SP)
    beta  * sum(w ** 2)                   for new head kernels       (keras.regularizers.L2)

`L2SP` is an ordinary, serializable Keras regularizer that carries its anchor (the pretrained
kernel) in its config, so a model saved to ``.keras`` reloads with the same penalty and can keep
fine-tuning. The anchor is stored exactly (float32, base64) and so adds about 1.33x the size of
the regularized weights to the ``.keras`` file's config.

`attach_l2sp` is what a recipe calls: it puts an `L2SP` anchored at the *current* values on
every kernel of the backbone (convolutions, depthwise/pointwise kernels, dense and embedding
matrices). Call it after loading pretrained weights and before ``compile`` / ``fit``.

Example:
    >>> from tfxfer.models import build_model
    >>> from tfxfer.optim import attach_l2sp, l2sp_drift
    >>> model = build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None, freeze=False)
    >>> attached = attach_l2sp(model, alpha=1e-3, beta=1e-4)
    >>> len(attached) > 50, max(l2sp_drift(model).values())
    (True, 0.0)
"""

from __future__ import annotations

import base64

import keras
import numpy as np
from keras import ops

from tfxfer.backbones.groups import get_backbone
from tfxfer.errors import ArgumentError, ArgumentTypeError, ModelError
from tfxfer.utils.validate import check_float

#: Layer attributes that hold a kernel, and the constructor argument of their regularizer
#: (Keras's DepthwiseConv2D keeps its kernel in ``kernel`` but regularizes it by ``depthwise_regularizer``).
KERNEL_ATTRIBUTES = (
    ("kernel", "kernel_regularizer"),
    ("kernel", "depthwise_regularizer"),
    ("depthwise_kernel", "depthwise_regularizer"),
    ("pointwise_kernel", "pointwise_regularizer"),
    ("embeddings", "embeddings_regularizer"),
)


def _decode_anchor(anchor) -> np.ndarray:
    if isinstance(anchor, dict):
        try:
            raw = base64.b64decode(anchor["base64"].encode("ascii"))
            array = np.frombuffer(raw, dtype=np.dtype(anchor["dtype"])).reshape(anchor["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ArgumentError("anchor", "a malformed dict", 'must hold "base64", "dtype" and "shape" (from get_config)') from exc
        return array.copy()
    if isinstance(anchor, keras.Variable):
        anchor = anchor.numpy()
    try:
        array = np.asarray(anchor, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ArgumentTypeError("anchor", anchor, "an array of pretrained weights") from exc
    if array.size == 0 or not np.all(np.isfinite(array)):
        raise ArgumentError("anchor", f"array of shape {array.shape}", "must be a non-empty array of finite values")
    return array.copy()


@keras.saving.register_keras_serializable(package="tfxfer")
class L2SP(keras.regularizers.Regularizer):
    """``alpha * sum((w - anchor) ** 2)``: weight decay towards the pretrained weights.

    Args:
        alpha: strength, >= 0 (the L2-SP paper uses 0.01-0.1 with its 1/2 factor).
        anchor: the pretrained value of the weight (an array of the weight's shape), or the
            encoded form that ``get_config`` returns.

    Example:
        >>> import numpy as np, keras
        >>> from tfxfer.optim import L2SP
        >>> reg = L2SP(alpha=0.5, anchor=np.ones((2, 2)))
        >>> float(reg(keras.ops.zeros((2, 2))))
        2.0
    """

    def __init__(self, alpha: float = 0.01, anchor=None):
        self.alpha = check_float("alpha", alpha, low=0)
        if anchor is None:
            raise ArgumentError("anchor", None, "must be the pretrained weights to pull towards",
                                hint="Use keras.regularizers.L2 for decay towards zero")
        self.anchor = _decode_anchor(anchor)

    def __call__(self, x):
        if tuple(x.shape) != self.anchor.shape:
            raise ModelError(f"L2SP anchor has shape {self.anchor.shape} but the weight has shape {tuple(x.shape)}")
        # A fresh constant per call: a cached tensor would leak out of the tf.function that made it.
        anchor = ops.convert_to_tensor(self.anchor, dtype=x.dtype)
        return ops.multiply(ops.cast(self.alpha, x.dtype), ops.sum(ops.square(x - anchor)))

    def get_config(self) -> dict:
        array = np.ascontiguousarray(self.anchor)
        return {
            "alpha": self.alpha,
            "anchor": {
                "dtype": array.dtype.str,
                "shape": list(array.shape),
                "base64": base64.b64encode(array.tobytes()).decode("ascii"),
            },
        }


def _kernels(layer):
    seen = set()
    for attribute, argument in KERNEL_ATTRIBUTES:
        if attribute in seen or not hasattr(layer, argument):
            continue
        try:
            variable = getattr(layer, attribute, None)
        except (AttributeError, ValueError):  # e.g. a kernel property of a layer that is not built
            continue
        if isinstance(variable, keras.Variable):
            seen.add(attribute)
            yield attribute, argument, variable


def _leaf_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, keras.Model):
            yield layer


def attach_l2sp(model: keras.Model, *, alpha: float = 0.01, beta: float = 0.0, backbone=None) -> list[str]:
    """Anchor every backbone kernel at its current value with `L2SP`; optionally L2 on the head.

    Args:
        model: a tfxfer transfer model (`tfxfer.models.build_model`) or any Keras model.
        alpha: L2-SP strength for the backbone kernels, >= 0.
        beta: plain L2 strength for kernels outside the backbone (the new head); 0 leaves them alone.
        backbone: the sub-model to anchor; defaults to `tfxfer.backbones.get_backbone(model)`, or the
            whole model if it has no nested backbone.

    Returns:
        The paths of the anchored variables (``layer_name/attribute``), backbone first.

    Raises:
        ModelError: ``model`` is not built, or the backbone holds no kernels.

    Example:
        >>> from tfxfer.models import build_model
        >>> from tfxfer.optim import attach_l2sp
        >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
        >>> attach_l2sp(model, alpha=0.01)[0]
        'Conv1/kernel'
    """
    alpha = check_float("alpha", alpha, low=0)
    beta = check_float("beta", beta, low=0)
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model")
    if not model.built:
        raise ModelError(f"Model {model.name!r} is not built; build it (call it once) before attaching L2-SP")
    if backbone is None:
        try:
            backbone = get_backbone(model)
        except ModelError:
            backbone = model
    backbone_layers = list(_leaf_layers(backbone)) if backbone is not model else list(_leaf_layers(model))
    attached = []
    for layer in backbone_layers:
        for attribute, argument, variable in _kernels(layer):
            regularizer = L2SP(alpha=alpha, anchor=variable.numpy())
            setattr(layer, argument, regularizer)  # what get_config / .keras will record
            variable.regularizer = regularizer  # what Layer.losses computes during training
            attached.append(f"{layer.name}/{attribute}")
    if not attached:
        raise ModelError(f"Backbone {backbone.name!r} holds no kernels to anchor")
    if beta > 0 and backbone is not model:
        in_backbone = {id(layer) for layer in backbone_layers}
        for layer in _leaf_layers(model):
            if id(layer) in in_backbone:
                continue
            for attribute, argument, variable in _kernels(layer):
                regularizer = keras.regularizers.L2(beta)
                setattr(layer, argument, regularizer)
                variable.regularizer = regularizer
                attached.append(f"{layer.name}/{attribute}")
    return attached


def detach_l2sp(model: keras.Model) -> list[str]:
    """Remove every `L2SP` regularizer from ``model`` (after fine-tuning), leaving the weights as they are.

    The model then saves without the anchors in its config and adds no L2-SP penalty if trained
    again. Other regularizers are left alone.

    Returns:
        The paths of the variables that were anchored (``layer_name/attribute``).

    Example:
        >>> import keras
        >>> from tfxfer.optim import attach_l2sp, detach_l2sp
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
        >>> _ = attach_l2sp(model, alpha=0.1)
        >>> detach_l2sp(model), model.get_layer("d").kernel_regularizer
        (['d/kernel'], None)
    """
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model")
    detached = []
    for layer in _leaf_layers(model):
        for attribute, argument, variable in _kernels(layer):
            if isinstance(variable.regularizer, L2SP) or isinstance(getattr(layer, argument, None), L2SP):
                setattr(layer, argument, None)
                variable.regularizer = None
                detached.append(f"{layer.name}/{attribute}")
    return detached


def l2sp_drift(model: keras.Model) -> dict[str, float]:
    """Relative distance ``||w - anchor|| / ||anchor||`` of every `L2SP`-anchored variable.

    Example:
        >>> import keras, numpy as np
        >>> from tfxfer.optim import attach_l2sp, l2sp_drift
        >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
        >>> _ = attach_l2sp(model, alpha=0.1)
        >>> _ = model.get_layer("d").kernel.assign(np.zeros((3, 2)))
        >>> l2sp_drift(model)
        {'d/kernel': 1.0}
    """
    drift = {}
    for layer in _leaf_layers(model):
        for attribute, _, variable in _kernels(layer):
            regularizer = variable.regularizer
            if isinstance(regularizer, L2SP):
                anchor = regularizer.anchor
                scale = float(np.linalg.norm(anchor)) or 1.0
                drift[f"{layer.name}/{attribute}"] = float(np.linalg.norm(variable.numpy() - anchor) / scale)
    return drift
