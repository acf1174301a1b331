"""Specs for every Keras Applications family (weights download from Keras's servers when online).

Each entry binds a ``keras.applications`` constructor to its default input size, its preprocessing
mode, the smallest input it builds at, its headless parameter count and its layer groups (see
`tfxfer.backbones.spec` for the group rule). Offline users pass ``weights=<local file>``.

Preprocessing follows each family's ``preprocess_input``: ResNet v1 and VGG expect "caffe";
ResNetV2, MobileNet v1/v2, Inception, Xception and NASNet expect "tf"; DenseNet expects "torch";
EfficientNet, EfficientNetV2, ConvNeXt and MobileNetV3 scale inside the model ("none").

Group ends are named layers at cut points of the graph (every other layer is an ancestor or a
descendant of the end layer), so a group never depends on the topological order Keras picks.
Auto-named layers (``conv2d_12``, ``re_lu_3``, ``add_4``) never appear in a pattern: their names
depend on a global counter. Very deep stages are split into equal parts named ``a``, ``b``, ``c``
(``conv4a``, ``conv4b``); trailing layers without their own stage (top conv, post norm) form
"top" when they hold a convolution, else they join the last stage.

NASNet is the one exception to the cut-point rule: each cell reads the outputs of the two
cells before it, so no layer is a cut point. Its groups end at a cell's final concatenation;
the next cell's input adjustments, which Keras orders right after it, fall in the next group
(only three weightless layers of cell 0, a ReLU, a padding and a cropping, precede the stem's
end). NASNet also needs a static input shape: its structure depends on the spatial size.

Example:
    >>> from tfxfer.backbones import get_spec
    >>> spec = get_spec("efficientnet_b0")
    >>> spec.input_size, spec.preprocessing, spec.group_names[0], spec.group_names[-1]
    ((224, 224), 'none', 'stem', 'top')
"""

from __future__ import annotations

import functools
import math

import keras

from tfxfer.backbones.spec import BackboneSpec
from tfxfer.preprocess import IMAGENET_MEAN, IMAGENET_STD
from tfxfer.errors import ArgumentError


def _app(constructor_name: str, input_shape, weights, **kwargs) -> keras.Model:
    constructor = getattr(keras.applications, constructor_name)
    return constructor(include_top=False, weights=weights, input_shape=tuple(input_shape), **kwargs)


def _app_top(constructor_name: str, input_shape, weights, **kwargs) -> keras.Model:
    constructor = getattr(keras.applications, constructor_name)
    return constructor(include_top=True, weights=weights, input_shape=tuple(input_shape), **kwargs)


def _static_app(constructor_name: str, input_shape, weights, *, include_top: bool) -> keras.Model:
    # NASNet picks its cells' input adjustments from the static spatial shape: built with
    # None dimensions it is a different network (NASNetLarge: 84,887,922 instead of 84,916,818
    # parameters) that no ImageNet or locally saved weights fit.
    if input_shape[0] is None or input_shape[1] is None:
        raise ArgumentError(
            "input_shape", tuple(input_shape),
            f"must have a static height and width for {constructor_name} (its structure depends on them)",
        )
    builder = _app_top if include_top else _app
    return builder(constructor_name, input_shape, weights)


# Keras's EfficientNetB0-B7 ImageNet files store the channel standard deviations as the input
# Normalization layer's *variance* (tensorflow/tensorflow#49930); the constructor compensates with
# an extra Rescaling layer, but only when called with weights="imagenet". A local copy of those
# weights loads into a model built without it, so the inputs would be scaled wrongly.


def _fix_efficientnet_normalization(model: keras.Model) -> None:
    """After loading a local EfficientNetB* ImageNet file: turn the stored std into a variance."""
    import numpy as np

    for layer in model.layers:
        if not isinstance(layer, keras.layers.Normalization) or getattr(layer, "adapt_variance", None) is None:
            continue
        mean = np.ravel(keras.ops.convert_to_numpy(layer.adapt_mean))
        variance = np.ravel(keras.ops.convert_to_numpy(layer.adapt_variance))
        if np.allclose(mean, IMAGENET_MEAN, atol=1e-4) and np.allclose(variance, IMAGENET_STD, atol=1e-4):
            std = np.asarray(IMAGENET_STD, "float32")
            layer.adapt_variance.assign(np.reshape(np.square(std), tuple(layer.adapt_variance.shape)))
            layer.finalize_state()  # recompute the mean / variance tensors the layer divides by


def _spec(name, family, constructor_name, input_size, preprocessing, groups, *, min_input_size=32,
          params=None, static_shape=False, after_load=None, **kwargs) -> BackboneSpec:
    if static_shape:
        builder = functools.partial(_static_app, constructor_name, include_top=False)
        top_builder = functools.partial(_static_app, constructor_name, include_top=True)
    else:
        builder = functools.partial(_app, constructor_name, **kwargs)
        top_builder = functools.partial(_app_top, constructor_name, **kwargs)
    return BackboneSpec(
        name=name,
        family=family,
        builder=builder,
        top_builder=top_builder,
        input_size=(input_size, input_size),
        preprocessing=preprocessing,
        groups=tuple(groups),
        min_input_size=min_input_size,
        params=params,
        after_load=after_load,
    )


def _split(stage: str, blocks: int, parts: int, end: str, *, first: int = 1) -> list[tuple[str, str]]:
    """``parts`` groups over a stage of ``blocks`` blocks numbered from ``first``.

    ``end`` is a pattern with a ``{block}`` field for the id of a part's last block. A stage in one
    part keeps its name; parts of a split stage are named ``<stage>a``, ``<stage>b``, ...
    """
    groups = []
    for k in range(parts):
        last = first - 1 + math.ceil(blocks * (k + 1) / parts)
        groups.append((stage + ("abc"[k] if parts > 1 else ""), end.format(block=last)))
    return groups


def _resnet_groups(blocks: tuple[int, int, int, int], *, v2: bool) -> tuple:
    # v1 blocks end in an Activation "*_out" after the add, v2 blocks in the Add "*_out";
    # v2's post_bn/post_relu (no convolution) join conv5.
    groups = [("stem", r"^pool1_pool$")]
    for stage, count in zip(("conv2", "conv3", "conv4", "conv5"), blocks):
        groups += _split(stage, count, math.ceil(count / 12), f"^{stage}_block{{block}}_out$")
    return (*groups[:-1], (groups[-1][0], None))


def _densenet_groups(blocks: tuple[int, int, int, int]) -> tuple:
    # Dense blocks end in "convN_blockK_concat"; the transitions "poolN_*" close stages 2-4.
    # The final bn/relu (no convolution) join conv5.
    groups = [("stem", r"^pool1$")]
    for index, (stage, count) in enumerate(zip(("conv2", "conv3", "conv4", "conv5"), blocks)):
        parts = _split(stage, count, math.ceil(count / 16), f"^{stage}_block{{block}}_concat$")
        if index < 3:
            parts[-1] = (parts[-1][0], rf"^pool{index + 2}_pool$")
        groups += parts
    return (*groups[:-1], (groups[-1][0], None))


def _efficientnet_groups(stages: int) -> tuple:
    # A block ends in "*_add" (repeated blocks), "*_project_bn" or, for fused blocks without
    # expansion (EfficientNetV2), "*_project_activation".
    return (
        ("stem", r"^stem_activation$"),
        *((f"block{s}", rf"^block{s}[a-z]+_(add|project_bn|project_activation)$") for s in range(1, stages + 1)),
        ("top", None),
    )


def _convnext_groups(depths: tuple[int, int, int, int]) -> tuple:
    # Layer names carry the model name as a prefix ("convnext_tiny_stage_0_block_2_identity").
    # A block's residual add is an op, not a layer, so a stage ends at its last block's
    # "identity" (drop path). Stage 3 takes the final (auto-named) LayerNormalization.
    groups = [("stem", r"_stem$")]
    for stage, depth in enumerate(depths[:3]):
        parts = 3 if depth > 9 else 1
        groups += _split(f"stage{stage}", depth, parts, f"_stage_{stage}_block_{{block}}_identity$", first=0)
    return (*groups, ("stage3", None))


_MOBILENET_GROUPS = (
    ("stem", r"^conv_pw_1_relu$"),
    ("block2_3", r"^conv_pw_3_relu$"),
    ("block4_5", r"^conv_pw_5_relu$"),
    ("block6_8", r"^conv_pw_8_relu$"),
    ("block9_11", r"^conv_pw_11_relu$"),
    ("block12_13", None),
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

# MobileNetV3 activations are auto-named ("re_lu_3", "activation_17"): the stem's activation
# and block 0 join "stem", which ends at block 0's projection or add.
_MOBILENET_V3_SMALL_GROUPS = (
    ("stem", r"^expanded_conv_project_bn$"),
    ("block1_2", r"^expanded_conv_2_add$"),
    ("block3_5", r"^expanded_conv_5_add$"),
    ("block6_7", r"^expanded_conv_7_add$"),
    ("block8_10", r"^expanded_conv_10_add$"),
    ("top", None),
)

_MOBILENET_V3_LARGE_GROUPS = (
    ("stem", r"^expanded_conv_add$"),
    ("block1_2", r"^expanded_conv_2_add$"),
    ("block3_5", r"^expanded_conv_5_add$"),
    ("block6_9", r"^expanded_conv_9_add$"),
    ("block10_11", r"^expanded_conv_11_add$"),
    ("block12_14", r"^expanded_conv_14_add$"),
    ("top", None),
)


def _vgg_groups(blocks: int = 5) -> tuple:
    return (*((f"block{b}", rf"^block{b}_pool$") for b in range(1, blocks)), (f"block{blocks}", None))


# InceptionV3's stem layers are all auto-named: the stem ends with the first inception block.
_INCEPTION_V3_GROUPS = (
    ("stem_mixed0", r"^mixed0$"),
    ("mixed1_2", r"^mixed2$"),
    ("mixed3_5", r"^mixed5$"),
    ("mixed6_7", r"^mixed7$"),
    ("mixed8", r"^mixed8$"),
    ("mixed9", r"^mixed9$"),
    ("mixed10", None),
)

# Residual adds are auto-named CustomScaleLayers; each block ends in its "*_ac" activation except
# block8_10 (no activation), whose group ends at its last convolution so that "top" holds conv_7b.
# The reductions mixed_6a / mixed_7a open the block17 / block8 groups.
_INCEPTION_RESNET_V2_GROUPS = (
    ("stem", r"^mixed_5b$"),
    ("block35_1_5", r"^block35_5_ac$"),
    ("block35_6_10", r"^block35_10_ac$"),
    ("block17_1_10", r"^block17_10_ac$"),
    ("block17_11_20", r"^block17_20_ac$"),
    ("block8_1_5", r"^block8_5_ac$"),
    ("block8_6_10", r"^block8_10_conv$"),
    ("top", None),
)

# Residual adds are auto-named; middle-flow blocks (identity shortcuts) end at "*_sepconv3_bn".
# Entry-flow blocks have convolution shortcuts, so the entry flow joins block 5.
_XCEPTION_GROUPS = (
    ("stem", r"^block1_conv2_act$"),
    ("block2_5", r"^block5_sepconv3_bn$"),
    ("block6_8", r"^block8_sepconv3_bn$"),
    ("block9_12", r"^block12_sepconv3_bn$"),
    ("block13_14", None),
)


def _nasnet_groups(ends: tuple[int, ...], last: int) -> tuple:
    # ``ends``: ids of the normal cells that close each group but the last, which runs to cell
    # ``last``. Reduction cells take the id of the normal cell before (or after) them; they open
    # the group that follows it.
    groups = [("stem", r"^reduction_concat_stem_2$")]
    start = 0
    for end in ends:
        groups.append((f"cells{start}_{end}", rf"^normal_concat_{end}$"))
        start = end + 1
    return (*groups, (f"cells{start}_{last}", None))


def keras_application_specs() -> tuple[BackboneSpec, ...]:
    """All Keras Applications backbones, in catalog order."""
    resnet = [
        ("resnet50", "ResNet50", (3, 4, 6, 3), 23_587_712),
        ("resnet101", "ResNet101", (3, 4, 23, 3), 42_658_176),
        ("resnet152", "ResNet152", (3, 8, 36, 3), 58_370_944),
    ]
    resnet_v2 = [
        ("resnet50_v2", "ResNet50V2", (3, 4, 6, 3), 23_564_800),
        ("resnet101_v2", "ResNet101V2", (3, 4, 23, 3), 42_626_560),
        ("resnet152_v2", "ResNet152V2", (3, 8, 36, 3), 58_331_648),
    ]
    efficientnet = [  # (variant, input size, headless params)
        ("b0", 224, 4_049_571), ("b1", 240, 6_575_239), ("b2", 260, 7_768_569),
        ("b3", 300, 10_783_535), ("b4", 380, 17_673_823), ("b5", 456, 28_513_527),
        ("b6", 528, 40_960_143), ("b7", 600, 64_097_687),
    ]
    efficientnet_v2 = [  # (variant, input size, stages, headless params)
        ("b0", 224, 6, 5_919_312), ("b1", 240, 6, 6_931_124), ("b2", 260, 6, 8_769_374),
        ("b3", 300, 6, 12_930_622), ("s", 384, 6, 20_331_360), ("m", 480, 7, 53_150_388),
        ("l", 480, 7, 117_746_848),
    ]
    convnext = [
        ("tiny", "ConvNeXtTiny", (3, 3, 9, 3), 27_820_128),
        ("small", "ConvNeXtSmall", (3, 3, 27, 3), 49_454_688),
        ("base", "ConvNeXtBase", (3, 3, 27, 3), 87_566_464),
        ("large", "ConvNeXtLarge", (3, 3, 27, 3), 196_230_336),
        ("xlarge", "ConvNeXtXLarge", (3, 3, 27, 3), 348_147_968),
    ]
    densenet = [
        ("densenet121", "DenseNet121", (6, 12, 24, 16), 7_037_504),
        ("densenet169", "DenseNet169", (6, 12, 32, 32), 12_642_880),
        ("densenet201", "DenseNet201", (6, 12, 48, 32), 18_321_984),
    ]
    return (
        *(_spec(name, "resnet", ctor, 224, "caffe", _resnet_groups(blocks, v2=False), params=params)
          for name, ctor, blocks, params in resnet),
        *(_spec(name, "resnet_v2", ctor, 224, "tf", _resnet_groups(blocks, v2=True), params=params)
          for name, ctor, blocks, params in resnet_v2),
        *(_spec(f"efficientnet_{v}", "efficientnet", f"EfficientNet{v.upper()}", size, "none",
                _efficientnet_groups(7), params=params, after_load=_fix_efficientnet_normalization)
          for v, size, params in efficientnet),
        *(_spec(f"efficientnet_v2_{v}", "efficientnet_v2", f"EfficientNetV2{v.upper()}", size, "none",
                _efficientnet_groups(stages), params=params, include_preprocessing=True)
          for v, size, stages, params in efficientnet_v2),
        _spec("mobilenet", "mobilenet", "MobileNet", 224, "tf", _MOBILENET_GROUPS, params=3_228_864),
        _spec("mobilenet_v2", "mobilenet_v2", "MobileNetV2", 224, "tf", _MOBILENET_V2_GROUPS,
              params=2_257_984),
        _spec("mobilenet_v3_small", "mobilenet_v3", "MobileNetV3Small", 224, "none",
              _MOBILENET_V3_SMALL_GROUPS, params=939_120, include_preprocessing=True),
        _spec("mobilenet_v3_large", "mobilenet_v3", "MobileNetV3Large", 224, "none",
              _MOBILENET_V3_LARGE_GROUPS, params=2_996_352, include_preprocessing=True),
        _spec("vgg16", "vgg", "VGG16", 224, "caffe", _vgg_groups(), params=14_714_688),
        _spec("vgg19", "vgg", "VGG19", 224, "caffe", _vgg_groups(), params=20_024_384),
        _spec("inception_v3", "inception_v3", "InceptionV3", 299, "tf", _INCEPTION_V3_GROUPS,
              min_input_size=75, params=21_802_784),
        _spec("inception_resnet_v2", "inception_resnet_v2", "InceptionResNetV2", 299, "tf",
              _INCEPTION_RESNET_V2_GROUPS, min_input_size=75, params=54_336_736),
        _spec("xception", "xception", "Xception", 299, "tf", _XCEPTION_GROUPS, min_input_size=71,
              params=20_861_480),
        *(_spec(name, "densenet", ctor, 224, "torch", _densenet_groups(blocks), params=params)
          for name, ctor, blocks, params in densenet),
        *(_spec(f"convnext_{v}", "convnext", ctor, 224, "none", _convnext_groups(depths), params=params,
                include_preprocessing=True)
          for v, ctor, depths, params in convnext),
        _spec("nasnet_mobile", "nasnet", "NASNetMobile", 224, "tf", _nasnet_groups((1, 3, 6, 8, 10), 12),
              params=4_269_716, static_shape=True),
        _spec("nasnet_large", "nasnet", "NASNetLarge", 331, "tf", _nasnet_groups((2, 5, 9, 12, 15), 18),
              params=84_916_818, static_shape=True),
    )
