"""tfxfer: transfer learning for Keras 3 / TensorFlow, from pretrained backbone to verified edge model.

Importing tfxfer registers its Keras classes (Preprocess, optimizers, text layers, ...) as soon as
Keras is loaded, so ``keras.saving.load_model`` reads any model tfxfer saved.

The common entry points are importable from the top level (loaded lazily, so ``import tfxfer``
stays cheap until TensorFlow is actually needed):

    >>> import tfxfer
    >>> model = tfxfer.build_model("mobilenet_v2", 3, input_size=(32, 32), weights=None)
    >>> "efficientnet_lite0" in tfxfer.list_backbones()
    True
"""

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from tfxfer.utils.lazy import lazy_exports as _lazy_exports  # noqa: E402  (after the environment defaults)

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "tfxfer.models",
    "feature_model": "tfxfer.models",
    "get_backbone": "tfxfer.backbones",
    "get_spec": "tfxfer.backbones",
    "list_backbones": "tfxfer.backbones",
    "BackboneSpec": "tfxfer.backbones",
    "Preprocess": "tfxfer.preprocess",
    "freeze_backbone": "tfxfer.freezing",
    "unfreeze": "tfxfer.freezing",
    "layer_groups": "tfxfer.backbones",
    "trainable_summary": "tfxfer.freezing",
    "GradualUnfreezing": "tfxfer.freezing",
    "WarmupSchedule": "tfxfer.optim",
    "DiscriminativeAdam": "tfxfer.optim",
    "DiscriminativeAdamW": "tfxfer.optim",
    "DiscriminativeSGD": "tfxfer.optim",
    "layerwise_decay": "tfxfer.optim",
    "group_multipliers": "tfxfer.optim",
    "lr_find": "tfxfer.optim",
    "fine_tune": "tfxfer.train.fine_tune",
    "extract_features": "tfxfer.train.head",
    "train_head_on_features": "tfxfer.train.head",
    "export_tflite": "tfxfer.export",
    "export_all": "tfxfer.export",
    "export_saved_model": "tfxfer.export",
    "verify": "tfxfer.export",
    "preflight": "tfxfer.export",
    "benchmark_tflite": "tfxfer.export",
    "rank_backbones": "tfxfer.transfer",
    "probe_backbone": "tfxfer.transfer",
    "attach_l2sp": "tfxfer.optim",
    "L2SP": "tfxfer.optim",
    "export_student": "tfxfer.distill",
    "retention_report": "tfxfer.distill",
    "train_qat": "tfxfer.quantize",
    "selective_int8": "tfxfer.quantize",
    "to_tf_keras": "tfxfer.quantize",
}

_SUBPACKAGES = ("adapt", "augment", "backbones", "data", "distill", "export", "fairness", "freezing", "optim",
                "recipes", "quantize", "reliability", "report", "text", "train", "transfer")

__all__ = sorted(_EXPORTS) + list(_SUBPACKAGES) + ["__version__"]


__getattr__, __dir__ = _lazy_exports('tfxfer', _EXPORTS, subpackages=_SUBPACKAGES)

# Last: tfxfer's Keras classes are registered now if Keras is loaded, else as soon as it is
# (tfxfer/_registration.py), so a saved model loads after a bare ``import tfxfer``.
from tfxfer import _registration  # noqa: E402

_registration.install()
