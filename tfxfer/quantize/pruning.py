"""Magnitude pruning of a Keras 3 model through the tf_keras bridge (TFMOT), stripped and carried back.

Only convolution and dense kernels are pruned (``layer_types``; TFMOT's registry does not prune
depthwise kernels, which are small and sensitive anyway). The sparsity follows a schedule over the
fine-tuning steps -- "polynomial" (TFMOT's PolynomialDecay from 0 to ``target_sparsity``, cubic,
finishing at ``end_fraction`` of the run) or "constant" -- or, with ``structured="2:4"``, every
group of 4 consecutive input-channel weights keeps its 2 largest (the pattern LiteRT/XNNPack and
sparse tensor cores accelerate; ``target_sparsity`` must then be 0.5). After fine-tuning the
wrappers are stripped and the weights copied back into a Keras 3 model by layer name, which
exports through `tfxfer.export` as usual. Zeros make the file smaller only once it is compressed:
see `zipped_size`.

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.quantize import prune
    >>> model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu", name="a"),
    ...                           keras.layers.Dense(2, activation="softmax", name="head")])
    >>> x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    >>> result = prune(model, (x, y), target_sparsity=0.75, epochs=2, batch_size=16)
    >>> round(result.report.sparsity_of("a"), 2)
    0.75
"""

from __future__ import annotations

import dataclasses
import math

import keras

from tfxfer.errors import ArgumentError
from tfxfer.quantize._deps import tfmot
from tfxfer.quantize._training import (
    check_layer_types,
    check_positive_int,
    clone_wrapped,
    fit,
    select_layers,
    steps_per_epoch,
)
from tfxfer.quantize.bridge import BridgedModel, to_tf_keras, weights_to_keras
from tfxfer.quantize.sparsity import SparsityReport, sparsity_report

SCHEDULES = ("polynomial", "constant")
STRUCTURED = (None, "2:4")
LAYER_TYPES = ("Conv2D", "Dense", "Conv1D")  # TFMOT does not prune depthwise kernels


@dataclasses.dataclass
class PruneResult:
    """A pruned model.

    Attributes:
        model: the Keras 3 model with pruned weights (export it with `tfxfer.export`).
        tf_keras_model: the stripped tf_keras model.
        report: per-layer `SparsityReport` of ``model``.
        pruned_layers: names of the layers that were pruned.
        history: fine-tuning history.
        settings: the schedule actually used (sparsity, steps, structure).
    """

    model: keras.Model
    tf_keras_model: object
    report: SparsityReport
    pruned_layers: list
    history: dict
    settings: dict


def prune(model, train, *, target_sparsity: float = 0.5, epochs: int = 2, learning_rate: float = 1e-4,
          batch_size: int = 32, schedule: str = "polynomial", structured: str | None = None,
          end_fraction: float = 0.7, frequency: int | None = None, layer_types=("Conv2D", "Dense"),
          skip=(), train_bn: bool = False, val=None, verbose: int = 0, seed: int = 0) -> PruneResult:
    """Prune a trained Keras 3 model to ``target_sparsity`` while fine-tuning it.

    Args:
        model: a functional Keras 3 model (backbone nested or not) or a `BridgedModel`.
        train: ``(x, y)`` arrays or a batched ``tf.data.Dataset``.
        target_sparsity: final fraction of zeros in each pruned kernel, in (0, 1).
        epochs: fine-tuning epochs.
        learning_rate: Adam learning rate.
        batch_size: batch size for array data.
        schedule: "polynomial" (gradual, the default) or "constant" (prune to the target at once).
        structured: None (unstructured) or "2:4" (2 zeros in every 4 consecutive input-channel
            weights; needs ``target_sparsity=0.5``).
        end_fraction: the polynomial schedule reaches the target after this fraction of the steps.
        frequency: steps between mask updates (default: about 10 updates over the schedule).
        layer_types: tf_keras class names to prune (from ``LAYER_TYPES``).
        skip: layer names to leave dense (e.g. the first convolution or the head).
        train_bn: let BatchNormalization layers train (batch statistics in training, moving
            statistics re-estimated). Default False keeps the source model's flags; on the
            Animal-MNIST benchmark training BatchNorm here cost ~70 accuracy points.
        val: optional validation data.
        verbose: Keras fit verbosity.
        seed: shuffling seed.

    Returns:
        A `PruneResult`.
    """
    if isinstance(target_sparsity, bool) or not isinstance(target_sparsity, (int, float)) \
            or not 0.0 < float(target_sparsity) < 1.0:
        raise ArgumentError("target_sparsity", target_sparsity, "must be a number in (0, 1)")
    if schedule not in SCHEDULES:
        raise ArgumentError("schedule", schedule, "must be 'polynomial' or 'constant'")
    if structured not in STRUCTURED:
        raise ArgumentError("structured", structured, "must be None or '2:4'")
    if structured == "2:4" and float(target_sparsity) != 0.5:
        raise ArgumentError("target_sparsity", target_sparsity, "must be 0.5 with structured='2:4'")
    if not 0.0 < float(end_fraction) <= 1.0:
        raise ArgumentError("end_fraction", end_fraction, "must be in (0, 1]")
    check_layer_types(layer_types, kind="prunable layer type", known=LAYER_TYPES)
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    bridged = model if isinstance(model, BridgedModel) else to_tf_keras(model)
    chosen = select_layers(bridged, layer_types, tuple(skip))
    sparsity = tfmot().sparsity.keras
    total = max(1, steps_per_epoch(train, batch_size=batch_size) * epochs)
    if schedule == "polynomial" and total < 2:
        raise ArgumentError("epochs", epochs, "must give at least 2 training steps for schedule='polynomial'",
                            hint="Use more data or epochs, or schedule='constant'")
    last = max(1, int(math.ceil(total * float(end_fraction))) - 1)
    frequency = frequency if frequency is not None else max(1, last // 10)
    check_positive_int("frequency", frequency)
    # Masks update every `frequency` steps: end on an update step so the target is actually reached.
    end_step = max(frequency, (last // frequency) * frequency)
    if schedule == "polynomial":
        pruning_schedule = sparsity.PolynomialDecay(initial_sparsity=0.0, final_sparsity=float(target_sparsity),
                                                    begin_step=0, end_step=end_step, frequency=frequency)
    else:
        pruning_schedule = sparsity.ConstantSparsity(float(target_sparsity), begin_step=0, frequency=frequency)
    options = {"pruning_schedule": pruning_schedule}
    if structured == "2:4":
        options["sparsity_m_by_n"] = (2, 4)
    wrapped = clone_wrapped(bridged, chosen, lambda layer: sparsity.prune_low_magnitude(layer, **options),
                            train_bn=train_bn)
    history = fit(wrapped, bridged.source, train, val=val, epochs=epochs, learning_rate=learning_rate,
                  batch_size=batch_size, callbacks=[sparsity.UpdatePruningStep()], verbose=verbose, seed=seed)
    stripped = sparsity.strip_pruning(wrapped)
    keras_model = weights_to_keras(bridged, stripped)
    settings = {"target_sparsity": float(target_sparsity), "schedule": schedule, "structured": structured,
                "steps": total, "end_step": end_step if schedule == "polynomial" else 0, "frequency": frequency,
                "layer_types": list(layer_types), "skip": list(skip), "train_bn": bool(train_bn)}
    return PruneResult(model=keras_model, tf_keras_model=stripped, report=sparsity_report(keras_model),
                       pruned_layers=sorted(chosen), history=history, settings=settings)
