"""What the feature-alignment methods (`DeepCORAL`, `DANN`) share: the wrapper model, its data and
its divergence guard.

* `FeatureAlignment`: a ``keras.Model`` around a plain classifier (in the spirit of
  ``keras.distillation.Distiller``). Its ``train_step`` takes ``((x_source, x_target), y_source)``
  batches, adds a weighted alignment loss on the features at ``feature_layer`` to the compiled
  classification loss, and trains the wrapped model in place. ``call``, ``evaluate`` and ``predict``
  are the wrapped model's; ``.model`` is the clean inference model to save and export (nothing of
  the adaptation is in it).
* `adaptation_dataset`: labelled source and unlabelled target arrays -> those batches (the target
  is shuffled and repeated to the source's length; its labels, if any, are dropped).
* A non-finite loss, or a weight that becomes NaN or infinite (a loss can stay finite while a
  layer's weights are NaN), stops ``fit``, restores the weights (and optimizer state) of the last
  finite epoch (or the start) and raises `AdaptationDivergedError`.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt import adaptation_dataset
    >>> xs, ys = np.zeros((10, 4), "float32"), np.arange(10) % 2
    >>> ds = adaptation_dataset((xs, ys), np.ones((3, 4), "float32"), batch_size=4)
    >>> [tuple(t.shape) for t in next(iter(ds))[0]]
    [(4, 4), (4, 4)]
"""

from __future__ import annotations

import math
import weakref

import keras
import numpy as np
import tensorflow as tf

from tfxfer.adapt.domain_data import check_inputs, check_labels, split_data
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError, TrainingDivergedError
from tfxfer.optim.prebuild import build_optimizer
from tfxfer.utils.validate import check_float, check_int


class AdaptationDivergedError(TrainingDivergedError):
    """An adaptation method diverged (``reason``: "nan" for a non-finite loss or weight, "collapse"
    when pseudo-labels collapse to one class); the model holds the last good weights again."""

    def __init__(self, message: str, *, reason: str, method: str, epoch=None, batch=None, value=None):
        self.reason = reason
        self.method = method
        super().__init__(message, epoch=epoch, batch=batch, value=value)


# What `adaptation_dataset` checked, per dataset it returned: ``(source labels, one source input,
# one target input)``, so that `FeatureAlignment.fit` can check them against the wrapped model
# when ``adaptation_dataset`` was not given ``model=``.
_CHECKED = weakref.WeakKeyDictionary()


def adaptation_dataset(source, target, *, batch_size: int = 32, model: keras.Model | None = None,
                       seed: int = 0) -> tf.data.Dataset:
    """Batches ``((x_source, x_target), y_source)`` for `DeepCORAL` / `DANN` ``fit``.

    Args:
        source: ``(x, y)`` labelled source arrays; one epoch is one pass over them.
        target: target inputs ``x`` (or ``(x, y)``: the labels are dropped, never trained on),
            shuffled and repeated to match the source's batches.
        batch_size: examples per domain per batch (a batch holds 2 x batch_size examples).
        model: when given, source and target inputs are checked against its input shape and the
            source labels against its classes (otherwise `DeepCORAL` / `DANN` ``fit`` checks them
            against the model it trains).
        seed: shuffling seed.

    Raises:
        ArgumentError: target inputs of a different shape or channel count than the source (or model),
            or source labels that are not class ids (of the model).
        DataError: NaN or infinite inputs, fewer than 2 target examples (one example has no
            covariance or distribution to align to), or fewer source examples than ``batch_size``.
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    x_source, y_source = split_data(source, name="source")
    if y_source is None:
        raise ArgumentError("source", "inputs without labels", "must be an (x, y) tuple: the source is labelled")
    x_target, _ = split_data(target, name="target")
    if model is not None:
        check_inputs(model, x_source, name="source")
        check_inputs(model, x_target, name="target")
    check_labels(model, y_source, name="source")
    if len(x_target) < 2:
        raise DataError(f"`target` has {len(x_target)} example; aligning the source's feature distribution to "
                        "the target's needs at least 2 target examples (one example has no covariance)")
    if x_target.shape[1:] != x_source.shape[1:] or (x_target.dtype == object) != (x_source.dtype == object):
        raise ArgumentError("target", f"inputs of shape {x_target.shape[1:]} and dtype {x_target.dtype}",
                            f"must match the source inputs (shape {x_source.shape[1:]}, dtype {x_source.dtype})")
    if len(x_source) < batch_size:
        raise DataError(f"`source` has {len(x_source)} examples, fewer than batch_size={batch_size}")
    src = tf.data.Dataset.from_tensor_slices((x_source, y_source)).shuffle(len(x_source), seed=seed)
    tgt = tf.data.Dataset.from_tensor_slices(x_target).shuffle(len(x_target), seed=seed + 1).repeat()
    batches = tf.data.Dataset.zip(src.batch(batch_size, drop_remainder=True), tgt.batch(batch_size))
    dataset = batches.map(lambda s, t: ((s[0], t), s[1])).prefetch(tf.data.AUTOTUNE)
    _CHECKED[dataset] = (y_source, x_source[:1], x_target[:1])
    return dataset


class _DivergenceGuard(keras.callbacks.Callback):
    """Snapshot weights (and optimizer state) at every finite epoch end; on a non-finite loss or
    weight restore them and stop."""

    def __init__(self, method: str, keys):
        super().__init__()
        self.method = method
        self.keys = tuple(keys)
        self.error = None
        self._good = None
        self._good_optimizer = {}
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self._snapshot()
        floats = [v for v in self.model.weights if "float" in str(v.dtype)]
        # One compiled pass over the weights per batch: a few ms even for a MobileNetV2.
        self._all_finite = tf.function(
            lambda: tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats]) if floats else True)

    def _snapshot(self):
        self._good = [np.array(v) for v in self.model.get_weights()]
        optimizer = getattr(self.model, "optimizer", None)
        self._good_optimizer = {id(v): keras.ops.convert_to_numpy(v) for v in getattr(optimizer, "variables", [])}

    def _restore(self):
        self.model.set_weights(self._good)
        optimizer = getattr(self.model, "optimizer", None)
        for v in getattr(optimizer, "variables", []):
            good = self._good_optimizer.get(id(v))
            if good is None:  # a slot created after the snapshot (the optimizer builds on its first step)
                value = keras.ops.convert_to_numpy(v)
                good = np.where(np.isfinite(value), value, 0).astype(value.dtype) if value.dtype.kind in "fc" else None
            if good is not None:
                v.assign(good)

    def _stop(self, batch, what: str, value: float):
        self._restore()
        self.model.stop_training = True
        self.error = AdaptationDivergedError(
            f"{self.method}: {what} at epoch {self._epoch}, batch {batch}. Training stopped and the weights of the "
            "last finite epoch were restored. Lower the learning rate or the alignment weight.",
            reason="nan", method=self.method, epoch=self._epoch, batch=batch, value=value)

    def on_train_batch_end(self, batch, logs=None):
        if self.error is not None:
            return
        for key in self.keys:
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(np.asarray(value))):
                self._stop(batch, f"`{key}` became {float(np.asarray(value))}", float(np.asarray(value)))
                return
        if not bool(self._all_finite()):
            bad = next((v.path for v in self.model.weights if "float" in str(v.dtype)
                        and not np.all(np.isfinite(keras.ops.convert_to_numpy(v)))), "a weight")
            self._stop(batch, f"the weights became NaN or infinite (first: {bad!r}) while the loss stayed finite",
                       float("nan"))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.error is None:
            self._snapshot()

    def on_train_end(self, logs=None):
        if self.error is not None:
            raise self.error


class FeatureAlignment(keras.Model):
    """Base of `DeepCORAL` and `DANN`: classification loss on the source plus ``alignment_weight``
    times ``alignment_loss(source_features, target_features)``.

    Subclasses implement ``alignment_loss`` and ``alignment_name``.
    """

    alignment_name = "alignment_loss"

    def __init__(self, model: keras.Model, *, feature_layer: str | None = None, alignment_weight: float = 1.0,
                 name: str | None = None):
        super().__init__(name=name or f"{type(self).__name__.lower()}_{getattr(model, 'name', 'model')}")
        if not isinstance(model, keras.Model):
            raise ArgumentTypeError("model", model, "a functional keras.Model (e.g. from tfxfer.build_model)")
        self.model = model
        self.feature_layer = feature_layer or _default_feature_layer(model)
        self.alignment_weight = check_float("alignment_weight", alignment_weight, low=0.0)
        try:
            features = model.get_layer(self.feature_layer).output
        except ValueError:
            names = [layer.name for layer in model.layers]
            raise ArgumentError("feature_layer", self.feature_layer, f"must name a layer of {model.name!r}",
                                hint=f"Layers: {names[-8:]}") from None
        below = keras.Model(model.inputs, features)
        if not below.trainable_weights:
            raise ModelError(
                f"{type(self).__name__} aligns features by training the layers up to {self.feature_layer!r}, "
                f"but {model.name!r} has no trainable weight there (the backbone is frozen). Unfreeze its top "
                "(tfxfer.unfreeze(model, ...)) or build the model with hidden_units and use "
                "feature_layer='head_hidden'")
        self.feature_dim = int(np.prod([d for d in features.shape[1:]]))
        self.feature_extractor = keras.Model(model.inputs, [features, model.outputs[0]],
                                             name=f"{model.name}_features_and_output")
        self.class_loss_tracker = keras.metrics.Mean(name="class_loss")
        self.alignment_loss_tracker = keras.metrics.Mean(name=self.alignment_name)
        # The wrapped model is a built functional model and every part the subclasses add is built
        # at construction, so the wrapper is built too. Keras restores a compiled model's optimizer
        # variables only into a built model (``compile_from_config`` builds the optimizer over
        # ``trainable_variables`` then): without this flag a reloaded wrapper came back with an empty
        # optimizer ("Skipping variable loading for optimizer ... 2 variables whereas ... 18").
        self.built = True

    # ---- subclass hooks -------------------------------------------------------------------------
    def alignment_loss(self, source_features, target_features):
        raise NotImplementedError

    def alignment_metrics(self) -> dict:
        return {}

    # ---- keras.Model ----------------------------------------------------------------------------
    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    @property
    def metrics(self):
        return [*super().metrics, self.class_loss_tracker, self.alignment_loss_tracker]

    def train_step(self, data):
        if len(data) == 3:
            (x_source, x_target), y_source, sample_weight = data
        else:
            (x_source, x_target), y_source = data
            sample_weight = None
        with tf.GradientTape() as tape:
            source_features, predictions = self.feature_extractor(x_source, training=True)
            target_features, _ = self.feature_extractor(x_target, training=True)
            class_loss = self.compute_loss(x=x_source, y=y_source, y_pred=predictions, sample_weight=sample_weight)
            alignment = keras.ops.cast(self.alignment_loss(source_features, target_features), class_loss.dtype)
            loss = class_loss + self.alignment_weight * alignment
        variables = self.trainable_variables
        gradients = tape.gradient(loss, variables)
        self.optimizer.apply(gradients, variables)
        for metric in super().metrics:  # Keras's own "loss" tracker, which fit reports
            if metric.name == "loss":
                metric.update_state(loss)
        self.class_loss_tracker.update_state(class_loss)
        self.alignment_loss_tracker.update_state(alignment)
        logs = self.compute_metrics(x_source, y_source, predictions, sample_weight=sample_weight)
        logs["loss"] = loss
        logs.update({m.name: m.result() for m in (self.class_loss_tracker, self.alignment_loss_tracker)})
        logs.update(self.alignment_metrics())
        return logs

    def test_step(self, data):
        logs = super().test_step(data)  # plain (x, y): the wrapped model's loss and metrics only
        return {k: v for k, v in logs.items() if k not in self._alignment_log_names()}

    def _alignment_log_names(self):
        return {"class_loss", self.alignment_name}

    def fit(self, x=None, y=None, *, callbacks=None, shuffle=False, **fit_args):
        """``keras.Model.fit`` plus a divergence guard; ``shuffle`` defaults to False because
        `adaptation_dataset` already shuffles."""
        self._check_fit_data(x, y)
        guard = _DivergenceGuard(type(self).__name__, ("loss", self.alignment_name))
        build_optimizer(self)  # the first step is then traced once, not twice
        return super().fit(x, y, callbacks=[*(callbacks or []), guard], shuffle=shuffle, **fit_args)

    def _check_fit_data(self, x, y) -> None:
        """Check what `adaptation_dataset` produced (or array ``y``) against the wrapped model."""
        _check_fit_structure(x, y)
        try:
            checked = _CHECKED.get(x)
        except TypeError:  # an unhashable x (a list or tuple of arrays)
            checked = None
        if checked is not None:
            y_source, x_source, x_target = checked
            check_inputs(self.model, x_source, name="source")
            check_inputs(self.model, x_target, name="target")
            check_labels(self.model, y_source, name="source")
        elif y is not None and not isinstance(y, tf.data.Dataset):
            check_labels(self.model, np.asarray(y), name="y")

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "feature_layer": self.feature_layer,
            "alignment_weight": self.alignment_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        config.pop("trainable", None)
        return cls(**config)


def _default_feature_layer(model: keras.Model) -> str:
    names = [layer.name for layer in model.layers]
    for name in ("head_hidden", "pool"):
        if name in names:
            return name
    raise ArgumentError("feature_layer", None, f"must be given: {model.name!r} has no 'head_hidden' or 'pool' layer")


def _check_fit_structure(x, y) -> None:
    """``fit`` trains on ``((x_source, x_target), y_source[, weight])``: anything else (plain arrays,
    a dataset of ``(x, y)``) is a typed error here instead of a graph error inside ``train_step``."""
    expected = ("a dataset from tfxfer.adapt.adaptation_dataset(model, source, target), or an "
                "(x_source, x_target) pair of arrays with y= the source labels")
    if isinstance(x, tf.data.Dataset):
        spec = x.element_spec
        if not (isinstance(spec, tuple) and len(spec) in (2, 3) and isinstance(spec[0], tuple) and len(spec[0]) == 2):
            raise ArgumentError("x", f"a tf.data.Dataset of {spec}", f"must be {expected}")
    elif not (isinstance(x, (tuple, list)) and len(x) == 2) or y is None:
        raise ArgumentTypeError("x", x, expected)
