"""The head step: train a model's head on cached backbone features (images and text alike).

* `extract_features` runs the frozen backbone (image CNN or text encoder) once and returns what
  its pooling layer outputs: the cache.
* `train_head_on_features` trains the model's own head layers (everything after the layer named
  "pool") on those features. The layers are shared, so the full model is updated in place —
  dozens of times faster than recomputing the backbone every epoch.
* `head_step` is both for `fine_tune`: freeze the backbone, extract (or, with ``cached=False``, fit
  the whole frozen model, e.g. to re-sample augmentation every epoch), train, and resume from a
  checkpoint folder after a crash.

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
import os
import weakref

import keras
import numpy as np
import tensorflow as tf

from tfxfer.errors import DataError, ModelError
from tfxfer.optim.prebuild import build_optimizer
from tfxfer.train.best import ResumableEarlyStopping, RestoreBest, stopped_early
from tfxfer.train.data import as_dataset
from tfxfer.train.divergence import DivergenceGuard
from tfxfer.train.losses import compile_args
from tfxfer.train.result import FineTuneResult
from tfxfer.utils.validate import check_int


def _scope(strategy):
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def _fit_scope(model, strategy):
    from tfxfer.reliability.distribute import fit_scope

    return fit_scope(model, strategy) if strategy is not None else contextlib.nullcontext()


def split_at_pool(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """``(features, head)``: the model up to its "pool" layer, and a model from pooled features
    through the layers after it. Both share ``model``'s layers (training ``head`` trains ``model``).

    Works for every tfxfer model: image transfer models, text classifiers (raw strings in), token
    classifiers and their token-id twins (`tfxfer.text.token_model`).
    """
    tensor, chain = model.outputs[0], []
    while True:
        layer, node_index, _ = tensor._keras_history
        if layer.name == "pool":
            break
        node = layer._inbound_nodes[node_index]
        if isinstance(layer, keras.layers.InputLayer) or len(node.input_tensors) != 1:
            raise ModelError(f"Model {model.name!r} has no 'pool' layer followed by a chain of head layers; "
                             "build it with tfxfer.build_model or tfxfer.text")
        chain.append(layer)
        tensor = node.input_tensors[0]
    features = keras.Model(model.input, tensor, name=f"{model.name}_features")
    inputs = keras.Input(shape=tuple(tensor.shape[1:]), name="features")
    x = inputs
    for layer in reversed(chain):
        x = layer(x)
    return features, keras.Model(inputs, x, name=f"{model.name}_head")


#: model -> its feature function (`_feature_function`); an entry goes when its model is collected.
_FEATURE_FUNCTIONS = weakref.WeakKeyDictionary()


def _feature_function(model):
    """``model``'s pooled features in inference mode (a `Forward`, traced once for any batch size), made
    once per model and kept while the model lives (it holds the layers, not the model): the training,
    validation and test features of a model cost one trace instead of two per call (a full batch, then
    the last, smaller one). Weights are read when it runs, so training in between is seen."""
    from tfxfer.train.forward import Forward

    function = _FEATURE_FUNCTIONS.get(model)
    if function is None:
        function = _FEATURE_FUNCTIONS[model] = Forward(split_at_pool(model)[0])
    return function


def _extract(model, data, *, batch_size: int = 32, verbose: int = 0, shuffle=None):
    """``(features, labels or None, sample_weight or None)`` of every example of ``data``, read in
    one fixed order when ``data`` is shuffled by an `EpochShuffle` (``shuffle``, or the one a
    tfxfer pipeline carries): a resumed run extracts the same rows in the same order."""
    from tfxfer.reliability.shuffle import attached_shuffle

    forward = _feature_function(model)
    feats, labels, weights = [], [], []
    progress = keras.utils.Progbar(None, unit_name="batch") if verbose else None
    shuffle = shuffle or attached_shuffle(data)
    with shuffle.fixed() if shuffle is not None else contextlib.nullcontext():
        for i, batch in enumerate(as_dataset(data, batch_size=batch_size)):
            x = batch[0] if isinstance(batch, tuple) else batch
            if isinstance(batch, tuple):
                labels.append(np.asarray(batch[1]))
                if len(batch) > 2:
                    weights.append(np.asarray(batch[2]))
            feats.append(forward(x).numpy())
            if progress:
                progress.update(i + 1)
    if not feats:
        raise DataError("`data` yielded no batches")
    return (np.concatenate(feats), np.concatenate(labels) if labels else None,
            np.concatenate(weights) if weights else None)


def extract_features(model: keras.Model, data, *, batch_size: int = 32, verbose: int = 0):
    """Pooled backbone / encoder features for every example of ``data`` (inference mode).

    Args:
        model: an image transfer model or a tfxfer text model.
        data: images, texts or token tensors: ``(x, y)`` arrays, ``x`` alone or a batched dataset.

    Returns:
        ``(features, labels)`` numpy arrays; ``labels`` is None when ``data`` has no labels.
    """
    feats, labels, _ = _extract(model, data, batch_size=batch_size, verbose=verbose)
    return feats, labels


def train_head_on_features(
    model: keras.Model, features, labels, *, val=None, epochs: int = 5, learning_rate: float = 1e-3,
    batch_size: int = 64, loss=None, metrics=None, class_weight=None, sample_weight=None, callbacks=(),
    verbose: int = 1, strategy=None, initial_epoch: int = 0, seed: int = 0, label_smoothing: float = 0.0,
):
    """Train ``model``'s head (the layers after "pool") on cached pooled ``features`` with Adam.

    The head layers are shared with ``model``, so the full model is updated in place.
    ``val`` is ``(val_features, val_labels[, val_weights])``; ``sample_weight`` weighs examples
    (or tokens). Features are shuffled in an epoch-keyed order (`tfxfer.reliability.EpochShuffle`
    with ``seed``), so a resumed run (``initial_epoch``) sees the same batches. Under ``strategy``
    the head model and its optimizer are created in its scope. Loss and metrics default to
    `tfxfer.train.losses.compile_args` (``label_smoothing`` smooths the default loss). Returns the
    Keras ``History``.
    """
    from tfxfer.reliability.distribute import shard_dataset
    from tfxfer.reliability.shuffle import EpochShuffle

    check_int("epochs", epochs, low=1)
    features, labels = np.asarray(features), np.asarray(labels)
    if len(features) != len(labels):
        raise DataError(f"`features` has {len(features)} rows but `labels` has {len(labels)}")
    if len(features) == 0:
        raise DataError("`features` is empty")
    weighted = sample_weight is not None
    with _scope(strategy):
        head = split_at_pool(model)[1]
        head.compile(optimizer=keras.optimizers.Adam(learning_rate),
                     **compile_args(model, labels, loss=loss, metrics=metrics, weighted=weighted,
                                    label_smoothing=label_smoothing))
    shuffle = EpochShuffle(seed)
    parts = (features, labels, np.asarray(sample_weight)) if weighted else (features, labels)
    ds = shuffle.apply(tf.data.Dataset.from_tensor_slices(parts), buffer_size=len(features))
    ds = ds.batch(batch_size)
    if strategy is None:  # (under a strategy Keras builds before fit itself)
        build_optimizer(head, batch=ds.element_spec)  # the first step is traced once, not twice
    ds = shard_dataset(ds.prefetch(tf.data.AUTOTUNE))
    if val is not None:
        val = shard_dataset(tf.data.Dataset.from_tensor_slices(tuple(np.asarray(v) for v in val)).batch(batch_size))
    with _fit_scope(head, strategy):
        return head.fit(ds, validation_data=val, epochs=int(epochs), initial_epoch=int(initial_epoch),
                        shuffle=False, class_weight=class_weight, callbacks=[shuffle, *callbacks], verbose=verbose)


def head_step(model: keras.Model, train_ds, *, val_ds=None, epochs: int, learning_rate: float, batch_size: int,
              cached: bool = True, loss=None, metrics=None, class_weight=None, bn_policy: str = "frozen",
              callbacks=(), verbose: int = 1, strategy=None, seed: int = 0, epoch_shuffle=None,
              checkpoint_dir=None, stop_on_divergence: bool = True, monitor: str = "val_loss",
              restore_best: bool = True, patience: int | None = None,
              label_smoothing: float = 0.0) -> FineTuneResult:
    """Freeze the backbone and train the head for ``epochs``; returns a `FineTuneResult` of the step.

    Args:
        train_ds, val_ds: batched datasets (see `tfxfer.train.data.training_datasets`).
        cached: extract features once and train on them (`train_head_on_features`); False fits the
            whole model with its backbone frozen (re-runs augmentation and the backbone every epoch).
        checkpoint_dir: save every epoch here and continue from the newest checkpoint (a finished
            head step just reloads its weights).
        epoch_shuffle: the `tfxfer.reliability.EpochShuffle` that orders ``train_ds`` (run as a callback
            with cached=False; features are extracted in its epoch-0 order).
        callbacks: extra Keras callbacks (TensorBoard, a learning-rate log, ...).
        stop_on_divergence: stop at the first NaN/Inf or exploding loss, put back the last good weights
            and raise `tfxfer.errors.TrainingDivergedError` (`tfxfer.train.divergence.DivergenceGuard`),
            on cached features and end to end alike.
        monitor, restore_best: with validation data, put back the epoch with the best ``monitor``
            at the end (``result.steps[0]["best_epoch"]``).
        patience: with validation data, stop after this many epochs without a better ``monitor``
            (None: run every epoch).
        label_smoothing: smooth the default classification loss (`tfxfer.train.losses`; 0 = off).

    Example:
        >>> import numpy as np
        >>> from tfxfer.models import build_model
        >>> from tfxfer.train.data import as_dataset
        >>> x = np.random.rand(8, 32, 32, 3).astype("float32") * 255; y = np.arange(8) % 2
        >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
        >>> result = head_step(model, as_dataset((x, y), batch_size=4), epochs=1, learning_rate=1e-3,
        ...                    batch_size=4, verbose=0)
        >>> len(result.history["loss"]), result.stages[0]["trainable_groups"]
        (1, ['head'])
    """
    from tfxfer.freezing import freeze_backbone
    from tfxfer.reliability.checkpoint import ResumableCheckpoint
    from tfxfer.reliability.stateful import match_states, split_stateful

    summary = freeze_backbone(model, bn_policy=bn_policy)
    keeper = None
    if val_ds is not None:  # before the checkpoint: the epoch's best is in the state it saves
        best_dir = None if checkpoint_dir is None else os.path.join(os.fspath(checkpoint_dir), "best")
        keeper = RestoreBest(monitor, restore=restore_best, directory=best_dir)
    carried, callbacks = split_stateful(callbacks)  # the caller's Stateful callbacks (a learning-rate log)
    # early stopping's counters travel with the checkpoint: a resume stops where an uninterrupted run would
    stopper = [ResumableEarlyStopping(monitor, patience=patience)] if keeper is not None and patience is not None else []
    owners = [*([keeper] if keeper is not None else []), *stopper, *carried]
    ckpt = ResumableCheckpoint(os.fspath(checkpoint_dir), stateful=owners) if checkpoint_dir is not None else None
    state = ckpt.state if ckpt is not None else None
    start = state.initial_epoch if state is not None else 0
    extra = [*owners, *([ckpt] if ckpt is not None else [])]
    result = FineTuneResult(history={k: list(v) for k, v in state.meta.get("history", {}).items()} if state else {},
                            stages=[{"epoch": 0, "trainable_groups": summary.trainable_groups,
                                     "learning_rate": learning_rate, "cached_features": cached}],
                            head_epochs=epochs, resumed_from=state.path if state is not None else None)
    if state is not None and (start >= epochs or stopped_early(state.meta.get("stateful", []))):
        # finished (or stopped early) before an interruption: reload its result (the best epoch's weights)
        trained = split_at_pool(model)[1] if cached else model
        ckpt.set_model(trained)
        ckpt.restore(state, weights_only=True)
        for item, entry in match_states(owners, state.meta.get("stateful", []))[0]:  # added since: afresh
            item.restore_state(entry["state"])
            if item is keeper:
                keeper.apply(trained)
        result.steps = [_step_record(result.history, keeper, monitor, start=0)]
        return result
    guard = _stopper(checkpoint_dir) if stop_on_divergence else []
    if cached:
        feats, labels, weights = _extract(model, train_ds, verbose=verbose, shuffle=epoch_shuffle)
        val = tuple(a for a in _extract(model, val_ds) if a is not None) if val_ds is not None else None
        h = train_head_on_features(model, feats, labels, val=val, epochs=epochs, learning_rate=learning_rate,
                                   batch_size=batch_size, loss=loss, metrics=metrics, class_weight=class_weight,
                                   sample_weight=weights, verbose=verbose, strategy=strategy, initial_epoch=start,
                                   seed=int(seed), label_smoothing=label_smoothing, callbacks=[*extra, *callbacks, *guard])
    else:
        labels = next(iter(train_ds))[1].numpy()
        with _scope(strategy):
            model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                          **compile_args(model, labels, loss=loss, metrics=metrics,
                                         weighted=len(train_ds.element_spec) > 2, label_smoothing=label_smoothing))
        if strategy is None:  # (under a strategy Keras builds before fit itself)
            build_optimizer(model, batch=train_ds.element_spec)  # the first step is traced once, not twice
        with _fit_scope(model, strategy):
            h = model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=start,
                          class_weight=class_weight, shuffle=False, verbose=verbose,
                          callbacks=[*extra, *([epoch_shuffle] if epoch_shuffle else []), *callbacks, *guard])
    result.merge(h.history, start=start)
    result.steps = [_step_record(result.history, keeper, monitor, start=0)]
    return result


def _step_record(history: dict, keeper, monitor: str, *, start: int) -> dict:
    """The head step's entry in ``result.steps``: its epochs, history and best epoch (counted from ``start``)."""
    return {"name": "head", "epochs": len(history.get("loss", [])), "history": dict(history),
            "monitor": monitor if keeper is not None else None,
            "best_epoch": None if keeper is None or keeper.best_epoch is None else keeper.best_epoch + start,
            "best": None if keeper is None else keeper.best}


def _stopper(checkpoint_dir) -> list:
    """``[DivergenceGuard]`` (NaN/Inf or exploding loss: stop, put back the last good weights, raise) naming
    the last good checkpoint of ``checkpoint_dir``; it goes last in a step's callback list."""
    return [DivergenceGuard(checkpoint_dir=checkpoint_dir)]
