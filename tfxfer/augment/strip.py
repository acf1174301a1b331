"""Find augmentation layers inside a model and remove them before export.

Augmentation layers inside a model break exports: TFLite needs Flex ops for their stateless random
ops, ``model.export()`` keeps them *active* in the SavedModel (served predictions become random),
and keras-cv layers ignore ``training=False`` altogether. `strip_augmentation` returns the same
model without them (the other layers, and so the weights, are shared, not copied) and logs which
layers it removed. Every augmentation layer is the identity at inference in Keras 3 (measured for
``RandomCrop`` too: it passes the full image through), so removing them keeps the predictions.

Example:
    >>> import keras
    >>> from tfxfer.augment import find_augmentation_layers, strip_augmentation
    >>> inputs = keras.Input((32, 32, 3))
    >>> x = keras.layers.RandomFlip("horizontal")(inputs)
    >>> outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    >>> model = keras.Model(inputs, outputs)
    >>> [path for path in find_augmentation_layers(model)]  # doctest: +ELLIPSIS
    ['random_flip...']
    >>> clean = strip_augmentation(model, verbose=False)
    >>> find_augmentation_layers(clean)
    []
"""

from __future__ import annotations

import logging

import keras

from tfxfer.augment.apply import LABEL_MIXING
from tfxfer.errors import ArgumentTypeError, ModelError

logger = logging.getLogger("tfxfer.augment")

_KNOWN = frozenset({
    "RandAugment", "AugMix", "Solarization", "RandomErasing", "RandomCutout", "GridMask",
    "RandomChoice", "RandomAugmentationPipeline", "RandomApply",
}) | LABEL_MIXING


def is_augmentation_layer(layer) -> bool:
    """True for random image-augmentation layers (Keras 3 core, keras-cv)."""
    name = type(layer).__name__
    if isinstance(layer, keras.Model):
        return False
    if name in _KNOWN:
        return True
    module = type(layer).__module__
    return name.startswith("Random") and ("preprocessing" in module or module.startswith("keras_cv"))


def _sublayers(layer):
    if isinstance(layer, keras.Model):
        return list(layer.layers)
    if type(layer).__name__ == "Pipeline":
        return list(getattr(layer, "layers", []))
    return []


def find_augmentation_layers(model) -> list[str]:
    """Paths ("outer/inner/layer") of every augmentation layer in ``model``, nested models included."""
    found = []

    def walk(layer, prefix):
        for sub in _sublayers(layer):
            path = f"{prefix}{sub.name}"
            if is_augmentation_layer(sub):
                found.append(path)
            else:
                walk(sub, path + "/")

    walk(model, "")
    return found


def _strip(layer):
    if is_augmentation_layer(layer):
        return None  # every augmentation is the identity at inference
    if not _contains_augmentation(layer):
        return layer
    if isinstance(layer, keras.Sequential):
        kept = [s for s in (_strip(sub) for sub in layer.layers) if s is not None]
        if not kept:
            return None
        try:
            shape = tuple(layer.inputs[0].shape[1:])
        except (AttributeError, IndexError, TypeError, ValueError):
            shape = None  # never built: the new Sequential builds on first call
        seq = keras.Sequential(name=layer.name)
        if shape is not None:
            seq.add(keras.Input(shape=shape))
        for sub in kept:
            seq.add(sub)
        return seq
    if type(layer).__name__ == "Pipeline":
        kept = [s for s in (_strip(sub) for sub in layer.layers) if s is not None]
        return keras.layers.Pipeline(kept, name=layer.name) if kept else None
    if isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph"):
        return _strip_functional(layer)
    raise ModelError(
        f"Layer {layer.name!r} ({type(layer).__name__}) holds augmentation layers but is neither a "
        "Sequential nor a Functional model, so they cannot be removed automatically. Rebuild the "
        "model without them and apply augmentation in tf.data (tfxfer.augment.augment_dataset)."
    )


def _contains_augmentation(layer) -> bool:
    return any(is_augmentation_layer(s) or _contains_augmentation(s) for s in _sublayers(layer))


def _strip_functional(model):
    def clone_fn(layer):
        stripped = _strip(layer)
        return stripped if stripped is not None else layer

    def call_fn(layer, *args, **kwargs):
        if is_augmentation_layer(layer) or (_contains_augmentation(layer) and _strip(layer) is None):
            return args[0]  # identity at inference
        return layer(*args, **kwargs)

    return keras.models.clone_model(model, clone_function=clone_fn, call_function=call_fn)


def strip_augmentation(model, *, verbose: bool = True):
    """Return ``model`` without augmentation layers (weights shared), logging what was removed.

    Args:
        model: a Sequential or Functional Keras model (nested models are handled).
        verbose: log a warning naming the removed layers (logger "tfxfer.augment").

    Returns:
        ``model`` itself when it holds no augmentation layer, else a new model that shares all
        other layers (and their weights) with ``model``.

    Raises:
        ModelError: augmentation sits inside a subclassed model that cannot be rebuilt.
    """
    if not isinstance(model, keras.Model):
        raise ArgumentTypeError("model", model, "a keras.Model")
    found = find_augmentation_layers(model)
    if not found:
        return model
    stripped = _strip(model)
    if stripped is None:
        raise ModelError(f"Model {model.name!r} holds nothing but augmentation layers: {found}")
    if verbose:
        logger.warning(
            "tfxfer removed %d augmentation layer(s) before export: %s. Augmentation belongs in the "
            "tf.data training pipeline (tfxfer.augment.augment_dataset): inside an exported model it "
            "needs Flex ops in TFLite and stays active in a SavedModel.", len(found), ", ".join(found),
        )
    return stripped
