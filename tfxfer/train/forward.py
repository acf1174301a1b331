"""A model's inference-mode forward pass as one ``tf.function``, traced once for every batch size.

A ``tf.function`` with ``reduce_retracing=True`` traces twice over a data set: for the full batch, then
again, with the batch dimension relaxed, for the smaller last batch. `Forward` traces once, with the
batch dimension open, on the first batch it is given, and every batch size (and every later data set of
the same structure) runs on that trace. Weights are read when it runs: training in between is seen.

Example:
    >>> import keras, numpy as np
    >>> from tfxfer.train.forward import Forward
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> forward = Forward(model)
    >>> [forward(np.ones((n, 3), "float32")).shape[0] for n in (4, 4, 1)], forward.traces
    ([4, 4, 1], 1)
"""

from __future__ import annotations

import tensorflow as tf


def any_batch_size(x):
    """The ``tf.TensorSpec`` structure of batch ``x`` (tensors, arrays, or a dict / tuple of them) with its
    batch dimension left open."""
    return tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), x)


class Forward:
    """``model(x, training=False)`` as a ``tf.function`` traced once for any batch size."""

    def __init__(self, model):
        self._function = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        self._traced = False

    def __call__(self, x):
        if not self._traced:  # a later batch of another structure still runs: it is traced then
            self._function.get_concrete_function(any_batch_size(x))
            self._traced = True
        return self._function(x)

    @property
    def traces(self) -> int:
        """How many times the function was traced."""
        return self._function.experimental_get_tracing_count()
