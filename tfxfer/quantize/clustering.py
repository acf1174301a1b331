"""Weight clustering of a Keras 3 model through the tf_keras bridge (TFMOT), stripped and carried back.

Each clustered kernel is replaced by at most ``clusters`` shared values (k-means++ centroids by
default), fine-tuned briefly, stripped, and copied back into a Keras 3 model by layer name. TFMOT
clusters Conv/Dense kernels; depthwise kernels are not clusterable (TFMOT: "big unrecoverable
accuracy loss"). With ``preserve_sparsity=True`` zeros of a pruned model stay zero. Like pruning,
clustering shrinks a file only once it is compressed (`zipped_size`).

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.quantize import cluster, unique_values
    >>> model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu", name="a"),
    ...                           keras.layers.Dense(2, activation="softmax", name="head")])
    >>> x = np.random.default_rng(0).normal(size=(64, 16)).astype("float32"); y = (x[:, 0] > 0).astype(int)
    >>> result = cluster(model, (x, y), clusters=8, epochs=1, batch_size=16)
    >>> unique_values(result.model)["a"] <= 8
    True
"""

from __future__ import annotations

import dataclasses

import keras

from tfxfer.errors import ArgumentError
from tfxfer.quantize._deps import tfmot
from tfxfer.quantize._training import (
    check_layer_types,
    check_positive_int,
    clone_wrapped,
    fit,
    select_layers,
)
from tfxfer.quantize.bridge import BridgedModel, to_tf_keras, weights_to_keras
from tfxfer.quantize.sparsity import SparsityReport, sparsity_report

INITS = ("kmeans_plus_plus", "linear", "density_based", "random")
LAYER_TYPES = ("Conv2D", "Dense")


@dataclasses.dataclass
class ClusterResult:
    """A clustered model: ``model`` (Keras 3), ``tf_keras_model`` (stripped), ``report``, ``clustered_layers``."""

    model: keras.Model
    tf_keras_model: object
    report: SparsityReport
    clustered_layers: list
    history: dict
    settings: dict


def cluster(model, train, *, clusters: int = 16, epochs: int = 1, learning_rate: float = 1e-5,
            batch_size: int = 32, init: str = "kmeans_plus_plus", layer_types=LAYER_TYPES, skip=(),
            preserve_sparsity: bool = False, train_bn: bool = False, val=None, verbose: int = 0,
            seed: int = 0) -> ClusterResult:
    """Cluster the Conv/Dense kernels of a trained Keras 3 model and fine-tune it.

    Args:
        model: a functional Keras 3 model (backbone nested or not) or a `BridgedModel`.
        train: ``(x, y)`` arrays or a batched ``tf.data.Dataset``.
        clusters: distinct values per kernel, >= 2 (16 keeps accuracy on most CNNs; 8 is aggressive).
        epochs: fine-tuning epochs (centroids train, assignments follow).
        learning_rate: Adam learning rate (small: clustering starts from a trained model).
        batch_size: batch size for array data.
        init: centroid initialisation: "kmeans_plus_plus", "linear", "density_based" or "random".
        layer_types: tf_keras class names to cluster (from ``LAYER_TYPES``).
        skip: layer names to leave unclustered.
        preserve_sparsity: keep zero weights at zero (cluster a pruned model).
        train_bn: let BatchNormalization layers train (batch statistics in training, moving
            statistics re-estimated). Default False keeps the source model's flags; on the
            Animal-MNIST benchmark training BatchNorm here cost ~70 accuracy points.
        val: optional validation data.
        verbose: Keras fit verbosity.
        seed: shuffling seed.

    Returns:
        A `ClusterResult`.
    """
    check_positive_int("clusters", clusters, 2)
    check_positive_int("epochs", epochs)
    if init not in INITS:
        raise ArgumentError("init", init, "must be one of " + ", ".join(INITS))
    check_layer_types(layer_types, kind="clusterable layer type", known=LAYER_TYPES)
    bridged = model if isinstance(model, BridgedModel) else to_tf_keras(model)
    clustering = tfmot().clustering.keras
    chosen = select_layers(bridged, layer_types, tuple(skip))
    centroid_init = getattr(clustering.CentroidInitialization, init.upper())
    wrapped = clone_wrapped(bridged, chosen, lambda layer: clustering.cluster_weights(
        layer, number_of_clusters=clusters, cluster_centroids_init=centroid_init,
        preserve_sparsity=bool(preserve_sparsity)), train_bn=train_bn)
    history = fit(wrapped, bridged.source, train, val=val, epochs=epochs, learning_rate=learning_rate,
                  batch_size=batch_size, verbose=verbose, seed=seed)
    stripped = clustering.strip_clustering(wrapped)
    keras_model = weights_to_keras(bridged, stripped)
    settings = {"clusters": clusters, "init": init, "layer_types": list(layer_types), "skip": list(skip),
                "preserve_sparsity": bool(preserve_sparsity), "train_bn": bool(train_bn)}
    return ClusterResult(model=keras_model, tf_keras_model=stripped, report=sparsity_report(keras_model),
                         clustered_layers=sorted(chosen), history=history, settings=settings)
