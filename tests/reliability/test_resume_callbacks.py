"""What a resumed or interrupted run does with the callbacks and the data pipeline around it: a
learning-rate log added on resume starts afresh (the best epoch is still restored), a saved state no
callback takes is a clear error, an interrupted fit never leaves a pipeline on one order, and
augmentation passed to a loader or to fine_tune is reseeded by epoch."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfxfer.errors import ModelError
from tfxfer.recipes.training_log import LearningRateLog
from tfxfer.reliability import ResumableCheckpoint
from tfxfer.reliability.shuffle import attached_shuffle
from tfxfer.train.best import RestoreBest


def _fit(directory, callbacks, epochs=2):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    ckpt = ResumableCheckpoint(directory, stateful=callbacks, background=False)
    x = np.linspace(0, 1, 24, dtype="float32").reshape(8, 3)
    model.fit(x, x[:, :1], validation_data=(x, x[:, :1]), epochs=epochs, initial_epoch=ckpt.initial_epoch,
              batch_size=4, verbose=0, callbacks=[*callbacks, ckpt])
    return ckpt


def test_a_callback_added_on_resume_starts_afresh_and_a_missing_one_is_a_clear_error(tmp_path):
    directory = str(tmp_path / "ckpt")
    first = RestoreBest("val_loss", directory=directory + "/best")
    _fit(directory, [first], epochs=1)
    keeper, log = RestoreBest("val_loss", directory=directory + "/best"), LearningRateLog()
    with pytest.warns(UserWarning, match=r"no state for \['LearningRateLog'\].*start afresh"):
        _fit(directory, [keeper, log], epochs=2)
    assert keeper.best_epoch is not None and len(log.steps) == 2  # the resumed epoch only
    with pytest.raises(ModelError, match=r"none for \['LearningRateLog'\].*fresh checkpoint folder"):
        _fit(directory, [RestoreBest("val_loss", directory=directory + "/best")], epochs=3)


def _pipeline(seed=0, augment=None):
    from tfxfer.data import image_dataset_from_arrays

    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (16, 16, 16, 3)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 127).astype("int64")
    return image_dataset_from_arrays(x, y, batch_size=4, seed=seed, augment=augment, validation_split=0.25).train


def _tiny():
    from tests.factories import tiny_model, tiny_spec

    keras.utils.set_random_seed(0)
    return tiny_model(2, backbone=tiny_spec("mobilenet_v2"), size=16)


def test_an_interrupted_fine_tune_leaves_the_pipeline_free_running(tmp_path):
    from tfxfer.train.fine_tune import fine_tune

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    train = _pipeline()
    with pytest.raises(KeyboardInterrupt):
        fine_tune(_tiny(), train, head_epochs=1, epochs=1, use_cached_features=False, verbose=0,
                  callbacks=[Interrupt()])
    assert not attached_shuffle(train).driven
    orders = {tuple(np.concatenate([y.numpy() for _, y in train])) for _ in range(4)}
    assert len(orders) > 1


def test_augmentation_of_a_loader_and_of_fine_tune_is_reseeded_by_epoch():
    from tfxfer.train.fine_tune import fine_tune

    train = _pipeline(augment="light")
    shuffle = attached_shuffle(train)
    assert len(shuffle._epoch_hooks) == 1  # the loader's own augmentation

    shuffle.on_epoch_begin(2)  # runs the hook: the layers' random state set from (seed, epoch)
    assert next(iter(train))[0].shape == (4, 16, 16, 3)
    plain = _pipeline()
    fine_tune(_tiny(), plain, head_epochs=1, epochs=1, use_cached_features=False, augment="light", verbose=0)
    assert len(attached_shuffle(plain)._epoch_hooks) == 1  # fine_tune's augmentation reseeded through it


def test_a_finished_head_step_hands_back_its_best_epoch_when_a_log_is_added(tmp_path):
    from tests.factories import tiny_images, tiny_model, tiny_spec
    from tfxfer.train.fine_tune import fine_tune

    x, y = tiny_images(48, size=16, classes=3, signal="mean_colour")

    def run(callbacks=()):
        keras.utils.set_random_seed(0)
        model = tiny_model(3, backbone=tiny_spec("mobilenet_v2"), size=16, dropout=0.0)
        result = fine_tune(model, (x, y), val=(x[:12], y[:12]), head_epochs=5, epochs=0, batch_size=8,
                           base_lr=20.0, verbose=0, seed=0, checkpoint_dir=str(tmp_path / "ckpt"),
                           callbacks=list(callbacks))
        return model, result

    finished, first = run()
    assert first.steps[0]["best_epoch"] != 4  # the best epoch is not the last: restoring it matters
    again, second = run([LearningRateLog()])
    for a, b in zip(finished.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert second.steps[0]["best_epoch"] == first.steps[0]["best_epoch"]


def test_a_pipeline_derived_from_a_tfxfer_one_is_still_driven_by_epoch():
    """``.map`` / ``.take`` on a tfxfer pipeline keep its epoch-keyed shuffle: fine_tune drives it
    (what makes the resumed batches those of the uninterrupted run)."""
    from tfxfer.train.fine_tune import fine_tune

    train = _pipeline()
    derived = train.map(lambda x, y: (x, y)).take(6)
    assert attached_shuffle(derived) is attached_shuffle(train)
    epochs = []
    attached_shuffle(train).add_epoch_hook(epochs.append)
    fine_tune(_tiny(), derived, head_epochs=1, epochs=2, use_cached_features=False, verbose=0)
    assert epochs == [0, 1, 2] and not attached_shuffle(train).driven


def test_resuming_on_a_pipeline_that_reshuffles_itself_warns_and_notes_it(tmp_path):
    import tensorflow as tf

    from tests.factories import tiny_images
    from tfxfer.train.fine_tune import fine_tune

    x, y = tiny_images(16, size=16, classes=2, signal="mean_colour")
    own = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(16).batch(4)
    kwargs = dict(head_epochs=1, epochs=1, use_cached_features=False, verbose=0,
                  checkpoint_dir=str(tmp_path / "ckpt"))
    first = fine_tune(_tiny(), own, **kwargs)
    assert first.resumed_from is None and not any("reshuffles itself" in n for n in first.notes)
    with pytest.warns(UserWarning, match="reshuffles itself"):
        again = fine_tune(_tiny(), own, **kwargs)
    assert again.resumed_from and any("reshuffles itself" in n for n in again.notes)
