"""Specs for every Keras Applications family (weights download from Keras's servers when online).

Each entry binds a ``keras.applications`` constructor to its preprocessing mode and its layer groups
(see `tfxfer.backbones.spec` for the group rule). Offline users pass ``weights=<local file>``.
"""

from __future__ import annotations

import functools

import keras

from tfxfer.backbones.spec import BackboneSpec


def _app(constructor_name: str, input_shape, weights, **kwargs) -> keras.Model:
    constructor = getattr(keras.applications, constructor_name)
    return constructor(include_top=False, weights=weights, input_shape=tuple(input_shape), **kwargs)


def _app_top(constructor_name: str, input_shape, weights, **kwargs) -> keras.Model:
    constructor = getattr(keras.applications, constructor_name)
    return constructor(include_top=True, weights=weights, input_shape=tuple(input_shape), **kwargs)


def _spec(name, family, constructor_name, input_size, preprocessing, groups, *, min_input_size=32,
          params=None, **kwargs) -> BackboneSpec:
    return BackboneSpec(
        name=name,
        family=family,
        builder=functools.partial(_app, constructor_name, **kwargs),
        top_builder=functools.partial(_app_top, constructor_name, **kwargs),
        input_size=input_size,
        preprocessing=preprocessing,
        groups=tuple(groups),
        min_input_size=min_input_size,
        params=params,
    )


_RESNET_GROUPS = (
    ("stem", r"^pool1_pool$"),
    ("conv2", r"^conv2_block\d+_out$"),
    ("conv3", r"^conv3_block\d+_out$"),
    ("conv4", r"^conv4_block\d+_out$"),
    ("conv5", r"^conv5_block\d+_out$"),
)

_MOBILENET_V2_GROUPS = (
    ("stem", r"^Conv1_relu$"),
    ("block0", r"^expanded_conv_project_BN$"),
    ("block1_2", r"^block_2_add$"),
    ("block3_5", r"^block_5_add$"),
    ("block6_9", r"^block_9_add$"),
    ("block10_12", r"^block_12_add$"),
    ("block13_16", r"^block_16_project_BN$"),
    ("top", None),
)


def keras_application_specs() -> tuple[BackboneSpec, ...]:
    """All Keras Applications backbones, in catalog order."""
    return (
        _spec("resnet50", "resnet", "ResNet50", (224, 224), "caffe", _RESNET_GROUPS, params=23_587_712),
        _spec("mobilenet_v2", "mobilenet_v2", "MobileNetV2", (224, 224), "tf", _MOBILENET_V2_GROUPS,
              params=2_257_984),
    )
