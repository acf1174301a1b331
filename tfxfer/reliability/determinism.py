"""`enable_determinism`: seeded, deterministic training (same seed -> same metrics, same files).

TensorFlow is deterministic on CPU only when (1) every random source is seeded (Python, NumPy,
TensorFlow's global seed, Keras seed generators — `keras.utils.set_random_seed` does all four),
(2) ops with non-deterministic kernels are made deterministic or raise
(`tf.config.experimental.enable_op_determinism`), and (3) reductions do not depend on how many
threads race to add partial sums (inter-op parallelism 1 — set before TensorFlow starts running
ops; afterwards TensorFlow refuses to change it and this function says so in its result).

Limits: op determinism cannot be switched off again in the same process; tf.data is made
deterministic (``deterministic=True`` is the default), but datasets built with
``num_parallel_calls`` plus ``deterministic=False`` stay non-deterministic; multi-worker collectives
sum in a fixed order on CPU but float results may differ from single-worker training in the last
bits.

Example:
    >>> from tfxfer.reliability import enable_determinism
    >>> report = enable_determinism(1234)  # doctest: +SKIP
    >>> report["op_determinism"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os

from tfxfer.utils.validate import check_int


def enable_determinism(seed: int, *, single_threaded: bool = True) -> dict:
    """Seed every random source and make TensorFlow ops deterministic.

    Args:
        seed: the seed for Python, NumPy, TensorFlow and Keras (an int >= 0).
        single_threaded: also pin inter-op parallelism to 1 thread (needed for bit-identical
            reductions on some CPU kernels). Only possible before TensorFlow has run an op; if it
            is too late, the result's ``"inter_op_threads"`` says what is in force.

    Returns:
        A dict describing what is in force: ``seed``, ``op_determinism``, ``inter_op_threads``,
        ``intra_op_threads`` and ``threads_pinned`` (False when TensorFlow was already running).

    Example:
        >>> from tfxfer.reliability.determinism import enable_determinism
        >>> enable_determinism(7)["seed"]  # doctest: +SKIP
        7
    """
    seed = check_int("seed", seed, low=0)
    os.environ["PYTHONHASHSEED"] = str(seed)  # for subprocesses this process starts
    os.environ["TF_DETERMINISTIC_OPS"] = "1"
    import keras
    import tensorflow as tf

    pinned = False
    if single_threaded:
        try:
            tf.config.threading.set_inter_op_parallelism_threads(1)
            pinned = True
        except RuntimeError:  # TensorFlow already initialised its thread pools
            pinned = tf.config.threading.get_inter_op_parallelism_threads() == 1
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return {
        "seed": seed,
        "op_determinism": True,
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "threads_pinned": pinned,
    }
