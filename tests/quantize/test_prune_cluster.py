"""Pruning (schedules, 2:4) and clustering through the bridge; sparsity and zipped-size reports."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_images, tiny_nested_model
from tests.quantize.helpers import train
from tfxfer.errors import ArgumentError, ArgumentTypeError, UnknownNameError
from tfxfer.quantize import cluster, prune, sparsity_report, unique_values, zipped_size
from tfxfer.quantize.compressed_export import export_compressed


@pytest.fixture(scope="module")
def task():
    keras.utils.set_random_seed(3)
    data, held_out = tiny_images(256, size=16, signal="bars", seed=0), tiny_images(128, size=16, signal="bars", seed=1)
    model = train(tiny_nested_model(), data, epochs=5)
    return model, data, held_out


def _mlp():
    return keras.Sequential([keras.Input((16,)), keras.layers.Dense(32, activation="relu", name="a"),
                             keras.layers.Dense(2, activation="softmax", name="head")])


def _xy(n=64):
    x = np.random.default_rng(0).normal(size=(n, 16)).astype("float32")
    return x, (x[:, 0] > 0).astype("int64")


@pytest.mark.parametrize("schedule", ["polynomial", "constant"])
def test_pruned_model_reaches_the_requested_sparsity(task, schedule):
    model, data, _ = task
    result = prune(model, data, target_sparsity=0.6, epochs=2, batch_size=32, schedule=schedule)
    assert set(result.pruned_layers) == {"stem_conv", "project", "top_conv", "head"}
    for name in result.pruned_layers:
        path = name if name == "head" else f"backbone/{name}"
        assert result.report.sparsity_of(path) == pytest.approx(0.6, abs=0.02)
    assert result.report.sparsity_of("backbone/dw") == 0.0  # depthwise left alone by default
    # The weights live in a Keras 3 model that still predicts (same structure as the source).
    assert isinstance(result.model, keras.Model) and result.model.output_shape == model.output_shape
    assert sparsity_report(model).overall < 0.05  # the source model is untouched


def test_structured_2_of_4():
    from tensorflow_model_optimization.python.core.sparsity.keras.pruning_utils import is_pruned_m_by_n

    result = prune(_mlp(), _xy(), target_sparsity=0.5, structured="2:4", epochs=2, batch_size=16)
    assert is_pruned_m_by_n(result.tf_keras_model.get_layer("a").kernel, m_by_n=(2, 4))
    assert result.report.sparsity_of("a") == pytest.approx(0.5, abs=1e-6)


def test_skip_and_layer_types(task):
    model, data, _ = task
    result = prune(model, data, target_sparsity=0.5, epochs=1, schedule="constant", layer_types=("Conv2D",),
                   skip=("stem_conv",))
    assert result.pruned_layers == ["project", "top_conv"]
    assert result.report.sparsity_of("backbone/stem_conv") == 0.0 and result.report.sparsity_of("head") == 0.0
    assert result.report.sparsity_of("backbone/top_conv") == pytest.approx(0.5, abs=0.02)


def test_train_bn_reestimates_batchnorm_statistics(task):
    from tfxfer.quantize import clone_keras_model

    model, data, _ = task
    model = clone_keras_model(model)
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # tfxfer's default BatchNorm policy
    source = model.get_layer("backbone").get_layer("project_bn").moving_mean.numpy()
    kept = prune(model, data, target_sparsity=0.5, epochs=1, schedule="constant")
    moved = prune(model, data, target_sparsity=0.5, epochs=1, schedule="constant", train_bn=True)
    np.testing.assert_array_equal(kept.model.get_layer("backbone").get_layer("project_bn").moving_mean.numpy(), source)
    assert not np.allclose(moved.model.get_layer("backbone").get_layer("project_bn").moving_mean.numpy(), source)
    assert moved.settings["train_bn"] is True


def test_pruned_int8_file_shrinks_only_when_zipped(task, tmp_path):
    model, data, held_out = task
    result = prune(model, data, target_sparsity=0.8, epochs=2, schedule="constant")
    dense = export_compressed(model, tmp_path / "dense.tflite", variant="float32", eval_data=held_out)
    sparse = export_compressed(result.model, tmp_path / "sparse.tflite", variant="float32", eval_data=held_out,
                               reference=model, thresholds={"float32": {"min_top1_agreement": 0.0,
                                                                        "max_abs_error": None}})
    assert abs(sparse.sizes["plain_bytes"] - dense.sizes["plain_bytes"]) < 0.02 * dense.sizes["plain_bytes"]
    assert sparse.sizes["zipped_bytes"] < 0.8 * dense.sizes["zipped_bytes"]
    int8 = export_compressed(result.model, tmp_path / "sparse_int8.tflite", representative_data=data,
                             eval_data=held_out, thresholds={"int8": {"max_accuracy_drop": 100.0}})
    assert int8.export.variant == "int8" and int8.gate.passed


def test_clustered_kernels_have_at_most_n_values(task):
    model, data, _ = task
    result = cluster(model, data, clusters=6, epochs=1)
    counts = unique_values(result.model)
    for name in result.clustered_layers:
        path = name if name == "head" else f"backbone/{name}"
        assert counts[path] <= 6
    assert counts["backbone/dw"] > 6  # depthwise kernels are not clusterable in TFMOT
    assert unique_values(model)["backbone/top_conv"] > 6


def test_clustering_can_preserve_sparsity():
    pruned = prune(_mlp(), _xy(), target_sparsity=0.5, epochs=2, batch_size=16, schedule="constant")
    zeros = pruned.model.get_layer("a").kernel.numpy() == 0
    result = cluster(pruned.model, _xy(), clusters=4, epochs=1, batch_size=16, preserve_sparsity=True)
    kernel = result.model.get_layer("a").kernel.numpy()
    assert np.all(kernel[zeros] == 0)
    assert len(np.unique(kernel)) <= 4 + 1  # clusters plus the preserved zero


def test_sparsity_report_and_zip_sizes(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="d"),
                              keras.layers.Dense(2, name="e")])
    model.get_layer("d").kernel.assign(np.diag([1.0, 2.0, 3.0, 4.0]))
    model.get_layer("e").kernel.assign(np.ones((4, 2)))
    report = sparsity_report(model)
    assert report.sparsity_of("d") == 0.75 and report.sparsity_of("e") == 0.0
    assert report.overall == pytest.approx(12 / 24)
    assert report.layers[0]["unique_values"] == 5
    assert "overall" in report.format()
    with pytest.raises(KeyError):
        report.sparsity_of("nope")
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(4096))
    sizes = zipped_size(str(path))
    assert sizes["plain_bytes"] == 4096 and sizes["zipped_bytes"] < 200
    noise = zipped_size(np.random.default_rng(0).bytes(4096))
    assert noise["zipped_bytes"] > 4000
    with pytest.raises(ArgumentTypeError, match="content"):
        zipped_size(123)
    with pytest.raises(ArgumentTypeError, match="model"):
        sparsity_report("model")


def test_errors(task):
    model, data, _ = task
    with pytest.raises(ArgumentError, match="target_sparsity"):
        prune(model, data, target_sparsity=1.5)
    with pytest.raises(ArgumentError, match="target_sparsity"):
        prune(model, data, target_sparsity=0.3, structured="2:4")
    with pytest.raises(ArgumentError, match="schedule"):
        prune(model, data, schedule="cosine")
    with pytest.raises(ArgumentError, match="structured"):
        prune(model, data, structured="1:4")
    with pytest.raises(UnknownNameError, match="DepthwiseConv2D"):
        prune(model, data, layer_types=("DepthwiseConv2D",))
    with pytest.raises(UnknownNameError, match="stem_cnv"):
        prune(model, data, skip=("stem_cnv",))
    with pytest.raises(ArgumentError, match="at least 2 training steps"):
        prune(model, (data[0][:8], data[1][:8]), epochs=1, batch_size=32)
    with pytest.raises(ArgumentError, match="end_fraction"):
        prune(model, data, end_fraction=0.0)
    with pytest.raises(ArgumentError, match="clusters"):
        cluster(model, data, clusters=1)
    with pytest.raises(ArgumentError, match="init"):
        cluster(model, data, init="kmeans")
    with pytest.raises(UnknownNameError, match="DepthwiseConv2D"):
        cluster(model, data, layer_types=("DepthwiseConv2D",))
