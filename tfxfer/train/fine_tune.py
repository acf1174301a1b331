"""`fine_tune`: the transfer-learning recipe for images and text, as the head step then the unfreezing step.

1. The head step (`tfxfer.train.head.head_step`): the backbone (CNN or text encoder) runs once,
   the head trains on its cached pooled features at ``base_lr``; the best validation epoch is kept.
2. The unfreezing step (`tfxfer.train.unfreeze.unfreeze_step`): top-down unfreezing at
   ``base_lr * unfreeze_lr_factor``, each stage warming up once and then decaying, layer-wise
   (discriminative) rates, BatchNorm frozen, optional L2-SP; the best validation epoch is kept, and
   the whole step only if it beats the head-only model on validation data (``result.selection``).

Arguments left at None are chosen from the data size and the model (`tfxfer.train.plan`).

``strategy=`` runs it on several devices or workers (tf.distribute); ``checkpoint_dir=`` saves the
full training state every epoch and continues an interrupted run where it stopped. Text models
(`tfxfer.text.build_text_classifier`) take ``train=(texts, labels)`` and the same arguments; the
learning-rate plan arguments left at None pick the recipe that fits the model (see `fine_tune`).

Example:
    >>> import numpy as np
    >>> from tfxfer.models import build_model
    >>> from tfxfer.train.fine_tune import fine_tune
    >>> x = np.random.rand(32, 32, 32, 3).astype("float32") * 255; y = np.arange(32) % 2
    >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
    >>> result = fine_tune(model, (x, y), head_epochs=1, epochs=2, batch_size=8, verbose=0)
    >>> [s["trainable_groups"][0] for s in result.stages]  # head, then the top 2 groups together
    ['head', 'block13_16']
    >>> sorted(result.settings["picked"])  # what the data size picked (see tfxfer.train.plan)
    ['base_lr', 'layer_decay', 'unfreeze_lr_factor']

Text, in the same dialect (the head trains on cached sentence embeddings, then the encoder):
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=2, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> model = build_text_classifier(encoder, 2)
    >>> texts = np.array(["good film", "bad film"] * 4, dtype=object); labels = np.array([1, 0] * 4)
    >>> result = fine_tune(model, (texts, labels), head_epochs=1, epochs=1, batch_size=4, verbose=0)
    >>> [s["trainable_groups"] for s in result.stages]
    [['head'], ['embeddings', 'layer_0', 'layer_1', 'head']]
"""

from __future__ import annotations

import os
import time
import warnings

import keras
import tensorflow as tf

from tfxfer.augment import augment_dataset
from tfxfer.backbones.groups import layer_groups
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.reliability.inputs import data_errors
from tfxfer.reliability.shuffle import EpochShuffle, attach_shuffle, attached_shuffle, reshuffles_itself
from tfxfer.train.data import (balanced_class_weight, check_class_weight, check_test_data, num_examples,
                               training_datasets, with_channels, with_class_ids)
from tfxfer.train.plan import HEAD_PATIENCE, auto_plan
from tfxfer.train.arguments import check_arguments
from tfxfer.train.averaging import WeightAveraging
from tfxfer.train.checkpoint_plan import check_plan
from tfxfer.train.head import head_step
from tfxfer.train.result import FineTuneResult
from tfxfer.train.tta import evaluate_tta
from tfxfer.train.unfreeze import pooling_layer_is_text, unfreeze_step

#: What the learning-rate plan arguments left at None pick: the image recipe, and the BERT recipe
#: for text encoders (AdamW, weight decay 0.01, warmup over the first 10 % of the steps, linear decay).
DEFAULTS = {
    "image": {"optimizer": "adam", "weight_decay": None, "lr_decay": "cosine", "warmup_share": None},
    "text": {"optimizer": "adamw", "weight_decay": 0.01, "lr_decay": "linear", "warmup_share": 0.1},
}


def fine_tune(
    model: keras.Model,
    train,
    *,
    val=None,
    test=None,
    head_epochs: int | None = None,
    epochs: int | None = None,
    base_lr: float | None = None,
    unfreeze_lr_factor: float | None = None,
    stages: dict | None = None,
    warmup_epochs: float | None = None,
    lr_decay: str | None = None,
    layer_decay: float | None = None,
    optimizer: str | None = None,
    weight_decay: float | None = None,
    use_cached_features: bool | None = None,
    batch_size: int = 32,
    loss=None,
    metrics=None,
    class_weight=None,
    augment=None,
    monitor: str = "val_loss",
    restore_best: bool = True,
    keep_if_better: bool = True,
    bn_policy: str = "frozen",
    callbacks=(),
    verbose: int = 1,
    strategy=None,
    checkpoint_dir=None,
    seed: int = 0,
    stop_on_divergence: bool = True,
    l2sp: float = 0.0,
    label_smoothing: float = 0.0,
    average_weights=None,
    tta=None,
) -> FineTuneResult:
    """Head on cached features, then top-down unfreezing at a lower rate, kept only if it pays.

    Every plan argument left at None is picked from the data size and the model by
    `tfxfer.train.plan.auto_plan` (the rule is written there); ``result.settings`` records what ran.

    Args:
        model: an image transfer model (`tfxfer.build_model`) or a text model
            (`tfxfer.text.build_text_classifier`, or a token classifier's `tfxfer.text.token_model`).
        train: ``(x, y)`` or ``(x, y, sample_weight)`` arrays — raw-pixel images (``[n, h, w, c]``,
            or gray ``[n, h, w]``: the channel axis is added), raw texts, or token tensors — or a
            batched ``tf.data.Dataset`` of such tuples.
        val: validation data, same forms. With it, every step keeps its best ``monitor`` epoch and
            the unfreezing step is kept only if it beats the head-only model.
        test: optional test data, same forms: evaluated at the end into ``result.test``.
        head_epochs: epochs of the head step (0 skips it; None: 30 on cached features, stopping
            after 5 epochs without a better ``monitor``, a stop that a resume keeps).
            ``result.head_epochs`` is the number that ran; the unfreezing epochs follow it.
        epochs: epochs of the unfreezing step after the head step (0 skips it; None: from the data size).
        base_lr: learning rate of the head step (None: 1e-3).
        unfreeze_lr_factor: the unfreezing stages peak at ``base_lr * unfreeze_lr_factor`` (None:
            0.1, 0.2 for images of 64 px or less); lower groups get less via ``layer_decay``.
        stages: ``{epoch: top groups to unfreeze}`` counted from the first unfreezing epoch.
            None: one stage whose depth follows the data size (images) or the whole encoder (text).
        warmup_epochs: linear warmup at the start of each unfreezing stage, in epochs (0 keeps the
            rate constant). None: 10 % of each stage, then ``lr_decay`` to 0 within the stage.
        lr_decay: after the warmup, "cosine" (images' default) or "linear" (text's).
        layer_decay: discriminative multiplier per group below the head (None: 0.8 images,
            1.0 for images of 64 px or less, 0.9 text).
        optimizer: "adam" (images' default), "adamw" (text's) or "sgd" for the unfreezing stages.
        weight_decay: decoupled weight decay of that optimizer (default: 0.01 for text, none for
            Adam / SGD and Keras's default for AdamW on images).
        use_cached_features: train the head on features extracted once (the fast path; None: on).
            The cache sees one pass over ``train``: a ``tf.data`` input that augments gets a
            warning and a note (pass False to re-sample augmentation every head epoch).
        loss, metrics: default from `tfxfer.train.losses` (the head and the label format).
        class_weight: ``{class index: weight}`` (every class of the head, weights >= 0), "balanced" (from the labels of array input:
            ``n / (classes * count)``) or None (the default: weights trade accuracy for recall of
            rare classes, so they are off unless the metric you want asks for it).
        augment: images only: a policy name of `tfxfer.augment` ("light", "medium", ...), a layer
            or a list of layers, applied in tf.data to the unfreezing step's batches (array or
            dataset input); the cached head step sees the images unaugmented.
        monitor: the validation value that picks the best epoch and decides whether the unfreezing
            step is kept ("val_loss", or e.g. "val_accuracy").
        restore_best: put back the best ``monitor`` epoch at the end of each step.
        keep_if_better: keep the unfreezing step only if its best ``monitor`` beats the head-only
            model's; otherwise restore the head-only weights (``result.selection["kept"] == "head"``
            and a line in ``result.notes``).
        bn_policy: "frozen" (default) keeps BatchNorm in inference mode throughout.
        callbacks: Keras callbacks for every fit: the head step (on cached features its fit runs
            on the head model alone) and the unfreezing stages; epochs are numbered across both.
        strategy: a ``tf.distribute.Strategy`` (see `tfxfer.reliability.get_strategy`). Build the
            model inside ``with strategy.scope():``; ``fine_tune`` creates the optimizers, compiles
            and builds the head model in that scope, and ``batch_size`` is the global batch.
        checkpoint_dir: save the full training state after every epoch (weights, optimizer state,
            schedule position, unfreezing stage, RNG states) under this folder, and continue from
            the newest checkpoint in it when called again (after a crash or ``kill -9``).
            Give a fresh folder for a new run: a folder holding a run of other arguments (epochs,
            rates, stages, batch size, seed) is refused with an `ArgumentError`. The resumed epochs see the batches of an
            uninterrupted run for arrays and for `tfxfer.data` pipelines (and pipelines derived
            from them); a pipeline that reshuffles itself (``Dataset.shuffle``) cannot be replayed:
            the resume then warns and says so in ``result.notes``.
        seed: seeds Python, NumPy and TensorFlow (``keras.utils.set_random_seed``: dropout, the
            augmentation draws) and the epoch-keyed shuffle of array data (same order on every
            worker and after a resume). Augmentation repeats batch for batch (across runs and
            after a resume) only while TensorFlow's op determinism is on
            (`tfxfer.reliability.enable_determinism`): otherwise batches are augmented in
            parallel and which batch gets which draw depends on thread timing. The head's initial weights come from `tfxfer.build_model`
            (call ``keras.utils.set_random_seed`` before building to fix them).
        stop_on_divergence: in every step (the head step included), stop at the first NaN/Inf loss or
            weight, or a training loss exploding past 100x its first value; the last good weights are
            put back and `tfxfer.errors.TrainingDivergedError` is raised (naming the epoch, batch and
            last good checkpoint; `tfxfer.train.divergence.DivergenceGuard`).
        l2sp: L2-SP strength (0 = off). When > 0, every backbone kernel is anchored at its value
            before the unfreezing stages (the pretrained weights) with `tfxfer.transfer.L2SP`, so
            they penalise ``l2sp * sum((w - w_pretrained) ** 2)`` (less forgetting on small data;
            1e-4 to 1e-2 is typical). The anchors are removed when ``fine_tune`` returns;
            ``result.l2sp`` reports the drift.
        label_smoothing: smooth the default classification loss of both steps (0 = off; see
            `tfxfer.train.losses`).
        average_weights: None (off), "ema" or "swa", or a `tfxfer.train.averaging.WeightAveraging`:
            average the weights over the last half of the unfreezing step (EMA per batch, momentum
            0.99, or SWA over epoch ends); the average replaces the best epoch's weights only if it
            scores better on ``val`` (``result.selection["averaged"]``, ``["kept_average"]``);
            checkpointed and resumed with the run.
        tta: test-time augmentation for the ``test`` evaluation: None (off), True (horizontal flip)
            or a list of `tfxfer.train.tta` views; ``result.tta`` holds its accuracy next to the
            plain one and both wall times (its cost).

    Raises:
        DataError: array inputs with NaN/Inf pixels, a wrong image shape, class ids outside the
            head, or a single class; empty or mismatched data.

    Returns:
        `FineTuneResult`: the merged ``history``, per-step ``steps`` (history, wall time, best
        epoch), ``selection`` (head-only vs fine-tuned validation score, which was kept),
        ``test``, ``settings`` and ``notes``.
    """
    callbacks = list(callbacks)
    text = pooling_layer_is_text(model)
    cached = True if use_cached_features is None else bool(use_cached_features)
    chosen = {"head_epochs": head_epochs, "epochs": epochs, "base_lr": base_lr,
              "unfreeze_lr_factor": unfreeze_lr_factor, "layer_decay": layer_decay}
    auto = auto_plan(n=num_examples(train), text=text, groups=len(layer_groups(model)) - 1, cached=cached,
                     image_size=None if text else _image_side(model))
    head_epochs, epochs, base_lr, unfreeze_lr_factor, layer_decay = (
        auto[k] if v is None else v for k, v in chosen.items())
    check_arguments(model, head_epochs=head_epochs, epochs=epochs, batch_size=batch_size, base_lr=base_lr,
                     unfreeze_lr_factor=unfreeze_lr_factor, stages=stages, warmup_epochs=warmup_epochs,
                     lr_decay=lr_decay, optimizer=optimizer, weight_decay=weight_decay, l2sp=l2sp,
                     callbacks=callbacks, strategy=strategy, checkpoint_dir=checkpoint_dir,
                     layer_decay=layer_decay, monitor=monitor, label_smoothing=label_smoothing)
    plan = DEFAULTS["text" if text else "image"]
    settings = {"head_epochs": head_epochs, "epochs": epochs, "base_lr": base_lr,
                "unfreeze_lr_factor": unfreeze_lr_factor, "layer_decay": layer_decay,
                "stages": stages if stages is not None else ({0: auto["stages"][0]} if epochs else None),
                "warmup_epochs": warmup_epochs, "warmup_share": auto["warmup_share"] if warmup_epochs is None else None,
                "lr_decay": lr_decay or plan["lr_decay"], "optimizer": optimizer or plan["optimizer"],
                "weight_decay": plan["weight_decay"] if weight_decay is None else weight_decay,
                "batch_size": batch_size, "cached_features": cached, "monitor": monitor,
                "restore_best": restore_best, "keep_if_better": keep_if_better, "seed": int(seed),
                "bn_policy": bn_policy, "l2sp": l2sp, "label_smoothing": label_smoothing,
                "average_weights": average_weights if average_weights is None or isinstance(average_weights, str)
                else average_weights.get_config(), "tta": tta, "picked": sorted(k for k, v in chosen.items() if v is None)}
    averager = _averager(average_weights, epochs)
    if checkpoint_dir is not None:  # a folder holding another plan's run is refused, not resumed
        check_plan(checkpoint_dir, settings)
    keras.utils.set_random_seed(int(seed))
    train, val, test = (with_class_ids(model, with_channels(model, d)) for d in (train, val, test))
    if test is not None:
        check_test_data(model, test)
    class_weight = _class_weight(class_weight, train, model)
    notes = _cache_note(train, cached and head_epochs and use_cached_features is None)
    # arrays: shuffled here; a tfxfer tf.data pipeline: its own shuffle, driven by epoch (resumable)
    epoch_shuffle = (attached_shuffle(train) if isinstance(train, tf.data.Dataset) else None) or EpochShuffle(int(seed))
    train_ds, val_ds = training_datasets(model, train, val, batch_size=batch_size, epoch_shuffle=epoch_shuffle)
    # the step's augmentation reseeded by epoch through the shuffle that fit drives (resumable draws)
    tuned_ds = _augmented(attach_shuffle(train_ds, epoch_shuffle), augment, model=model, text=text, seed=int(seed))
    common = dict(val_ds=val_ds, loss=loss, metrics=metrics, class_weight=class_weight, bn_policy=bn_policy,
                  verbose=verbose, strategy=strategy, epoch_shuffle=epoch_shuffle, stop_on_divergence=stop_on_divergence,
                  monitor=monitor, restore_best=restore_best, callbacks=callbacks, label_smoothing=label_smoothing)
    result = FineTuneResult(history={}, stages=[], head_epochs=head_epochs)
    try:
        with data_errors():
            if head_epochs:  # 1. the head on cached features
                t0 = time.perf_counter()
                result = head_step(model, train_ds, epochs=head_epochs, learning_rate=base_lr, batch_size=batch_size,
                                   cached=cached, seed=int(seed), checkpoint_dir=_phase(checkpoint_dir, "head"),
                                   patience=HEAD_PATIENCE if chosen["head_epochs"] is None else None, **common)
                for step in result.steps:
                    step["wall_s"] = time.perf_counter() - t0
                head_epochs = len(result.history.get("loss", []))  # early stopping may end it before the plan
            if epochs:  # 2. top-down unfreezing, kept only if it beats the head-only model
                t0 = time.perf_counter()
                tuned = unfreeze_step(model, tuned_ds, epochs=epochs, learning_rate=base_lr * unfreeze_lr_factor,
                                      stages=settings["stages"], start_epoch=head_epochs,
                                      warmup_epochs=warmup_epochs or 0, warmup_share=settings["warmup_share"],
                                      lr_decay=settings["lr_decay"], layer_decay=layer_decay,
                                      optimizer=settings["optimizer"], weight_decay=settings["weight_decay"],
                                      checkpoint_dir=_phase(checkpoint_dir, "unfreeze"), l2sp=l2sp,
                                      keep_if_better=keep_if_better, average_weights=averager,
                                      **common)
                notes += _absorb_unfreezing(result, tuned, wall_s=time.perf_counter() - t0, monitor=monitor)
            if test is not None:
                result.test = evaluate(model, test, batch_size=batch_size, loss=loss, metrics=metrics)
                if tta:
                    result.tta = evaluate_tta(model, test, views=None if tta is True else tta, batch_size=batch_size)
    finally:  # an interrupted fit (Ctrl-C, a callback's error) never leaves a pipeline on one order
        epoch_shuffle.release()
    settings.pop("weight_decay")
    settings.update(class_weight=class_weight,
                    augment=augment if isinstance(augment, str) or augment is None else repr(augment))
    if tta and test is None:
        notes.append("tta was asked for but no `test` data was given: nothing was evaluated with it")
    if result.resumed_from and isinstance(train, tf.data.Dataset) and reshuffles_itself(train):
        notes.append(_RESHUFFLED_RESUME.format(path=result.resumed_from))
        warnings.warn(notes[-1], stacklevel=2)
    if head_epochs != settings["head_epochs"]:
        settings["head_epochs_run"] = head_epochs
    result.head_epochs, result.notes, result.settings = head_epochs, notes, settings
    return result


_RESHUFFLED_RESUME = (
    "resumed from {path}, but `train` is a tf.data pipeline that reshuffles itself (Dataset.shuffle with "
    "reshuffle_each_iteration): the resumed epochs saw other batches than an uninterrupted run would have. For an "
    "exact resume pass arrays, a pipeline of tfxfer.data (or one derived from it), or shuffle with "
    "tfxfer.reliability.EpochShuffle")


def _image_side(model) -> int | None:
    """The shorter side of an image model's input in pixels (None when unknown or not an image)."""
    shape = model.inputs[0].shape if len(model.inputs) == 1 else ()
    sides = [d for d in tuple(shape)[1:3] if d is not None] if len(shape) == 4 else []
    return min(sides) if len(sides) == 2 else None


def _averager(average_weights, epochs: int):
    """A fresh `WeightAveraging` over the last half of the unfreezing step for "ema" / "swa"."""
    if average_weights is None or isinstance(average_weights, WeightAveraging):
        return average_weights
    if average_weights not in ("ema", "swa"):
        raise ArgumentError("average_weights", average_weights, "must be None, 'ema', 'swa' or a WeightAveraging")
    return WeightAveraging(average_weights, last_epochs=max(1, (epochs + 1) // 2))


def _class_weight(class_weight, train, model):
    """``"balanced"`` -> weights from the training labels; a dict is checked against the head."""
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ArgumentError("class_weight", class_weight, "must be 'balanced', a {class: weight} dict or None")
        return balanced_class_weight(train)
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise ArgumentTypeError("class_weight", class_weight, "'balanced', a {class index: weight} dict or None")
    return check_class_weight(model, class_weight)


def _cache_note(train, caching_by_default) -> list:
    """A warning (and a note for the result) when a tf.data input's augmentation is cached once."""
    if not (isinstance(train, tf.data.Dataset) and caching_by_default):
        return []
    note = ("the head step trained on features cached from one pass over the tf.data input: augmentation in "
            "that pipeline was sampled once (pass use_cached_features=False to re-sample it every epoch)")
    warnings.warn(note, stacklevel=3)
    return [note]


def _augmented(train_ds, augment, *, model, text: bool, seed: int):
    """The unfreezing step's training data with ``augment`` applied in tf.data (images only)."""
    if augment is None or augment == "none":
        return train_ds
    if text:
        raise ArgumentError("augment", augment, "applies to image models only")
    return augment_dataset(train_ds, augment, num_classes=int(model.output_shape[-1]), seed=seed)


def _absorb_unfreezing(result: FineTuneResult, tuned: FineTuneResult, *, wall_s: float, monitor: str) -> list:
    """Append the unfreezing step's epochs, stages and selection to ``result``; notes about the choice."""
    sel = tuned.selection or {}
    result.steps.append({"name": "unfreeze", "epochs": len(tuned.history.get("loss", [])),
                         "history": dict(tuned.history), "wall_s": wall_s, "monitor": sel.get("monitor"),
                         "best_epoch": sel.get("best_epoch"), "best": sel.get("fine_tuned")})
    result.merge(tuned.history, start=len(result.history.get("loss", [])))
    result.stages += tuned.stages
    result.l2sp, result.resumed_from = tuned.l2sp, tuned.resumed_from or result.resumed_from
    result.selection = tuned.selection
    if sel.get("kept") == "head":
        return [f"fine-tuning did not beat the head-only model on {monitor} ({sel['fine_tuned']} vs "
                f"{sel['head']}): the head-only weights were restored"]
    return []


def evaluate(model: keras.Model, data, *, batch_size: int = 32, loss=None, metrics=None) -> dict:
    """``{"loss", <metric>: value}`` of ``model`` on ``data`` (the forms `fine_tune` takes); compiles
    the model with the default loss and metrics first if it is not compiled."""
    from tfxfer.train.data import as_dataset, first_labels
    from tfxfer.train.losses import compile_args

    ds = as_dataset(data, batch_size=batch_size, name="test")
    if not model.compiled:
        model.compile(optimizer="adam", **compile_args(model, first_labels(ds), loss=loss, metrics=metrics))
    return {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}


def _phase(checkpoint_dir, phase: str):
    return os.path.join(os.fspath(checkpoint_dir), phase) if checkpoint_dir is not None else None
