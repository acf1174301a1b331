"""`TransferDistiller`: ``keras.distillation.Distiller`` for transfer models, with unlabeled data.

It keeps Keras's distiller (teacher frozen, ``LogitsDistillation`` with temperature and the T^2
factor, ``FeatureDistillation``, loss trackers) and adds what transfer models need:

* **unlabeled examples**: rows labelled ``-1`` get the distillation term only (the supervised
  term is a masked mean over labelled rows), so unlabeled images can teach the student;
* **feature distillation between nested layers**: ``"efficientnet_lite2/block6a_add"`` reaches
  into the nested backbone; when teacher and student features differ in size, a trainable
  adapter (global average pooling for different spatial sizes, a Dense projection for different
  widths) maps the student's feature to the teacher's -- the adapter lives in the distiller and
  is never part of the exported student.

Teacher and student are logits views (`tfxfer.distill.logits_model`); the student's weights
are shared with the softmax model that `export_student` saves.

Example (what `tfxfer.distill.distill` builds for you):
    >>> import numpy as np, keras
    >>> from tfxfer.distill import UNLABELED, TransferDistiller, logits_model, resolve_layer_output
    >>> def model(width, name):  # a nested "backbone", like a tfxfer transfer model
    ...     backbone = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(width, 3, name="conv")],
    ...                                 name="backbone")
    ...     x = keras.Input((8, 8, 3))
    ...     features = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(x))
    ...     return keras.Model(x, keras.layers.Dense(2, activation="softmax", name="head")(features), name=name)
    >>> teacher, student = model(16, "teacher"), model(4, "student")
    >>> resolve_layer_output(student, "backbone/conv").shape
    (None, 6, 6, 4)
    >>> losses = [keras.distillation.LogitsDistillation(temperature=4.0, loss=keras.losses.KLDivergence()),
    ...           keras.distillation.FeatureDistillation(loss="mse", teacher_layer_name="backbone/conv",
    ...                                                  student_layer_name="backbone/conv")]
    >>> distiller = TransferDistiller(logits_model(teacher), logits_model(student), losses,
    ...                               distillation_loss_weights=[1.0, 0.1])
    >>> len(distiller.feature_adapters)  # 4 student channels -> 16 teacher channels
    1
    >>> distiller.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> x = np.random.default_rng(0).uniform(0, 1, (8, 8, 8, 3)).astype("float32")
    >>> y = np.array([0, 1, 0, 1, 0, 1, UNLABELED, UNLABELED])  # the last two teach through the teacher only
    >>> sorted(distiller.fit(x, y, epochs=1, batch_size=4, verbose=0).history)
    ['distillation_loss', 'loss', 'student_loss', 'total_loss']
"""

from __future__ import annotations

import keras
from keras import ops

from tfxfer.errors import ModelError, UnknownNameError

UNLABELED = -1


def resolve_layer_output(model: keras.Model, name: str):
    """The symbolic output of layer ``name`` of ``model``, connected to ``model.inputs``.

    ``"backbone/layer"`` reaches into a nested functional model (one level, the tfxfer transfer
    model shape): the nested model's sub-graph up to ``layer`` is called again on the tensor the
    nested model receives in ``model``'s graph (weights shared).
    """
    parts = name.split("/")
    if len(parts) > 2:
        raise ModelError(f"Layer path {name!r} is nested more than one level; use 'model/layer'")
    layer = _get(model, parts[0])
    if len(parts) == 1:
        return layer.output
    if not isinstance(layer, keras.Model):
        raise ModelError(f"{parts[0]!r} is not a nested model, so {name!r} cannot be resolved")
    inbound = [node for node in layer._inbound_nodes if node.input_tensors]
    if not inbound:
        raise ModelError(f"Nested model {layer.name!r} is not called in {model.name!r}")
    inner = _get(layer, parts[1])
    sub = keras.Model(layer.inputs, inner.output, name=f"{layer.name}_to_{inner.name}")
    return sub(inbound[0].input_tensors[0])


def _get(model, name):
    try:
        return model.get_layer(name)
    except ValueError as exc:
        raise UnknownNameError(f"layer of {model.name!r}", name, [layer.name for layer in model.layers]) from exc


@keras.saving.register_keras_serializable(package="tfxfer")
class TransferDistiller(keras.distillation.Distiller):
    """Teacher -> student distillation with unlabeled rows and nested-layer feature distillation.

    Args:
        teacher: trained teacher logits model (frozen here).
        student: student logits model (its weights train).
        distillation_losses: ``LogitsDistillation`` and/or ``FeatureDistillation`` objects.
        distillation_loss_weights: one weight per distillation loss.
        student_loss_weight: weight of the supervised loss (``alpha``); the distillation terms get
            ``1 - student_loss_weight``.
        name: model name.
    """

    def __init__(self, teacher, student, distillation_losses, distillation_loss_weights=None,
                 student_loss_weight=0.5, name="transfer_distiller", **kwargs):
        super().__init__(teacher=teacher, student=student, distillation_losses=distillation_losses,
                         distillation_loss_weights=distillation_loss_weights,
                         student_loss_weight=student_loss_weight, name=name, **kwargs)
        self.feature_adapters = []
        self._adapter_of = {}
        self._pool_pair = {}
        for index, loss in enumerate(self.distillation_losses):
            t_name = getattr(loss, "teacher_layer_name", None)
            s_name = getattr(loss, "student_layer_name", None)
            if not (t_name or s_name):
                continue
            t_shape = tuple(self._teacher_feature_extractor.output[t_name or "final_output"].shape[1:])
            s_shape = tuple(self._student_feature_extractor.output[s_name or "final_output"].shape[1:])
            pool = len(t_shape) == 3 and len(s_shape) == 3 and t_shape[:2] != s_shape[:2]
            self._pool_pair[index] = pool
            if s_shape[-1] != t_shape[-1] or (len(t_shape) != len(s_shape) and not pool):
                if len(t_shape) != len(s_shape) and not pool:
                    raise ModelError(f"Feature distillation {t_name!r} -> {s_name!r}: shapes {t_shape} and "
                                     f"{s_shape} cannot be matched")
                adapter = keras.layers.Dense(t_shape[-1], name=f"adapter_{index}")
                adapter.build((None, s_shape[-1]) if pool else (None, *s_shape))
                self.feature_adapters.append(adapter)
                self._adapter_of[index] = adapter

    def _validate_distillation_loss_compatibility(self, teacher, student, distillation_loss):
        names = (getattr(distillation_loss, "teacher_layer_name", None),
                 getattr(distillation_loss, "student_layer_name", None))
        if not any(n and "/" in n for n in names):
            return super()._validate_distillation_loss_compatibility(teacher, student, distillation_loss)
        for model, name in zip((teacher, student), names):
            if name:
                resolve_layer_output(model, name)  # raises UnknownNameError / ModelError

    def _create_feature_extractor(self, model, layer_names):
        if not layer_names:
            return None
        outputs = {"final_output": model.output}
        for name in layer_names:
            outputs[name] = resolve_layer_output(model, name)
        return keras.Model(model.inputs, outputs, name=f"{model.name}_multi_feature_extractor")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        student_loss = ops.convert_to_tensor(0.0)
        if self.student_loss_weight > 0.0 and y is not None:
            labels = ops.reshape(ops.cast(y, "int32"), (-1,))
            mask = ops.cast(ops.greater_equal(labels, 0), "float32")
            safe = ops.where(labels >= 0, labels, ops.zeros_like(labels))
            per_row = keras.losses.sparse_categorical_crossentropy(safe, y_pred, from_logits=True)
            student_loss = ops.sum(per_row * mask) / ops.maximum(ops.sum(mask), 1.0)
        distillation_loss = ops.convert_to_tensor(0.0)
        if self.student_loss_weight < 1.0:
            teacher_features = self._extract_all_teacher_features(x)
            student_features = self._extract_all_student_features(x, y_pred)
            for index, (loss_fn, weight) in enumerate(zip(self.distillation_losses, self.distillation_loss_weights)):
                t_name = getattr(loss_fn, "teacher_layer_name", None)
                s_name = getattr(loss_fn, "student_layer_name", None)
                if t_name or s_name:
                    t_out = teacher_features[t_name or "final_output"]
                    s_out = student_features[s_name or "final_output"]
                    if self._pool_pair.get(index):
                        t_out, s_out = ops.mean(t_out, axis=(1, 2)), ops.mean(s_out, axis=(1, 2))
                    if index in self._adapter_of:
                        s_out = self._adapter_of[index](s_out)
                else:
                    t_out, s_out = teacher_features["final_output"], y_pred
                value = loss_fn.compute_loss(ops.stop_gradient(t_out), s_out)
                distillation_loss = distillation_loss + weight * value
        total = self.student_loss_weight * student_loss + (1.0 - self.student_loss_weight) * distillation_loss
        self.student_loss_tracker.update_state(student_loss)
        self.distillation_loss_tracker.update_state(distillation_loss)
        self.total_loss_tracker.update_state(total)
        return total
