"""`EpochShuffle`: a dataset order that depends only on (seed, epoch), so a resumed run sees the
same batches in the same order as an uninterrupted one.

``Dataset.shuffle(seed=s)`` reshuffles on every new iterator, and Keras creates more than one
iterator per epoch (measured: two in Keras 3.15), so after a restart the order of epoch *k* cannot
be recovered by counting. `EpochShuffle` instead re-creates the shuffle each epoch with a seed
derived from the epoch number, which it learns as a Keras callback (``on_epoch_begin``).

It also makes every worker of a multi-worker run see the same global order (each keeps its share).

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfxfer.reliability import EpochShuffle
    >>> shuffle = EpochShuffle(seed=3)
    >>> ds = shuffle.apply(tf.data.Dataset.range(6), buffer_size=6)
    >>> first = [int(v) for v in ds]
    >>> first == [int(v) for v in ds]  # same epoch -> same order
    True
    >>> shuffle.set_epoch(1); sorted(int(v) for v in ds) == list(range(6))
    True
"""

from __future__ import annotations

import keras

from tfxfer.errors import ArgumentTypeError
from tfxfer.utils.validate import check_int

_EPOCH_STRIDE = 1_000_003


@keras.saving.register_keras_serializable(package="tfxfer")
class EpochShuffle(keras.callbacks.Callback):
    """Epoch-keyed shuffling for ``tf.data`` pipelines; add the object to ``fit``'s callbacks.

    Args:
        seed: base seed (an int >= 0). The order of epoch ``e`` depends on ``seed`` and ``e`` only
            (not on TensorFlow's global seed, not on how many iterators were made before).
    """

    def __init__(self, seed: int = 0):
        super().__init__()
        self.seed = check_int("seed", seed, low=0)
        self._epoch = None

    @property
    def epoch_variable(self):
        if self._epoch is None:
            import tensorflow as tf

            with tf.init_scope():
                self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_shuffle_epoch")
        return self._epoch

    def apply(self, dataset, *, buffer_size: int):
        """``dataset`` (unbatched) shuffled with a buffer of ``buffer_size`` in an epoch-keyed order."""
        import tensorflow as tf

        if not isinstance(dataset, tf.data.Dataset):
            raise ArgumentTypeError("dataset", dataset, "a tf.data.Dataset (unbatched)")
        buffer_size = check_int("buffer_size", buffer_size, low=1)
        epoch = self.epoch_variable
        seed = int(self.seed)

        def per_epoch(_):
            # The graph-level seed of this function's own graph: the order then depends on
            # (seed, epoch) only, not on TensorFlow's global seed (and never on a seed of 0, which
            # TensorFlow's seed logic cannot combine with a tensor op seed).
            tf.compat.v1.set_random_seed(seed % (2**31 - 2) + 1)
            s = epoch.read_value() * _EPOCH_STRIDE + 1
            return dataset.shuffle(buffer_size, seed=s, reshuffle_each_iteration=False)

        out = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(per_epoch)
        cardinality = int(dataset.cardinality())
        if cardinality >= 0:
            out = out.apply(tf.data.experimental.assert_cardinality(cardinality))
        return out

    def set_epoch(self, epoch: int) -> None:
        """Select the order of ``epoch`` for iterators created from now on."""
        self.epoch_variable.assign(int(epoch))

    def on_epoch_begin(self, epoch, logs=None):
        self.set_epoch(epoch)

    def get_config(self):
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
