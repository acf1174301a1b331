"""The cached-feature fast path and the data / loss helpers `fine_tune` shares with it.

* `as_dataset`: ``(x, y)`` arrays, ``x`` alone or a batched ``tf.data.Dataset`` -> a batched dataset.
* `extract_features` runs the frozen backbone once and returns pooled features (the cache).
* `train_head_on_features` trains the model's own head layers on those features (shared weights,
  so the full model is updated in place) — dozens of times faster than recomputing the backbone.
* `default_loss` picks the loss that fits the head activation and the label format.

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.train.head import extract_features, train_head_on_features
    >>> x = np.random.rand(16, 32, 32, 3).astype("float32") * 255; y = np.arange(16) % 2
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> feats, labels = extract_features(model, (x, y), batch_size=8)
    >>> feats.shape
    (16, 1280)
    >>> history = train_head_on_features(model, feats, labels, epochs=1, verbose=0)
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.models import feature_model, head_model


def as_dataset(data, *, batch_size: int = 32, shuffle: bool = False, seed: int = 0, name: str = "data",
               epoch_shuffle=None):
    """``(x, y)`` arrays, ``x`` alone, or a batched ``tf.data.Dataset`` -> a batched dataset.

    With ``epoch_shuffle`` (a `tfxfer.reliability.EpochShuffle`), arrays are shuffled in an order
    that depends only on its seed and the epoch (resumable, identical on every worker).
    """
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, tuple) and len(data) == 2:
        x, y = data
        x = np.asarray(x)
        y = np.asarray(y)
        if len(x) != len(y):
            raise DataError(f"`{name}` has {len(x)} inputs but {len(y)} labels")
        if len(x) == 0:
            raise DataError(f"`{name}` is empty")
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle and epoch_shuffle is not None:
            ds = epoch_shuffle.apply(ds, buffer_size=len(x))
        elif shuffle:
            ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if isinstance(data, np.ndarray):
        if len(data) == 0:
            raise DataError(f"`{name}` is empty")
        return tf.data.Dataset.from_tensor_slices(data).batch(batch_size)
    raise ArgumentTypeError(name, data, "a tf.data.Dataset of (x, y) batches or an (x, y) tuple of arrays")


def extract_features(model: keras.Model, data, *, batch_size: int = 32, verbose: int = 0):
    """Pooled backbone features for every example of ``data`` (inference mode).

    Returns:
        ``(features, labels)`` numpy arrays; ``labels`` is None when ``data`` has no labels.
    """
    fm = feature_model(model)
    forward = tf.function(lambda x: fm(x, training=False), reduce_retracing=True)
    ds = as_dataset(data, batch_size=batch_size)
    feats, labels = [], []
    progress = keras.utils.Progbar(None, unit_name="batch") if verbose else None
    for i, batch in enumerate(ds):
        if isinstance(batch, (tuple, list)):
            x, y = batch[0], batch[1]
            labels.append(np.asarray(y))
        else:
            x = batch
        feats.append(forward(x).numpy())
        if progress:
            progress.update(i + 1)
    if not feats:
        raise DataError("`data` yielded no batches")
    return np.concatenate(feats), (np.concatenate(labels) if labels else None)


def default_loss(model: keras.Model, labels) -> str:
    """The loss that fits the model's head activation and the label format."""
    activation = getattr(model.get_layer("head"), "activation", None)
    name = getattr(activation, "__name__", str(activation))
    labels = np.asarray(labels)
    if name == "softmax":
        return "categorical_crossentropy" if labels.ndim >= 2 and labels.shape[-1] > 1 else "sparse_categorical_crossentropy"
    if name == "sigmoid":
        return "binary_crossentropy"
    return "mse"


def _default_metrics(loss: str):
    return [] if loss == "mse" else ["accuracy"]


def _scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _fit_scope(model, strategy):
    from tfxfer.reliability.distribute import fit_scope

    return fit_scope(model, strategy) if strategy is not None else contextlib.nullcontext()


def train_head_on_features(
    model: keras.Model, features, labels, *, val=None, epochs: int = 5, learning_rate: float = 1e-3,
    batch_size: int = 64, loss=None, metrics=None, class_weight=None, callbacks=(), verbose: int = 1,
    strategy=None, initial_epoch: int = 0, seed: int = 0,
):
    """Train ``model``'s head (dropout / hidden / dense) on cached pooled ``features``.

    The head layers are shared with ``model``, so the full model is updated in place.
    ``val`` is ``(val_features, val_labels)``. Features are shuffled in an epoch-keyed order
    (`tfxfer.reliability.EpochShuffle` with ``seed``), so a resumed run (``initial_epoch``) sees the
    same batches. Under ``strategy`` the head model and its optimizer are created in its scope.
    Returns the Keras ``History``.
    """
    from tfxfer.reliability.distribute import shard_dataset
    from tfxfer.reliability.shuffle import EpochShuffle

    if int(epochs) < 1:
        raise ArgumentError("epochs", epochs, "must be >= 1")
    features = np.asarray(features)
    labels = np.asarray(labels)
    if len(features) != len(labels):
        raise DataError(f"`features` has {len(features)} rows but `labels` has {len(labels)}")
    if len(features) == 0:
        raise DataError("`features` is empty")
    loss = loss or default_loss(model, labels)
    with _scope(strategy):
        head = head_model(model)
        head.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss,
                     metrics=metrics if metrics is not None else _default_metrics(loss))
    shuffle = EpochShuffle(seed)
    ds = shuffle.apply(tf.data.Dataset.from_tensor_slices((features, labels)), buffer_size=len(features))
    ds = shard_dataset(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))
    if val is not None:
        val = shard_dataset(tf.data.Dataset.from_tensor_slices(tuple(np.asarray(v) for v in val)).batch(batch_size))
    with _fit_scope(head, strategy):
        return head.fit(ds, validation_data=val, epochs=int(epochs), initial_epoch=int(initial_epoch),
                        shuffle=False, class_weight=class_weight, callbacks=[*callbacks, shuffle], verbose=verbose)
