"""tf_keras twins of layers that tf_keras does not have (built lazily, tf_keras is optional).

* ``Preprocess``: `tfxfer.layers.Preprocess` (raw 0-255 pixels -> backbone scaling).
* ``HardSwish``: ``x * relu6(x + 3) / 6`` (Keras 3's ``hard_silu`` / ``hard_swish`` activation).
* ``KerasOp``: a Keras 3 operation applied to symbolic tensors in a functional graph
  (``x + 3.0`` in MobileNetV3), replayed on TensorFlow tensors.
"""

from __future__ import annotations

import functools
import types
import uuid

from tfxfer.quantize._deps import tf_keras

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
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

        def call(self, inputs):
            x = tf.cast(inputs, self.compute_dtype)
            if self.expand_grayscale and x.shape[-1] == 1:
                x = tf.concat([x, x, x], axis=-1)
            if self.mode == "tf":
                return x / 127.5 - 1.0
            if self.mode == "unit":
                return x / 255.0
            if self.mode == "lite":
                return (x - 127.0) / 128.0
            if self.mode == "torch":
                return (x / 255.0 - tf.constant(_IMAGENET_MEAN, x.dtype)) / tf.constant(_IMAGENET_STD, x.dtype)
            if self.mode == "caffe":
                return tf.reverse(x, axis=[-1]) - tf.constant(_CAFFE_MEAN_BGR, x.dtype)
            return x

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
