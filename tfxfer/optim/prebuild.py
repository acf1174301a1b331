"""Build a compiled model's optimizer before ``fit``, so the first training step is traced once.

Keras 3 on TensorFlow defers building the optimizer to the first trace of the train step when no
distribution strategy is set. The optimizer's slot variables are then created inside that trace, and
``tf.function`` traces the step a second time to run it without creating variables. On a large model
the doubled trace is most of the first step. `benchmarks/first_step.py` (2 AMD EPYC cores, each run a
fresh process) measured these first 1-step fits:

* EfficientNet-Lite0 at 224 px, all layers trainable: 33.7 s, and 16.1 s built first (0.48x).
* SmolLM2-135M with LoRA: 67.9 s, and 41.2 s built first (0.61x).

`build_optimizer` builds the optimizer on the variables the model trains now, which is what the train
step asks for. Given ``batch`` (the training data's ``element_spec``, or a batch), it builds the
compiled loss and metrics as well through Keras's own symbolic build, since their variables also
force the second trace. Call it right after ``compile``; a change of ``trainable`` between the two
needs a new ``compile`` anyway. A model that is not built yet (a subclassed model before its first
call) and was given no ``batch`` is left alone, because its variables do not exist: Keras then
builds in the trace as before. If the symbolic build fails, the step falls back to that too. Nothing
changes what is trained: only when the variables are made.

Example:
    >>> import keras, numpy as np
    >>> from tfxfer.optim.prebuild import build_optimizer
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> build_optimizer(model), model.optimizer.built
    (True, True)
    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensor_slices((np.ones((4, 2)), np.ones((4, 1)))).batch(2)
    >>> other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> other.compile(optimizer="adam", loss="mse", metrics=["mae"])
    >>> build_optimizer(other, batch=ds.element_spec), other.optimizer.built
    (True, True)
    >>> build_optimizer(model)  # already built: nothing to do
    False
    >>> model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0).history["loss"][0] > 0
    True
"""

from __future__ import annotations

import contextlib

__all__ = ["build_optimizer"]


def build_optimizer(model, *, batch=None) -> bool:
    """Build ``model.optimizer`` on ``model.trainable_variables`` in the model's distribution scope.
    With ``batch`` (an ``element_spec`` or a batch of ``(x, y[, sample_weight])``), also build the
    model, its compiled loss and its metrics. Return True if something was built now, and False if
    there was nothing to do: no optimizer, already built, or a model whose variables do not exist yet."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or getattr(optimizer, "built", True):
        return False
    strategy = getattr(model, "distribute_strategy", None)

    def scope():
        return strategy.scope() if strategy is not None else contextlib.nullcontext()

    symbolic = getattr(model, "_symbolic_build", None)  # Keras 3's own pre-fit build (used under a strategy)
    if batch is not None and symbolic is not None:
        try:
            with scope():
                symbolic(data_batch=batch)
            return True
        except Exception:  # a model whose call Keras cannot build symbolically: build what can be built
            if optimizer.built:
                return True
    if not getattr(model, "built", False):
        return False
    with scope():
        optimizer.build(model.trainable_variables)
    return True
