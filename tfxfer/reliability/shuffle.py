"""`EpochShuffle`: a dataset order that depends only on (seed, epoch), so a resumed run sees the
same batches in the same order as an uninterrupted one.

``Dataset.shuffle(seed=s)`` reshuffles on every new iterator, and Keras creates more than one
iterator per epoch (measured: two in Keras 3.15), so after a restart the order of epoch *k* cannot
be recovered by counting. `EpochShuffle` instead re-creates the shuffle each epoch with a seed
derived from the epoch number, which it learns as a Keras callback (``on_epoch_begin``).

It also makes every worker of a multi-worker run see the same global order (each keeps its share).

Until a callback sets the epoch (a plain ``model.fit`` without it, ``next(iter(ds))``), the order is
free-running: each new iterator gets the next order of a seeded sequence, as
``shuffle(seed=s, reshuffle_each_iteration=True)`` does. ``on_train_end`` returns to that mode.
The pipelines of `tfxfer.data` carry one (`attached_shuffle`); `tfxfer.fine_tune` drives it, so a
resumed run on a folder or CSV source sees the batches of the uninterrupted one.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> from tfxfer.reliability import EpochShuffle
    >>> shuffle = EpochShuffle(seed=3)
    >>> ds = shuffle.apply(tf.data.Dataset.range(6), buffer_size=6)
    >>> shuffle.set_epoch(0)  # what fine_tune's on_epoch_begin does
    >>> first = [int(v) for v in ds]
    >>> first == [int(v) for v in ds]  # same epoch -> same order
    True
    >>> shuffle.set_epoch(1); sorted(int(v) for v in ds) == list(range(6))
    True
    >>> shuffle.release()  # free-running: each new iterator the next order
    >>> [int(v) for v in ds] == [int(v) for v in ds]
    False
    >>> with shuffle.fixed():  # a fixed order for one read (features, calibration)
    ...     [int(v) for v in ds] == [int(v) for v in ds]
    True
"""

from __future__ import annotations

import contextlib
import random

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
        self._epoch = self._driven = self._iterations = None
        self._epoch_hooks = []  # called with the epoch at on_epoch_begin (augmentation reseeding)

    def _variables(self):
        if self._epoch is None:
            import tensorflow as tf

            with tf.init_scope():
                self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_shuffle_epoch")
                self._driven = tf.Variable(False, trainable=False, name="epoch_shuffle_driven")
                self._iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch_shuffle_iterations")
        return self._epoch, self._driven, self._iterations

    @property
    def epoch_variable(self):
        return self._variables()[0]

    @property
    def driven(self) -> bool:
        """True while a callback (or `set_epoch`) chooses the order; False: free-running."""
        return bool(self._variables()[1].numpy())

    def apply(self, dataset, *, buffer_size: int):
        """``dataset`` (unbatched) shuffled with a buffer of ``buffer_size`` in an epoch-keyed order."""
        import tensorflow as tf

        if not isinstance(dataset, tf.data.Dataset):
            raise ArgumentTypeError("dataset", dataset, "a tf.data.Dataset (unbatched)")
        buffer_size = check_int("buffer_size", buffer_size, low=1)
        epoch, driven, iterations = self._variables()
        seed = int(self.seed)

        def per_epoch(_):
            # The graph-level seed of this function's own graph: the order then depends on
            # (seed, epoch) only, not on TensorFlow's global seed (and never on a seed of 0, which
            # TensorFlow's seed logic cannot combine with a tensor op seed).
            tf.compat.v1.set_random_seed(seed % (2**31 - 2) + 1)
            count = iterations.assign_add(1)  # free-running: the n-th iterator's order
            s = tf.where(driven.read_value(), epoch.read_value() * _EPOCH_STRIDE + 1, count * _EPOCH_STRIDE + 2)
            return dataset.shuffle(buffer_size, seed=s, reshuffle_each_iteration=False)

        out = tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(per_epoch)
        cardinality = int(dataset.cardinality())
        if cardinality >= 0:
            out = out.apply(tf.data.experimental.assert_cardinality(cardinality))
        return out

    def set_epoch(self, epoch: int) -> None:
        """Select the order of ``epoch`` for iterators created from now on."""
        epoch_var, driven, _ = self._variables()
        epoch_var.assign(int(epoch))
        driven.assign(True)

    def release(self) -> None:
        """Back to free-running orders (each new iterator the next one)."""
        self._variables()[1].assign(False)

    @contextlib.contextmanager
    def fixed(self, epoch: int = 0):
        """Within the block, iterators read the order of ``epoch`` (what a one-off read such as feature
        extraction or an int8 calibration sample needs to be the same in a resumed run); the mode
        and epoch before the block come back after it."""
        epoch_var, driven, _ = self._variables()
        before = (int(epoch_var.numpy()), bool(driven.numpy()))
        self.set_epoch(epoch)
        try:
            yield self
        finally:
            epoch_var.assign(before[0])
            driven.assign(before[1])

    def add_epoch_hook(self, hook) -> None:
        """Call ``hook(epoch)`` at every ``on_epoch_begin`` (e.g. to reseed the random augmentation
        of the pipeline by epoch, so a resumed run draws the same augmentations)."""
        self._epoch_hooks.append(hook)

    def on_epoch_begin(self, epoch, logs=None):
        self.set_epoch(epoch)
        for hook in self._epoch_hooks:
            hook(int(epoch))

    def on_train_end(self, logs=None):
        self.release()

    def get_config(self):
        return {"seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


_ATTRIBUTE = "_tfxfer_epoch_shuffle"


def attach_shuffle(dataset, shuffle: EpochShuffle):
    """Record that ``dataset`` is ordered by ``shuffle`` (returns ``dataset``); `attached_shuffle`
    finds it, and `carry_shuffle` passes it on to a dataset derived from it."""
    setattr(dataset, _ATTRIBUTE, shuffle)
    return dataset


def attached_shuffle(dataset) -> EpochShuffle | None:
    """The `EpochShuffle` that orders ``dataset`` (a pipeline of `tfxfer.data`, or one derived from it
    with ``map``, ``take``, ``batch``, ``zip``...; the first one found upstream), or None."""
    for node in _upstream(dataset):
        shuffle = getattr(node, _ATTRIBUTE, None)
        if shuffle is not None:
            return shuffle
    return None


def reshuffles_itself(dataset) -> bool:
    """True when ``dataset`` (a ``tf.data.Dataset``) holds a ``Dataset.shuffle`` that reshuffles on
    every iterator and no `EpochShuffle` orders it: its epoch order then depends on how many iterators
    the process made, and a resumed run sees other batches than an uninterrupted one."""
    if attached_shuffle(dataset) is not None:
        return False
    return any(getattr(node, "_reshuffle_each_iteration", False) is True for node in _upstream(dataset))


def _upstream(dataset, limit: int = 256):
    """``dataset`` and the datasets it is made from, nearest first (at most ``limit``; a dataset whose
    inputs cannot be listed ends its branch)."""
    seen, queue = set(), [dataset]
    while queue and len(seen) < limit:
        node = queue.pop(0)
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        try:
            queue.extend(node._inputs())  # tf.data's own graph walk (every Dataset implements it)
        except Exception:  # noqa: BLE001 - a foreign or distributed dataset: its ancestry stays unknown
            continue


def carry_shuffle(source, derived):
    """``derived`` (made from ``source`` by map/prefetch/...) ordered by the same shuffle as ``source``."""
    shuffle = attached_shuffle(source)
    return attach_shuffle(derived, shuffle) if shuffle is not None else derived


def fixed_order(dataset, epoch: int = 0):
    """A context in which ``dataset`` is read in one fixed order (`EpochShuffle.fixed`); a no-op for
    a dataset without an attached shuffle."""
    shuffle = attached_shuffle(dataset)
    return shuffle.fixed(epoch) if shuffle is not None else contextlib.nullcontext()


def new_seed(seed) -> int:
    """``seed`` checked (an int >= 0), or a random one for None (an unseeded pipeline)."""
    return random.SystemRandom().randrange(2**31 - 1) if seed is None else check_int("seed", seed, low=0)
