"""`train_qat`: quantize, fine-tune briefly, convert to full int8, and gate against the float model.

Example:
    >>> import os, tempfile, numpy as np, keras
    >>> from tfxfer.preprocess import Preprocess
    >>> from tfxfer.quantize import train_qat
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3, activation="relu")(Preprocess("unit")(inputs))
    >>> model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(
    ...     keras.layers.GlobalAveragePooling2D()(x)))
    >>> x = np.random.default_rng(0).uniform(0, 255, (64, 8, 8, 3)).astype("float32")
    >>> y = model.predict(x, verbose=0).argmax(1)
    >>> result = train_qat(model, (x, y), eval_data=(x, y), path=os.path.join(tempfile.mkdtemp(), "m.tflite"),
    ...                    thresholds={"int8": {"max_accuracy_drop": 100.0}})
    >>> result.export.variant, result.gate.passed
    ('int8', True)
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from tfxfer.errors import ArgumentError, DataError, ModelError
from tfxfer.quantize._training import check_positive_int, fit, images_of
from tfxfer.quantize.qat import QATModel, quantize_model
from tfxfer.quantize.post_training import export_tf_keras_tflite


@dataclasses.dataclass
class QATResult:
    """What `train_qat` produced.

    Attributes:
        export: the int8 `tfxfer.export.TFLiteExport`.
        gate: the `tfxfer.export.GateReport` of the file against the float Keras 3 model.
        qat: the `QATModel` (``.plan`` says how every layer was treated).
        history: the QAT fine-tuning history.
        bridge_max_abs_diff: tf_keras rebuild vs Keras 3 model, before QAT.
    """

    export: object
    gate: object
    qat: QATModel
    history: dict
    bridge_max_abs_diff: float | None

    def summary(self) -> dict:
        result = self.gate[self.export.variant] if self.export.variant in self.gate.results else \
            next(iter(self.gate.results.values()))
        return {
            "path": self.export.path, "size_bytes": self.export.size_bytes, "passed": self.gate.passed,
            "float_accuracy": result.keras_accuracy, "int8_accuracy": result.tflite_accuracy,
            "accuracy_drop_pts": result.accuracy_drop, "bridge_max_abs_diff": self.bridge_max_abs_diff,
            "annotated_layers": self.qat.layers_with("annotate"), "float_layers": self.qat.layers_with("float"),
        }


def train_qat(model, train, *, eval_data, path, epochs: int = 1, learning_rate: float = 1e-5,
              batch_size: int = 32, val=None, representative_data=None, num_calibration: int = 200,
              unsupported: str = "annotate", float_layers=(), train_bn: bool = False, thresholds=None,
              class_names=None, raise_on_failure: bool = True, verbose: int = 0, seed: int = 0,
              targets: str = "labels") -> QATResult:
    """Quantization-aware fine-tuning of a trained Keras 3 model, exported as a gated full-int8 TFLite file.

    Args:
        model: the trained float Keras 3 model (e.g. from `tfxfer.build_model` + `fine_tune`).
        train: ``(images, labels)`` or a batched ``tf.data.Dataset`` for the QAT fine-tuning.
        eval_data: held-out ``(images, labels)`` for the gate (file vs float Keras 3 model).
        path: where to write the .tflite file (sidecar ``<stem>.json`` beside it).
        epochs: QAT epochs (one or two usually suffice once ranges start from float statistics).
        learning_rate: Adam learning rate; keep it around the last fine-tuning rate or lower.
        batch_size: batch size for array data.
        val: optional validation data during QAT.
        representative_data: images for range initialisation and converter calibration
            (default: the training images).
        num_calibration: calibration images drawn.
        unsupported, float_layers, train_bn: see `quantize_model`.
        thresholds: gate thresholds (see `tfxfer.export.verify`); the default int8 gate allows
            a 1.0 point accuracy drop.
        class_names: written to the sidecar.
        raise_on_failure: when the file fails the gate, raise `GateError` without writing it (as
            `tfxfer.export.export_all` does); False writes it, its sidecar's ``gate`` saying
            ``"passed": false`` (the device runner then refuses the file unless ``--allow-failed``).
        verbose: Keras fit verbosity.
        seed: seed of the calibration subset.
        targets: what the quantized model learns: ``"labels"`` (default) the training labels, or
            ``"float_model"`` the float model's own outputs on the training images
            (self-distillation: the file is pulled towards the validated model's decisions rather than
            the labels; the gate measures its top-1 agreement with that model). On ELPV the
            recipe's label-trained QAT file agreed with the Keras model on 97.1 % of the held-out
            images; benchmarks/export_fidelity.py ``--qat-targets float_model`` measures the other.

    The file and its sidecar are written to a staging folder beside ``path``, gated there, and moved
    to ``path`` only once gated: an interrupted or failed run leaves what was at ``path`` as it was.

    Returns:
        A `QATResult`; its ``gate`` is also written into the sidecar.

    Raises:
        ArgumentError: ``path`` is a folder or no file can be written there (checked before any training).
        DataError: ``eval_data``, array ``train`` data (both checked before any training) or the
            calibration images do not fit the model: wrong image shape or channels, no labels, labels
            out of range or not of the model's task (multi-hot rows for a multi-label sigmoid model).
        GateError: the file failed its gate and ``raise_on_failure`` is True; nothing was written.
    """
    from tfxfer.export.metadata import check_class_names
    from tfxfer.utils.output_path import check_output_file

    check_positive_int("epochs", epochs)
    check_positive_int("num_calibration", num_calibration)
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentError("path", path, "must be a file path for the .tflite file")
    path = check_output_file("path", path)  # before any training: a folder or unwritable place fails now
    eval_data = _checked_eval_data(model, eval_data)
    check_class_names(class_names, eval_data[2])
    _check_train_arrays(model, train)
    source = "representative_data" if representative_data is not None else "train"
    if representative_data is None:
        representative_data = train
    images = images_of(representative_data, name=source, limit=max(num_calibration, 256))
    _check_images(images, model, name=source)
    qat = quantize_model(model, calibration_data=images, unsupported=unsupported, float_layers=float_layers,
                         train_bn=train_bn)
    history = fit(qat.model, model, train, val=val, epochs=epochs, learning_rate=learning_rate,
                  batch_size=batch_size, verbose=verbose, seed=seed, targets=targets)
    from tfxfer.export.gated_files import settle, staged
    from tfxfer.export.metadata import model_task

    final = os.path.abspath(os.fspath(path))
    with staged(final) as staging:
        export = export_tf_keras_tflite(qat.model, os.path.join(staging, os.path.basename(final)), variant="int8",
                                        representative_data=images, num_calibration=num_calibration,
                                        class_names=class_names, seed=seed, task=model_task(model),
                                        extra={"source": "tfxfer.quantize.train_qat",
                                               "qat_targets": targets,
                                               "annotated_layers": qat.layers_with("annotate"),
                                               "float_layers": qat.layers_with("float")})
        gate = _gate(model, export, eval_data[:2], thresholds=thresholds)
        export, gate = settle(export, gate, final, raise_on_failure=raise_on_failure)
    return QATResult(export=export, gate=gate, qat=qat, history=history,
                     bridge_max_abs_diff=qat.bridged.max_abs_diff)


def _check_images(images, model, *, name: str, shape_only: bool = False) -> None:
    """``images`` must have the model's input shape (height, width, channels); ``shape_only``: only
    check that the model has one fixed-size image input."""
    from tfxfer.export.data import check_image_shape

    shape = tuple(model.inputs[0].shape[1:]) if isinstance(model, keras.Model) and len(model.inputs) == 1 else None
    if shape is None or None in shape:
        raise ModelError(f"train_qat needs a Keras image model with one fixed-size input; got {model!r:.200}")
    if not shape_only:
        check_image_shape(images, shape, name=name)


def _checked_eval_data(model, eval_data):
    """``(images, labels, num_classes)`` of ``eval_data``, checked against ``model`` before any
    training: the model's image shape, labels present and of the form the gate takes for the model's
    task (class ids in range; multi-hot rows for a multi-label sigmoid model), `DataError` otherwise."""
    from tfxfer.export.metadata import check_gateable
    from tfxfer.export.verification import image_eval_data

    _check_images(np.empty((0, 0)), model, name="eval_data", shape_only=True)
    num_classes = int(model.outputs[0].shape[-1])
    images, labels = image_eval_data(eval_data, image_shape=tuple(model.inputs[0].shape[1:]), num_classes=num_classes,
                                     task=check_gateable(model), name="eval_data")
    return images, labels, num_classes


def _check_train_arrays(model, train) -> None:
    """Array training data ``(images, labels)`` checked before any work, as ``eval_data`` is: image
    shape, labels of the model's task and in range (a dataset is checked by the fit as it streams)."""
    from tfxfer.export.data import check_image_shape, multilabel_targets, sparse_labels
    from tfxfer.export.metadata import model_task

    if not (isinstance(train, tuple) and len(train) == 2 and isinstance(train[0], np.ndarray)):
        return
    images, labels = train
    if images.ndim != 4:
        raise DataError(f"`train` images must have shape (n, height, width, channels); got {images.shape}")
    check_image_shape(images, tuple(model.inputs[0].shape[1:]), name="train")
    if labels is None or len(labels) != len(images):
        raise DataError(f"`train` has {len(images)} images but {None if labels is None else len(labels)} labels")
    num_classes = int(model.outputs[0].shape[-1])
    task = model_task(model)
    if task == "multilabel":
        multilabel_targets(labels, num_labels=num_classes, name="train")
    elif task in ("multiclass", "logits", "scores"):
        sparse_labels(labels, num_classes=num_classes, name="train")


def _gate(model, export, eval_data, *, thresholds):
    """`tfxfer.export.verify` of the written file against the float model."""
    from tfxfer.export import verify

    return verify(model, export, eval_data, thresholds=thresholds, raise_on_failure=False)
