"""tf_keras twins of layers that tf_keras does not have (built lazily, tf_keras is optional).

* ``Preprocess``: `tfxfer.preprocess.Preprocess` (raw 0-255 pixels -> backbone scaling).
* ``HardSwish``: ``x * relu6(x + 3) / 6`` (Keras 3's ``hard_silu`` / ``hard_swish`` activation).
* ``KerasOp``: a Keras 3 operation applied to symbolic tensors in a functional graph
  (``x + 3.0`` in MobileNetV3), replayed on TensorFlow tensors.
"""

from __future__ import annotations

import functools
import types
import uuid

from tfxfer.preprocess import preprocess_pixels
from tfxfer.quantize._deps import tf_keras

_OPS: dict = {}  # KerasOp key -> (operation, args, kwargs, tensor positions)


@functools.lru_cache(maxsize=1)
def tfk_layers() -> types.SimpleNamespace:
    """The tf_keras layer classes, created on first use."""
    import tensorflow as tf

    tfk = tf_keras()

    class Preprocess(tfk.layers.Layer):
        def __init__(self, mode="none", expand_grayscale=True, **kwargs):
            super().__init__(**kwargs)
            self.mode = mode
            self.expand_grayscale = bool(expand_grayscale)

        def call(self, inputs):  # the same computation as the Keras 3 layer (TensorFlow tensors either way)
            return preprocess_pixels(inputs, self.mode, expand_grayscale=self.expand_grayscale,
                                     dtype=self.compute_dtype)

        def get_config(self):
            return dict(super().get_config(), mode=self.mode, expand_grayscale=self.expand_grayscale)

    class HardSwish(tfk.layers.Layer):
        def call(self, inputs):
            return inputs * tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)

    class KerasOp(tfk.layers.Layer):
        """Replays ``operation(*args, **kwargs)``; tensors come in as a flat list, constants are kept.

        The operation is not serializable, so the config holds a key into a per-process table:
        enough for the clones TFMOT makes, not for saving to disk.
        """

        def __init__(self, operation=None, args=(), kwargs=None, positions=(), op_key=None, **kw):
            super().__init__(**kw)
            if op_key is not None:
                operation, args, kwargs, positions = _OPS[op_key]
            else:
                op_key = uuid.uuid4().hex
                _OPS[op_key] = (operation, args, kwargs or {}, list(positions))
            self.op_key = op_key
            self.operation, self.args, self.op_kwargs, self.positions = operation, args, kwargs or {}, positions

        def get_config(self):
            return dict(super().get_config(), op_key=self.op_key)

        def call(self, tensors):
            tensors = tensors if isinstance(tensors, (list, tuple)) else [tensors]
            flat = list(tf.nest.flatten((self.args, self.op_kwargs)))
            for position, tensor in zip(self.positions, tensors):
                flat[position] = tensor
            args, kwargs = tf.nest.pack_sequence_as((self.args, self.op_kwargs), flat)
            return self.operation(*args, **kwargs)

    return types.SimpleNamespace(Preprocess=Preprocess, HardSwish=HardSwish, KerasOp=KerasOp)
