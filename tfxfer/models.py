"""Build a transfer model: raw pixels -> Preprocess -> pretrained backbone -> new head.

The result is an ordinary functional ``keras.Model`` that trains with ``fit``, saves and loads as
``.keras``, and exports to TFLite and SavedModel with its preprocessing inside.

Layer names (stable, used by freezing, feature caching and export):
``image`` (input, raw 0-255) -> ``preprocess`` -> ``<backbone name>`` (nested model) -> ``pool`` ->
``head_dropout`` -> [``head_hidden`` -> ``head_hidden_dropout``] -> ``head``.

Example:
    >>> from tfxfer.models import build_model
    >>> model = build_model("mobilenet_v2", 5, input_size=(32, 32), weights=None)
    >>> model.output_shape
    (None, 5)
"""

from __future__ import annotations

import keras

from tfxfer.backbones.catalog import get_spec
from tfxfer.backbones.groups import get_backbone
from tfxfer.backbones.spec import BackboneSpec
from tfxfer.errors import ArgumentError, ModelError
from tfxfer.freezing.freeze import freeze_backbone
from tfxfer.preprocess import Preprocess
from tfxfer.utils.validate import check_float, check_int

TASKS = {"multiclass": "softmax", "multilabel": "sigmoid", "regression": None}
POOLINGS = ("avg", "max")
HEAD_LAYER_NAMES = ("pool", "head_dropout", "head_hidden", "head_hidden_dropout", "head")


def build_model(
    backbone: "str | BackboneSpec",
    num_classes: int,
    *,
    task: str = "multiclass",
    input_size: tuple[int, int] | None = None,
    channels: int = 3,
    weights: str | None = "imagenet",
    pooling: str = "avg",
    dropout: float = 0.2,
    hidden_units: int | None = None,
    hidden_activation: str = "relu",
    bn_policy: str = "frozen",
    freeze: bool = True,
    name: str | None = None,
) -> keras.Model:
    """Put a new head on a pretrained backbone.

    Args:
        backbone: catalog name (see `tfxfer.backbones.list_backbones`) or a `BackboneSpec`.
        num_classes: number of outputs (classes, labels, or regression targets), >= 1.
        task: "multiclass" (softmax), "multilabel" (sigmoid) or "regression" (linear).
        input_size: (height, width); defaults to the backbone's native size.
        channels: 3 for RGB, 1 for grayscale (expanded to RGB inside the model).
        weights: "imagenet", None (random), or a local weights file for the backbone.
        pooling: "avg" or "max" global pooling of the backbone's feature map.
        dropout: dropout rate before the head, in [0, 1).
        hidden_units: optional width of a hidden Dense layer between pooling and head.
        hidden_activation: activation of that hidden layer.
        bn_policy: "frozen" (BatchNorm always in inference mode, the default) or "train".
        freeze: start with the backbone frozen (feature extraction), the usual first stage.
        name: model name (default ``"<backbone>_transfer"``).

    Returns:
        A functional ``keras.Model`` taking raw 0-255 pixels of shape (H, W, channels).
    """
    spec = get_spec(backbone)
    num_classes = check_int("num_classes", num_classes, low=1)
    if task not in TASKS:
        raise ArgumentError("task", task, "must be one of " + ", ".join(TASKS))
    if task == "multiclass" and num_classes == 1:
        raise ArgumentError(
            "num_classes", num_classes, "must be >= 2 for task='multiclass'",
            hint="Use task='multilabel' with num_classes=1 for a binary sigmoid output",
        )
    if pooling not in POOLINGS:
        raise ArgumentError("pooling", pooling, "must be 'avg' or 'max'")
    dropout = check_float("dropout", dropout, low=0, high=1, high_open=True)
    if channels not in (1, 3):
        raise ArgumentError("channels", channels, "must be 1 (grayscale) or 3 (RGB)")
    hidden_units = check_int("hidden_units", hidden_units, low=1, allow_none=True)
    if input_size is None:
        input_size = spec.input_size
    if len(tuple(input_size)) != 2:
        raise ArgumentError("input_size", input_size, "must be (height, width)")
    input_size = tuple(int(v) for v in input_size)

    # Layers.
    base = spec.build(input_shape=(*input_size, 3), weights=weights)
    preprocess = Preprocess(mode=spec.preprocessing, name="preprocess")
    pool_cls = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    pool = pool_cls(name="pool")
    head_layers = [keras.layers.Dropout(dropout, name="head_dropout")]
    if hidden_units:
        head_layers.append(keras.layers.Dense(hidden_units, activation=hidden_activation, name="head_hidden"))
        head_layers.append(keras.layers.Dropout(dropout, name="head_hidden_dropout"))
    head_layers.append(keras.layers.Dense(num_classes, activation=TASKS[task], dtype="float32", name="head"))

    # Functional model.
    inputs = keras.Input(shape=(*input_size, channels), name="image")
    x = pool(base(preprocess(inputs)))
    for layer in head_layers:
        x = layer(x)
    model = keras.Model(inputs, x, name=name or f"{spec.name}_transfer")

    if freeze:
        freeze_backbone(model, bn_policy=bn_policy)
    return model


def head_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers after the backbone (pooling, dropout, hidden, head), in order."""
    backbone = get_backbone(model)
    layers = list(model.layers)
    return layers[layers.index(backbone) + 1 :]


def feature_model(model: keras.Model) -> keras.Model:
    """A model from the raw-pixel input to the pooled backbone features (the cached-feature point)."""
    try:
        pooled = model.get_layer("pool").output
    except ValueError as exc:
        raise ModelError(f"Model {model.name!r} has no 'pool' layer; build it with tfxfer.build_model") from exc
    return keras.Model(model.inputs, pooled, name=f"{model.name}_features")


def head_model(model: keras.Model) -> keras.Model:
    """A model from pooled features to the output that SHARES the head layers' weights with ``model``.

    Training it trains the full model's head in place (the cached-features fast path).
    """
    layers = head_layers(model)
    if not layers or layers[0].name != "pool":
        raise ModelError(f"Model {model.name!r} has no 'pool' layer right after its backbone")
    feature_dim = layers[0].output.shape[-1]
    inputs = keras.Input(shape=(feature_dim,), name="features")
    x = inputs
    for layer in layers[1:]:
        x = layer(x)
    return keras.Model(inputs, x, name=f"{model.name}_head")
