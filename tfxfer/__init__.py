"""tfxfer: transfer learning for Keras 3 / TensorFlow, from pretrained backbone to verified edge model."""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
