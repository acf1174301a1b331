"""When the target domain differs: detect the shift, then adapt to it.

* `detect_shift`: a two-sample test on the model's features (domain-classifier AUC and MMD with
  permutation p-values), per-class confidence drop and the expected target accuracy (`ShiftResult`).
* `adapt_batchnorm` (AdaBN): re-estimate BatchNorm moving statistics on unlabelled target data.
* `DeepCORAL` / `coral_loss`: align feature covariances; `DANN` / `GradientReversal`: a domain
  classifier trained through reversed gradients. Both wrap a plain ``keras.Model`` and train with
  ``fit`` on `adaptation_dataset`; ``.model`` is the clean inference model to export.
* `self_train`: confidence-thresholded pseudo-labelling rounds (`SelfTrainingResult`).
* `fit_coral_map` / `CoralMap` / `with_input_map`: closed-form CORAL on the head's input (a linear
  map giving target features the source's mean and covariance, or the other way round).
* `correct_label_shift` / `estimate_target_priors` / `fold_prior_correction`: EM-estimated target
  class priors and the Bayes correction folded into the output layer (label shift).
* `reverse_validation`: a score to choose methods and weights without target labels.
* Divergence (a NaN loss, pseudo-labels collapsing to one class) raises `AdaptationDivergedError`
  with the last good weights restored.

Example:
    >>> import numpy as np
    >>> from tfxfer.adapt import detect_shift
    >>> rng = np.random.default_rng(0)
    >>> detect_shift(None, rng.normal(size=(100, 4)), rng.normal(size=(100, 4)), permutations=300).shifted
    False
"""

from tfxfer.utils.lazy import lazy_exports as _lazy_exports

_EXPORTS = {
    "detect_shift": "tfxfer.adapt.shift",
    "ShiftResult": "tfxfer.adapt.shift",
    "ClassConfidence": "tfxfer.adapt.shift",
    "atc_estimate": "tfxfer.adapt.shift",
    "TwoSampleTest": "tfxfer.adapt.two_sample",
    "classifier_test": "tfxfer.adapt.two_sample",
    "mmd_test": "tfxfer.adapt.two_sample",
    "domain_features": "tfxfer.adapt.domain_data",
    "DomainFeatures": "tfxfer.adapt.domain_data",
    "adapt_batchnorm": "tfxfer.adapt.adabn",
    "BatchNormAdaptation": "tfxfer.adapt.adabn",
    "coral_loss": "tfxfer.adapt.coral",
    "DeepCORAL": "tfxfer.adapt.coral",
    "GradientReversal": "tfxfer.adapt.dann",
    "DANN": "tfxfer.adapt.dann",
    "adaptation_dataset": "tfxfer.adapt.trainer",
    "AdaptationDivergedError": "tfxfer.adapt.trainer",
    "self_train": "tfxfer.adapt.self_training",
    "SelfTrainingResult": "tfxfer.adapt.self_training",
    "CoralMap": "tfxfer.adapt.coral",
    "fit_coral_map": "tfxfer.adapt.feature_coral",
    "with_input_map": "tfxfer.adapt.feature_coral",
    "LabelShiftEstimate": "tfxfer.adapt.label_shift",
    "fold_prior_correction": "tfxfer.adapt.label_shift",
    "estimate_target_priors": "tfxfer.adapt.label_shift",
    "fit_temperature": "tfxfer.adapt.label_shift",
    "correct_label_shift": "tfxfer.adapt.label_shift",
    "reverse_validation": "tfxfer.adapt.selection",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports("tfxfer.adapt", _EXPORTS)
