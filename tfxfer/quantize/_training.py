"""Short fine-tuning runs of tf_keras models (QAT, pruning, clustering) and calibration batches."""

from __future__ import annotations

import numpy as np

from tfxfer.errors import ArgumentError
from tfxfer.quantize._deps import tf_keras
from tfxfer.train.data import as_dataset, first_labels
from tfxfer.train.losses import default_loss, default_metrics


def check_positive_int(name: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ArgumentError(name, value, f"must be an int >= {low}")
    return value


def check_learning_rate(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ArgumentError("learning_rate", value, "must be a number > 0")
    return float(value)


def check_layer_types(layer_types, *, kind: str, known) -> None:
    """Each of ``layer_types`` must be one of the ``known`` tf_keras class names."""
    from tfxfer.errors import UnknownNameError

    for t in layer_types:
        if t not in known:
            raise UnknownNameError(kind, t, known)


def select_layers(bridged, layer_types, skip) -> set[str]:
    """Names of ``bridged.model``'s layers of exactly one of ``layer_types`` (tf_keras class names)
    and not in ``skip`` (each must name a layer)."""
    from tfxfer.errors import UnknownNameError

    tfk = tf_keras()
    classes = tuple(getattr(tfk.layers, t) for t in layer_types)
    names = [layer.name for layer in bridged.model.layers]
    for name in skip:
        if name not in names:
            raise UnknownNameError("layer", name, names)
    # Exact types only: DepthwiseConv2D subclasses Conv2D in tf_keras and must not match.
    chosen = {layer.name for layer in bridged.model.layers if type(layer) in classes and layer.name not in skip}
    if not chosen:
        raise ArgumentError("layer_types", list(layer_types), "matched no layer of the model")
    return chosen


def clone_wrapped(bridged, chosen, wrap_layer, *, train_bn: bool):
    """``bridged.model`` cloned with ``wrap_layer(layer)`` (made trainable) for the ``chosen`` layers;
    ``train_bn`` lets BatchNormalization layers train (they keep the source flags otherwise)."""
    tfk = tf_keras()
    if train_bn:
        for layer in bridged.model.layers:
            if isinstance(layer, tfk.layers.BatchNormalization):
                layer.trainable = True

    def wrap(layer):
        if layer.name in chosen:
            layer.trainable = True
            return wrap_layer(layer)
        return layer

    return tfk.models.clone_model(bridged.model, clone_function=wrap)


def fit_dataset(train, *, batch_size: int, shuffle: bool = True, seed: int = 0, name: str = "train"):
    """``(x, y)`` arrays or a batched ``tf.data.Dataset`` -> a batched dataset tf_keras can fit on
    (the train data adaptor, `tfxfer.train.data.as_dataset`)."""
    return as_dataset(train, batch_size=batch_size, shuffle=shuffle, seed=seed, name=name)


def steps_per_epoch(train, *, batch_size: int) -> int:
    """Batches per epoch: from the array length, else the dataset's cardinality, else by counting."""
    import math

    import tensorflow as tf

    if isinstance(train, tuple) and len(train) == 2 and not isinstance(train[0], tf.data.Dataset):
        return max(1, math.ceil(len(train[0]) / batch_size))
    dataset = fit_dataset(train, batch_size=batch_size, shuffle=False)
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality > 0 else sum(1 for _ in dataset)


def loss_and_metrics(source_model, dataset) -> tuple[str, list]:
    """The loss and metrics `fine_tune` would pick for the source model's head and these labels
    (`tfxfer.train.losses`, the one loss picker)."""
    loss = default_loss(source_model, first_labels(dataset))
    return loss, default_metrics(source_model, loss)


#: What a short fine-tuning run fits: the data's labels, or the float source model's own outputs.
TARGETS = ("labels", "float_model")


def float_model_targets(dataset, source_model):
    """``dataset`` (batches of ``(x, y)``) with ``y`` replaced by the float source model's outputs on
    ``x`` (``training=False``), computed batch by batch as the data flows (augmented data included)."""
    import tensorflow as tf

    forward = tf.function(lambda x: source_model(x, training=False))

    def relabel(x, *_):
        return x, tf.cast(forward(x), tf.float32)

    return dataset.map(relabel, num_parallel_calls=1)


def fit(tfk_model, source_model, train, *, val=None, epochs: int, learning_rate: float, batch_size: int,
        callbacks=(), verbose: int = 0, seed: int = 0, targets: str = "labels") -> dict:
    """Compile with Adam and the default loss, fit, return the history dict.

    ``targets="float_model"`` fits the float source model's outputs instead of the labels
    (self-distillation: soft probabilities under categorical / binary cross-entropy, values under
    MSE); the accuracy metric then reads as top-1 agreement with the float model.
    """
    tfk = tf_keras()
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    if targets not in TARGETS:
        raise ArgumentError("targets", targets, f"must be one of {list(TARGETS)}")
    learning_rate = check_learning_rate(learning_rate)
    train_ds = fit_dataset(train, batch_size=batch_size, seed=seed)
    val_ds = fit_dataset(val, batch_size=batch_size, shuffle=False, name="val") if val is not None else None
    if targets == "float_model":
        train_ds = float_model_targets(train_ds, source_model)
        val_ds = float_model_targets(val_ds, source_model) if val_ds is not None else None
    loss, metrics = loss_and_metrics(source_model, train_ds)
    tfk_model.compile(optimizer=tfk.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    history = tfk_model.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=list(callbacks),
                            verbose=verbose)
    return {k: [float(v) for v in values] for k, values in history.history.items()}


def images_of(data, *, name: str, limit: int | None = None) -> np.ndarray:
    """Float32 images from an array, ``(images, labels)`` or a dataset (at most ``limit``)."""
    from tfxfer.export.data import as_arrays

    x, _ = as_arrays(data, name=name, limit=limit)
    return x
