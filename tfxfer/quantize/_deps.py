"""Lazy imports of tf_keras and TFMOT: the only place tfxfer touches either package.

tf_keras (Keras 2) and tensorflow-model-optimization are imported on first use inside
`tfxfer.quantize`, never at import time, so the rest of tfxfer works without them. Importing TFMOT
sets ``TF_USE_LEGACY_KERAS=1`` for the whole process (and for every subprocess it starts) and
makes ``tf.keras`` resolve to tf_keras; tfxfer never uses ``tf.keras``, and `tfmot` puts the
environment variable back as it was so child processes are not switched too.
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings

from tfxfer.errors import MissingDependencyError

TF_KERAS_INSTALL = "pip install 'tf-keras==2.21.*'"
TFMOT_INSTALL = "pip install 'tf-keras==2.21.*' 'tensorflow-model-optimization==0.8.1'"


@functools.lru_cache(maxsize=1)
def tf_keras():
    """The ``tf_keras`` module, or `MissingDependencyError` naming the install command."""
    try:
        return importlib.import_module("tf_keras")
    except ImportError as exc:
        raise MissingDependencyError(
            "tf-keras", TF_KERAS_INSTALL, "the tf_keras bridge of tfxfer.quantize (QAT, pruning, clustering)"
        ) from exc


@functools.lru_cache(maxsize=1)
def tfmot():
    """The ``tensorflow_model_optimization`` module, or `MissingDependencyError` naming the install command."""
    tf_keras()
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        with warnings.catch_warnings():  # TFMOT 0.8.1 compares versions with deprecated distutils
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module("tensorflow_model_optimization")
    except ImportError as exc:
        raise MissingDependencyError(
            "tensorflow-model-optimization", TFMOT_INSTALL,
            "quantization-aware training, pruning and clustering in tfxfer.quantize",
        ) from exc
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return module
