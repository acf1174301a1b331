"""The backbone catalog: names, coverage of Keras Applications, spec facts, local weight files."""

import re

import keras
import numpy as np
import pytest

from tfxfer.backbones import BackboneSpec, get_spec, list_backbones
from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError
from tfxfer.preprocess import PREPROCESS_MODES, Preprocess

# (input size, preprocessing, min input size) of every Keras Applications backbone, from each
# family's constructor default and its `preprocess_input`.
KERAS_APPS = {
    "resnet50": (224, "caffe", 32), "resnet101": (224, "caffe", 32), "resnet152": (224, "caffe", 32),
    "resnet50_v2": (224, "tf", 32), "resnet101_v2": (224, "tf", 32), "resnet152_v2": (224, "tf", 32),
    "efficientnet_b0": (224, "none", 32), "efficientnet_b1": (240, "none", 32),
    "efficientnet_b2": (260, "none", 32), "efficientnet_b3": (300, "none", 32),
    "efficientnet_b4": (380, "none", 32), "efficientnet_b5": (456, "none", 32),
    "efficientnet_b6": (528, "none", 32), "efficientnet_b7": (600, "none", 32),
    "efficientnet_v2_b0": (224, "none", 32), "efficientnet_v2_b1": (240, "none", 32),
    "efficientnet_v2_b2": (260, "none", 32), "efficientnet_v2_b3": (300, "none", 32),
    "efficientnet_v2_s": (384, "none", 32), "efficientnet_v2_m": (480, "none", 32),
    "efficientnet_v2_l": (480, "none", 32),
    "mobilenet": (224, "tf", 32), "mobilenet_v2": (224, "tf", 32),
    "mobilenet_v3_small": (224, "none", 32), "mobilenet_v3_large": (224, "none", 32),
    "vgg16": (224, "caffe", 32), "vgg19": (224, "caffe", 32),
    "inception_v3": (299, "tf", 75), "inception_resnet_v2": (299, "tf", 75), "xception": (299, "tf", 71),
    "densenet121": (224, "torch", 32), "densenet169": (224, "torch", 32), "densenet201": (224, "torch", 32),
    "convnext_tiny": (224, "none", 32), "convnext_small": (224, "none", 32), "convnext_base": (224, "none", 32),
    "convnext_large": (224, "none", 32), "convnext_xlarge": (224, "none", 32),
    "nasnet_mobile": (224, "tf", 32), "nasnet_large": (331, "tf", 32),
}

# family -> the keras.applications module whose preprocess_input the family's mode must reproduce
PREPROCESS_MODULES = {
    "resnet": "resnet", "resnet_v2": "resnet_v2", "efficientnet": "efficientnet",
    "efficientnet_v2": "efficientnet_v2", "mobilenet": "mobilenet", "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3": "mobilenet_v3", "vgg": "vgg16", "inception_v3": "inception_v3",
    "inception_resnet_v2": "inception_resnet_v2", "xception": "xception", "densenet": "densenet",
    "convnext": "convnext", "nasnet": "nasnet",
}

KERAS_APP_SPECS = [get_spec(name) for name in KERAS_APPS]


def test_catalog_has_every_keras_applications_backbone():
    assert len(KERAS_APPS) == 40
    assert set(KERAS_APPS) <= set(list_backbones())
    # Every constructor keras.applications offers resolves to a spec by its own spelling.
    constructors = [n for n in dir(keras.applications) if n[:1].isupper()]
    assert len(constructors) == 40
    assert {get_spec(n).name for n in constructors} == set(KERAS_APPS)


@pytest.mark.parametrize(
    "query, name",
    [
        ("ResNet50", "resnet50"),
        ("EfficientNet-B0", "efficientnet_b0"),
        ("efficientnetb0", "efficientnet_b0"),
        ("EfficientNetV2-S", "efficientnet_v2_s"),
        (" ResNet50V2 ", "resnet50_v2"),
        ("MobileNetV3Small", "mobilenet_v3_small"),
        ("convnext-xlarge", "convnext_xlarge"),
        ("InceptionResNetV2", "inception_resnet_v2"),
        ("NASNetLarge", "nasnet_large"),
    ],
)
def test_get_spec_normalizes_names(query, name):
    assert get_spec(query).name == name


def test_get_spec_passes_a_spec_through():
    spec = get_spec("vgg16")
    assert get_spec(spec) is spec


def test_unknown_name_lists_close_matches():
    with pytest.raises(UnknownNameError, match=r"Unknown backbone 'resnet05'.*Did you mean:.*'resnet50'") as info:
        get_spec("resnet05")
    assert "resnet50" in info.value.close_matches
    with pytest.raises(UnknownNameError, match=r"Unknown backbone 'efficientnet_b9'.*'efficientnet_b[0-7]'"):
        get_spec("efficientnet_b9")


def test_non_string_name_is_a_type_error():
    with pytest.raises(ArgumentTypeError, match="`backbone` must be a backbone name"):
        get_spec(50)


@pytest.mark.parametrize(
    "family, names",
    [
        ("resnet", ["resnet50", "resnet101", "resnet152"]),
        ("resnet_v2", ["resnet50_v2", "resnet101_v2", "resnet152_v2"]),
        ("efficientnet", [f"efficientnet_b{i}" for i in range(8)]),
        ("efficientnet_v2", [f"efficientnet_v2_{v}" for v in ("b0", "b1", "b2", "b3", "s", "m", "l")]),
        ("mobilenet_v3", ["mobilenet_v3_small", "mobilenet_v3_large"]),
        ("densenet", ["densenet121", "densenet169", "densenet201"]),
        ("convnext", [f"convnext_{v}" for v in ("tiny", "small", "base", "large", "xlarge")]),
        ("nasnet", ["nasnet_mobile", "nasnet_large"]),
        ("vgg", ["vgg16", "vgg19"]),
    ],
)
def test_family_filter(family, names):
    assert list_backbones(family=family) == names
    assert all(get_spec(n).family == family for n in names)


def _check_fields(spec):
    assert isinstance(spec, BackboneSpec)
    assert spec.name == spec.name.lower() and re.fullmatch(r"[a-z0-9_]+", spec.name)
    assert get_spec(spec.name) is spec
    height, width = spec.input_size
    assert isinstance(height, int) and height == width >= spec.min_input_size >= 32
    assert spec.preprocessing in PREPROCESS_MODES
    names = spec.group_names
    assert len(names) == len(set(names)) and 4 <= len(names) <= 10
    patterns = [pattern for _, pattern in spec.groups]
    assert all(isinstance(p, str) and re.compile(p) for p in patterns[:-1])
    assert isinstance(spec.params, int) and spec.params > 100_000
    assert callable(spec.builder)


def test_spec_fields_are_sane():
    names = list_backbones()
    assert len(names) >= 40
    for name in names:
        try:
            _check_fields(get_spec(name))
        except AssertionError as exc:
            raise AssertionError(f"backbone {name!r}: {exc}") from exc


def test_keras_application_facts():
    for spec in KERAS_APP_SPECS:
        size, mode, min_size = KERAS_APPS[spec.name]
        got = (spec.input_size, spec.preprocessing, spec.min_input_size, spec.source, spec.has_imagenet_head)
        assert got == ((size, size), mode, min_size, "keras-applications", True), spec.name
        # Auto-named layers ("conv2d_12", "re_lu_3", "add_4") depend on a global counter: never a pattern.
        for _, pattern in spec.groups:
            assert pattern is None or not re.search(r"(conv2d|re_lu|activation|add|concatenate)_\d", pattern)


@pytest.mark.parametrize("family", sorted(PREPROCESS_MODULES))
def test_preprocessing_mode_reproduces_keras_preprocess_input(family):
    import importlib

    (name, *_) = list_backbones(family=family)
    mode = get_spec(name).preprocessing
    module = importlib.import_module(f"keras.applications.{PREPROCESS_MODULES[family]}")
    pixels = np.random.default_rng(0).uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    expected = module.preprocess_input(pixels.copy())
    got = keras.ops.convert_to_numpy(Preprocess(mode=mode)(pixels))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_min_input_size_is_the_constructors_minimum():
    for spec in KERAS_APP_SPECS:
        small = spec.min_input_size - 1
        with pytest.raises(ArgumentError, match="`input_shape` must be at least"):
            spec.build(input_shape=(small, small, 3), weights=None)
        # Keras itself refuses it, so the spec is not stricter than the architecture.
        with pytest.raises(ValueError, match=f"at least {spec.min_input_size}x{spec.min_input_size}"):
            spec.builder((small, small, 3), None)


def test_nasnet_needs_a_static_input_shape():
    with pytest.raises(ArgumentError, match="`input_shape` must have a static height and width"):
        get_spec("nasnet_mobile").build(input_shape=(None, None, 3), weights=None)


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def test_local_weights_file_loads_exactly(tmp_path):
    spec = get_spec("mobilenet_v3_small")
    saved = spec.build(input_shape=(32, 32, 3), weights=None)
    path = tmp_path / "x.weights.h5"
    saved.save_weights(path)
    expected = _weights(saved)

    fresh = spec.build(input_shape=(32, 32, 3), weights=None)  # a new random init differs...
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(fresh), expected))
    loaded = spec.build(input_shape=(32, 32, 3), weights=str(path))  # ...the file restores it
    assert loaded.name == "mobilenet_v3_small"
    got = _weights(loaded)
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))
    # os.PathLike works too, and the loaded weights do not depend on the input size.
    at_64 = spec.build(input_shape=(64, 64, 3), weights=path)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(at_64), expected))


def test_missing_weights_file_is_an_argument_error(tmp_path):
    with pytest.raises(ArgumentError, match="`weights` must be \"imagenet\", None, or the path of an existing"):
        get_spec("mobilenet_v2").build(input_shape=(32, 32, 3), weights=str(tmp_path / "missing.weights.h5"))


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, while failing to load
def test_wrong_weights_file_is_an_argument_error(tmp_path):
    other = get_spec("mobilenet").build(input_shape=(32, 32, 3), weights=None)
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    with pytest.raises(ArgumentError, match=r"`weights` could not be loaded into backbone 'mobilenet_v2'"):
        get_spec("mobilenet_v2").build(input_shape=(32, 32, 3), weights=str(path))
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"not an hdf5 file")
    with pytest.raises(ArgumentError, match=r"`weights` could not be loaded into backbone 'mobilenet_v2'"):
        get_spec("mobilenet_v2").build(input_shape=(32, 32, 3), weights=str(garbage))


def test_weights_of_another_type_is_an_argument_error():
    with pytest.raises(ArgumentError, match="`weights` must be \"imagenet\", None, or a file path"):
        get_spec("mobilenet_v2").build(input_shape=(32, 32, 3), weights=3)


def test_unknown_family_is_an_error_with_close_matches():
    import pytest

    from tfxfer.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="Did you mean: 'resnet'"):
        list_backbones(family="resnett")
