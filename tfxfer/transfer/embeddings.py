"""One pass of a candidate backbone over the data: pooled features and, if it has one, the
source (ImageNet) head's class probabilities for LEEP and NCE.

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer.candidates import Candidate
    >>> from tfxfer.transfer.embeddings import candidate_features
    >>> images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 1)).astype("float32")
    >>> out = candidate_features(Candidate("mobilenet_v2", weights=None), images, input_size=(32, 32))
    >>> out.features.shape, out.source_probs.shape
    ((4, 1280), (4, 1000))
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

import keras
import numpy as np

from tfxfer.errors import ModelError
from tfxfer.preprocess import Preprocess
from tfxfer.transfer.candidates import Candidate


#: Images resized and run per `predict` call in `candidate_features`.
CHUNK = 512


@dataclasses.dataclass
class CandidateFeatures:
    """Pooled features (N, D), source probabilities (N, Z) or None, and why they are missing."""

    features: np.ndarray
    source_probs: np.ndarray | None
    note: str = ""


def resize_batch(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a (B, H, W, C) batch of raw pixels to ``size``; a no-op at that size."""
    if tuple(images.shape[1:3]) == tuple(size):
        return images.astype("float32", copy=False)
    import tensorflow as tf

    return tf.image.resize(images.astype("float32", copy=False), size, method="bilinear").numpy()


def _source_head_model(candidate: Candidate, shape: tuple[int, int, int]) -> keras.Model:
    """The full ImageNet classifier rewired to return (pooled features, class probabilities)."""
    spec = candidate.spec
    if candidate.weights in (None, "imagenet"):
        top = spec.top_builder((*shape[:2], 3), candidate.weights)
    else:  # a local file of the full ImageNet classifier (a *_notop file fails here: no head in it)
        top = spec.top_builder((*shape[:2], 3), None)
        with warnings.catch_warnings():  # a partial load would leave fresh weights behind: refuse it instead
            warnings.filterwarnings("error", message="Skipping")
            top.load_weights(str(candidate.weights))
        if spec.after_load is not None:
            spec.after_load(top)
    dense = [layer for layer in top.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ModelError(f"The ImageNet model of {spec.name!r} has no Dense classifier")
    classifier = dense[-1]
    two_outputs = keras.Model(top.inputs, [classifier.input, top.outputs[0]], name=f"{spec.name}_source")
    inputs = keras.Input(shape=shape, name="image")
    pooled, probs = two_outputs(Preprocess(mode=spec.preprocessing, name="preprocess")(inputs))
    if getattr(classifier.activation, "__name__", "") != "softmax":
        probs = keras.layers.Softmax(name="source_softmax")(probs)
    return keras.Model(inputs, [pooled, probs], name=f"{spec.name}_features_and_source")


def _feature_model(candidate: Candidate, shape: tuple[int, int, int]) -> keras.Model:
    spec = candidate.spec
    base = spec.build(input_shape=(*shape[:2], 3), weights=candidate.weights)
    inputs = keras.Input(shape=shape, name="image")
    x = base(Preprocess(mode=spec.preprocessing, name="preprocess")(inputs), training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, pooled, name=f"{spec.name}_features")


def candidate_features(candidate: Candidate, images: np.ndarray, *, input_size: tuple[int, int],
                       batch_size: int = 32, source_head: bool = True) -> CandidateFeatures:
    """Run ``candidate`` once over raw-pixel ``images`` (N, H, W, C), resized to ``input_size``.

    With ``source_head=True`` and a backbone whose spec has an ImageNet head, the same forward
    pass also yields the source-class probabilities: with weights "imagenet" or None, or a local
    file of the full ImageNet classifier (a Keras Applications ``*.h5`` with top, or a
    ``.weights.h5`` saved from ``spec.top_builder``). If the head cannot be built (its weights
    cannot be loaded offline, the local file is a headless ``*_notop`` one), features are taken
    from the headless backbone and ``note`` says why LEEP/NCE are missing.
    """
    shape = (*input_size, int(images.shape[-1]))
    spec = candidate.spec
    model, note = None, ""
    if source_head:
        if not spec.has_imagenet_head:
            note = f"LEEP/NCE skipped: {spec.name} has no ImageNet head in the catalog"
        else:
            try:
                model = _source_head_model(candidate, shape)
            except Exception as exc:  # weights that cannot load offline, a headless local file, sizes the head rejects
                if candidate.weights not in (None, "imagenet"):
                    note = "LEEP/NCE skipped: the local weights file holds no ImageNet head (a headless file)"
                else:
                    note = f"LEEP/NCE skipped: ImageNet head unavailable ({type(exc).__name__}: {str(exc)[:120]})"
    with_probs = model is not None
    if model is None:
        model = _feature_model(candidate, shape)
    features, probs = [], []
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)  # a fresh model per candidate: TensorFlow's retracing warning is noise here
    try:
        # `predict` runs one compiled function (2-3x faster than calling the model eagerly per batch);
        # images are resized a chunk at a time so the resized copy never holds the whole set
        for start in range(0, len(images), CHUNK):
            chunk = resize_batch(np.asarray(images[start : start + CHUNK]), input_size)
            out = model.predict(chunk, batch_size=batch_size, verbose=0)
            if with_probs:
                features.append(np.asarray(out[0]))
                probs.append(np.asarray(out[1]))
            else:
                features.append(np.asarray(out))
    finally:
        logger.setLevel(level)
    del model
    return CandidateFeatures(
        features=np.concatenate(features).astype(np.float32),
        source_probs=np.concatenate(probs).astype(np.float64) if with_probs else None,
        note=note,
    )
