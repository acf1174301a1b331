"""Staged unfreezing really takes effect mid-fit; frozen weights and BN statistics stay put."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tests.helpers import weights_by_path
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.freezing import GradualUnfreezing, group_names, layer_groups
from tfxfer.backbones import get_backbone


class _Snapshots(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.snaps = []

    def on_epoch_end(self, epoch, logs=None):
        backbone = get_backbone(self.model)
        self.snaps.append(weights_by_path(backbone.layers))


def _moved(a, b, paths):
    return {p for p in paths if not np.array_equal(a[p], b[p])}


def _model(**kwargs):
    """MobileNetV2's groups and layer names on the factories' ~1k-parameter look-alike (its "top" group holds
    Conv_1, "block13_16" block_16_project and block_16_project_BN): the same stages, far cheaper steps."""
    return tiny_model(2, backbone=tiny_spec("mobilenet_v2"), **kwargs)


def _fit_with(callback, *, epochs=3, bn_policy="frozen"):
    model = _model(dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    before = weights_by_path(get_backbone(model).layers)
    snaps = _Snapshots()
    x, y = tiny_images(16)
    model.fit(x, y, epochs=epochs, batch_size=8, callbacks=[callback, snaps], verbose=0)
    return model, before, snaps.snaps


def test_newly_unfrozen_weights_move_and_frozen_ones_stay_bit_identical():
    cb = GradualUnfreezing({0: 0, 1: 1, 2: 2}, learning_rates={0: 1e-2, 1: 1e-2, 2: 1e-2}, verbose=0)
    model, before, snaps = _fit_with(cb)
    names = group_names(model)
    groups = layer_groups(model)
    paths = lambda g: {v.path for l in groups[g] for v in l.weights}  # noqa: E731
    bn_paths = {v.path for l in get_backbone(model).layers
                if isinstance(l, keras.layers.BatchNormalization) for v in l.weights}
    top, second = names[-2], names[-3]
    all_paths = set(before)
    # Epoch 0: head only -> backbone bit-identical.
    assert _moved(before, snaps[0], all_paths) == set()
    # Epoch 1: the top group's (non-BN) weights move, nothing else does.
    moved1 = _moved(snaps[0], snaps[1], all_paths)
    assert moved1 == paths(top) - bn_paths
    # Epoch 2: the second group joins.
    moved2 = _moved(snaps[1], snaps[2], all_paths)
    assert moved2 == (paths(top) | paths(second)) - bn_paths
    # Everything below stays bit-identical, and BN moving statistics never change.
    untouched = all_paths - paths(top) - paths(second)
    assert _moved(before, snaps[2], untouched | bn_paths) == set()
    assert [h["stage"] for h in cb.history] == [0, 1, 2]


def test_flipping_trainable_without_the_callback_is_silently_ignored():
    """The Keras trap this callback exists for (DESIGN.md point 4)."""

    class NaiveUnfreeze(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                get_backbone(self.model).trainable = True

    model, before, snaps = _fit_with(NaiveUnfreeze(), epochs=2)
    assert _moved(before, snaps[1], set(before)) == set()


def test_bn_policy_train_updates_statistics_of_unfrozen_bn():
    cb = GradualUnfreezing({0: 2}, bn_policy="train", verbose=0)  # the look-alike's top-2 groups hold a BN layer
    model, before, snaps = _fit_with(cb, epochs=1)
    key = "block_16_project_BN/moving_mean"
    assert not np.array_equal(before[key], snaps[0][key])


def test_stage_learning_rates_with_warmup_are_replanned_per_stage():
    cb = GradualUnfreezing({0: 0, 2: 1}, learning_rates={0: 1e-3, 2: 1e-4}, warmup_epochs=1, verbose=0)
    model, _, _ = _fit_with(cb, epochs=4)
    schedule = model.optimizer._learning_rate
    assert schedule.peak_learning_rate == pytest.approx(1e-4)
    assert schedule.warmup_steps == 2  # one epoch of two steps
    assert schedule.decay_steps == 2  # the rest of the stage
    assert int(model.optimizer.iterations.numpy()) == 4  # fresh state at the stage start


def test_resume_applies_the_stage_in_force():
    model = _model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cb = GradualUnfreezing({0: 0, 1: 1, 3: 2}, verbose=0)
    x, y = tiny_images(8)
    model.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, callbacks=[cb], verbose=0)
    assert cb.current_stage == 1 and cb.history[0]["epoch"] == 2


def test_config_round_trip():
    cb = GradualUnfreezing({0: 0, 2: ["top"]}, learning_rates={2: 1e-4}, warmup_epochs=1, layer_decay=0.5)
    clone = GradualUnfreezing.from_config(cb.get_config())
    assert clone.get_config() == cb.get_config()
    assert clone.schedule == {0: 0, 2: ["top"]}


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        (({},), {}, ArgumentTypeError, "`schedule` must be a non-empty dict"),
        (({0: "top"},), {}, ArgumentError, "values must be an int"),
        (({-1: 1},), {}, ArgumentError, "epochs >= 0"),
        (({0: 1},), {"learning_rates": {3: 1e-3}}, ArgumentError, "must use epochs that start a stage"),
        (({0: 1},), {"layer_decay": 2.0}, ArgumentError,
         r"`layer_decay` must be a finite number in \(0, 1\] or None. Received: layer_decay=2.0"),
        (({0: 1},), {"warmup_epochs": -1}, ArgumentError, r"`warmup_epochs` must be an int >= 0. Received: warmup_epochs=-1"),
        (({0: 1},), {"learning_rates": {0: 0.0}}, ArgumentError, r"`learning_rates\[0\]` must be a finite number > 0"),
        (({0: 1},), {"bn_policy": "x"}, ArgumentError, "`bn_policy`"),
    ],
)
def test_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        GradualUnfreezing(*args, **kwargs)
