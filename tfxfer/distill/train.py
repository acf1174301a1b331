"""`distill`: train a student on a teacher's softened predictions (and the labels), Keras owning the loop.

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.distill import distill
    >>> def mlp(width, name):
    ...     return keras.Sequential([keras.Input((8,)), keras.layers.Dense(width, activation="relu"),
    ...                              keras.layers.Dense(3, activation="softmax", name="head")], name=name)
    >>> x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32"); y = np.arange(64) % 3
    >>> result = distill(mlp(32, "teacher"), mlp(4, "student"), (x, y), temperature=4.0, alpha=0.5,
    ...                  epochs=1, unlabeled=x[:16])
    >>> sorted(k for k in result.history if k.endswith("loss"))
    ['distillation_loss', 'loss', 'student_loss', 'total_loss']
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from tfxfer.distill.distiller import UNLABELED, TransferDistiller
from tfxfer.distill.logits import logits_model
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError
from tfxfer.optim.prebuild import build_optimizer
from tfxfer.utils.validate import check_float, check_int


@dataclasses.dataclass
class DistillResult:
    """The trained ``student`` (the original softmax model, weights updated in place), the
    ``distiller`` (holds the teacher: never export it), the Keras ``history`` and the ``settings``."""

    student: keras.Model
    distiller: TransferDistiller
    history: dict
    settings: dict


def _sparse(y, name, *, num_classes: int):
    """Class ids (int32) from class ids or one-hot rows, each in ``[0, num_classes)``."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        if y.shape[1] != num_classes:
            raise DataError(f"`{name}` labels are one-hot rows of {y.shape[1]} classes but the teacher and "
                            f"student have {num_classes} outputs")
        y = y.argmax(axis=1)
    y = y.reshape(-1)
    if y.size and not np.issubdtype(y.dtype, np.number):
        raise DataError(f"`{name}` labels must be integer class ids (or one-hot rows); got dtype {y.dtype}")
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"`{name}` labels must be integer class ids (or one-hot rows)")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"`{name}` labels must be class ids in [0, {num_classes}) (the teacher and student have "
                        f"{num_classes} outputs); got values in [{y.min():g}, {y.max():g}]")
    return y.astype("int32")


def _input_shapes(model: keras.Model) -> list[tuple]:
    return [tuple(t.shape[1:]) for t in model.inputs]


def _check_models(teacher, student) -> int:
    """Teacher and student must take the same inputs and predict the same classes; returns the
    number of classes. Checked before anything is built, so the error names both models."""
    for name, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise ArgumentTypeError(name, model, "a keras.Model")
        inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
        if not inputs or not outputs or len(outputs) != 1:
            raise ModelError(f"`{name}` ({model.name!r}) must be a built functional or Sequential classifier with "
                             f"one output; got {len(outputs or [])} outputs")
    if teacher is student:
        raise ArgumentError("student", student.name, "must be a different model from the teacher")
    t_in, s_in = _input_shapes(teacher), _input_shapes(student)
    if t_in != s_in:
        raise ModelError(f"`student` ({student.name!r}) takes inputs of shape {s_in} but `teacher` ({teacher.name!r}) "
                         f"takes {t_in}: both must see the same inputs (build the student at the teacher's input "
                         "size)")
    t_classes, s_classes = int(teacher.outputs[0].shape[-1]), int(student.outputs[0].shape[-1])
    if t_classes != s_classes:
        raise ModelError(f"`student` ({student.name!r}) has {s_classes} outputs but `teacher` ({teacher.name!r}) has "
                         f"{t_classes}: distillation needs the same classes in the same order")
    return t_classes


def _check_inputs(x, name, shapes) -> None:
    if len(shapes) == 1 and tuple(x.shape[1:]) != shapes[0]:
        raise DataError(f"`{name}` inputs have shape {tuple(x.shape[1:])} but the teacher and student take "
                        f"{shapes[0]}")


def _dataset(train, unlabeled, *, batch_size, seed, num_classes, shapes, alpha):
    import tensorflow as tf

    if isinstance(train, tuple) and len(train) == 2 and not isinstance(train[0], tf.data.Dataset):
        x = np.asarray(train[0])
        if train[1] is None:  # no labels: the teacher alone teaches (alpha 0)
            if alpha > 0:
                raise ArgumentError("alpha", alpha, "must be 0 when `train` has no labels, (x, None): "
                                    "the supervised term needs labels")
            y = np.full(len(x), UNLABELED, "int32")
        else:
            y = _sparse(train[1], "train", num_classes=num_classes)
        if len(x) != len(y):
            raise DataError(f"`train` has {len(x)} inputs but {len(y)} labels")
        if len(x) == 0:
            raise DataError("`train` is empty")
        _check_inputs(x, "train", shapes)
        if unlabeled is not None and not isinstance(unlabeled, tf.data.Dataset):
            u = np.asarray(unlabeled[0] if isinstance(unlabeled, tuple) else unlabeled)
            if u.shape[1:] != x.shape[1:]:
                raise DataError(f"`unlabeled` inputs have shape {u.shape[1:]}, `train` inputs {x.shape[1:]}")
            x = np.concatenate([x, u.astype(x.dtype)])
            y = np.concatenate([y, np.full(len(u), UNLABELED, "int32")])
            unlabeled = None
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    elif isinstance(train, tf.data.Dataset):
        ds = train.unbatch().map(lambda a, b: (a, tf.reshape(tf.cast(
            tf.argmax(b, -1) if b.shape.rank and b.shape[-1] > 1 else b, tf.int32), [])))
    else:
        raise ArgumentTypeError("train", train, "an (x, y) tuple of arrays or a batched tf.data.Dataset")
    if unlabeled is not None:
        if isinstance(unlabeled, tf.data.Dataset):
            extra = unlabeled.unbatch().map(lambda a, *rest: (a, tf.constant(UNLABELED, tf.int32)))
        else:
            u = np.asarray(unlabeled[0] if isinstance(unlabeled, tuple) else unlabeled)
            _check_inputs(u, "unlabeled", shapes)
            extra = tf.data.Dataset.from_tensor_slices((u, np.full(len(u), UNLABELED, "int32")))
        ds = tf.data.Dataset.sample_from_datasets([ds, extra], seed=seed, stop_on_empty_dataset=False)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def distill(teacher: keras.Model, student: keras.Model, train, *, temperature: float = 4.0, alpha: float = 0.5,
            epochs: int = 5, learning_rate: float = 1e-3, batch_size: int = 32, val=None, unlabeled=None,
            feature_pairs=(), feature_weight: float = 1.0, feature_loss: str = "mse", optimizer=None,
            callbacks=(), verbose: int = 0, seed: int = 0) -> DistillResult:
    """Distil ``teacher`` into ``student`` (both softmax classifiers taking the same inputs).

    The loss is ``alpha * CE(labels, student) + (1 - alpha) * (T^2 KL(softmax(t/T) || softmax(s/T))
    + feature_weight * feature terms)``, built on ``keras.distillation`` (`TransferDistiller`).
    Only the student trains (the teacher is frozen); which student layers train is up to you
    (e.g. `tfxfer.freezing.unfreeze_all(student)` first).

    Args:
        teacher: the trained teacher (any catalog backbone, e.g. EfficientNet-Lite2 or ResNet50).
        student: the student (e.g. EfficientNet-Lite0); trained in place.
        train: ``(x, y)`` arrays (class ids or one-hot) or a batched ``tf.data.Dataset`` of them;
            ``(x, None)`` (no labels) with ``alpha=0``.
        temperature: softmax temperature T (> 0); 2-6 is usual.
        alpha: weight of the supervised loss in [0, 1]; 0 trains on the teacher alone (labels are
            then optional; without them no training ``accuracy`` is reported).
        epochs: training epochs.
        learning_rate: Adam learning rate (ignored when ``optimizer`` is given).
        batch_size: batch size for array data.
        val: optional ``(x, y)`` validation data (student accuracy is reported per epoch).
        unlabeled: extra inputs without labels (array or dataset); they get the distillation
            term only.
        feature_pairs: ``[(teacher_layer, student_layer)]`` to match intermediate features
            (``"backbone/layer"`` reaches into a nested backbone; different sizes get an adapter).
        feature_weight: weight of each feature term relative to the logit term.
        feature_loss: loss for feature terms ("mse", "cosine_similarity", ...).
        optimizer: a Keras optimizer (default Adam(learning_rate)).
        callbacks: Keras callbacks.
        verbose: fit verbosity.
        seed: shuffling seed.

    Returns:
        A `DistillResult`; export ``result.student`` (see `export_student`).

    Raises:
        ModelError: ``teacher`` and ``student`` take different input shapes or predict a different
            number of classes (checked before anything is built or trained).
        DataError: array ``train`` / ``val`` / ``unlabeled`` inputs of another shape, or labels
            that are not class ids in ``[0, classes)``.
    """
    import tensorflow as tf

    num_classes = _check_models(teacher, student)
    shapes = _input_shapes(teacher)
    check_float("temperature", temperature, low=0, low_open=True)
    check_float("alpha", alpha, low=0, high=1)
    check_int("epochs", epochs, low=1)
    check_int("batch_size", batch_size, low=1)
    check_float("learning_rate", learning_rate, low=0, low_open=True)
    train_ds = _dataset(train, unlabeled, batch_size=batch_size, seed=seed, num_classes=num_classes,
                        shapes=shapes, alpha=float(alpha))
    val_ds = None
    if val is not None and not isinstance(val, tf.data.Dataset):
        if not (isinstance(val, tuple) and len(val) == 2 and val[1] is not None):
            raise ArgumentTypeError("val", val, "an (x, y) tuple of arrays with labels, or a batched tf.data.Dataset")
        val_x = np.asarray(val[0])
        _check_inputs(val_x, "val", shapes)
        val_y = _sparse(val[1], "val", num_classes=num_classes)
        if len(val_x) != len(val_y):
            raise DataError(f"`val` has {len(val_x)} inputs but {len(val_y)} labels")
        val_ds = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(batch_size)
    elif val is not None:
        val_ds = val
    pairs = [tuple(p) for p in feature_pairs]
    if any(len(p) != 2 or not all(isinstance(n, str) for n in p) for p in pairs):
        raise ArgumentTypeError("feature_pairs", feature_pairs, "a list of (teacher_layer, student_layer) names")
    # An instance, not the string: Keras 3.15 turns "kl_divergence" into a plain function, misses its
    # isinstance(KLDivergence) check and compares raw logits as if they were probabilities.
    losses = [keras.distillation.LogitsDistillation(temperature=float(temperature), loss=keras.losses.KLDivergence())]
    weights = [1.0]
    for t_name, s_name in pairs:
        losses.append(keras.distillation.FeatureDistillation(loss=feature_loss, teacher_layer_name=t_name,
                                                             student_layer_name=s_name))
        weights.append(float(feature_weight))
    teacher_logits, student_logits = logits_model(teacher), logits_model(student)
    # keras.distillation freezes the teacher (layers shared with the logits view); restore its flags after.
    teacher_flags = [(layer, layer.trainable) for layer in teacher._flatten_layers(include_self=True)]
    distiller = TransferDistiller(teacher=teacher_logits, student=student_logits, distillation_losses=losses,
                                  distillation_loss_weights=weights, student_loss_weight=float(alpha))
    labelled = not (isinstance(train, tuple) and len(train) == 2 and train[1] is None) or val is not None
    distiller.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy",
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")] if labelled else [])
    build_optimizer(distiller, batch=train_ds.element_spec)  # the first step is traced once, not twice
    history = distiller.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=list(callbacks),
                            verbose=verbose, shuffle=False)  # the dataset is shuffled already
    for layer, flag in teacher_flags:
        layer.trainable = flag
    settings = {"temperature": float(temperature), "alpha": float(alpha), "epochs": epochs,
                "learning_rate": float(learning_rate), "feature_pairs": [list(p) for p in pairs],
                "feature_weight": float(feature_weight), "unlabeled": unlabeled is not None}
    return DistillResult(student=student, distiller=distiller,
                         history={k: [float(v) for v in vals] for k, vals in history.history.items()},
                         settings=settings)
