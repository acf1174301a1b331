import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.factories import tiny_images, tiny_model, tiny_spec
from tests.helpers import weights_by_path
from tfxfer.backbones import get_backbone
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.train.data import as_dataset
from tfxfer.train.fine_tune import fine_tune
from tfxfer.train.head import extract_features, train_head_on_features
from tfxfer.train.losses import default_loss

# None of these tests is about MobileNetV2's layers: its groups, layer names and preprocessing on the factories'
# ~1k-parameter look-alike (8 features instead of 1280) make the same stages at a fraction of the time.
_FEATURES = 8


def _model(num_classes, **kwargs):
    return tiny_model(num_classes, backbone=tiny_spec("mobilenet_v2"), **kwargs)


def test_extract_features_matches_the_model_and_keeps_labels():
    model = _model(3, dropout=0.0)
    x, y = tiny_images(10, classes=3)
    feats, labels = extract_features(model, (x, y), batch_size=4)
    assert feats.shape == (10, _FEATURES)
    np.testing.assert_array_equal(labels, y)
    ds_feats, ds_labels = extract_features(model, as_dataset((x, y), batch_size=3))
    np.testing.assert_allclose(ds_feats, feats, atol=1e-6)


def test_one_trace_serves_every_extraction_of_a_model_and_goes_with_it():
    """Training, validation and test features of one model, at any batch sizes, cost one trace; weights
    changed after it are read; the kept function goes when its model is collected."""
    import gc
    import weakref

    from tfxfer.train import head

    model = _model(3, dropout=0.0)
    x, y = tiny_images(10, classes=3)
    before, _ = extract_features(model, (x, y), batch_size=4)  # batches of 4, 4, 2
    extract_features(model, x[:7], batch_size=3)  # 3, 3, 1
    function = head._feature_function(model)
    assert function.traces == 1
    kernels = [v for v in get_backbone(model).weights if v.path.endswith("kernel")]
    assert kernels
    for variable in kernels:
        variable.assign(variable * 0.5)
    after, _ = extract_features(model, (x, y), batch_size=5)
    assert function.traces == 1
    assert not np.allclose(after, before)
    np.testing.assert_allclose(after, head.split_at_pool(model)[0](x, training=False), rtol=1e-5, atol=1e-6)
    kept, model = len(head._FEATURE_FUNCTIONS), weakref.ref(model)
    del function
    gc.collect()
    assert model() is None  # the kept function does not keep its model alive...
    assert len(head._FEATURE_FUNCTIONS) <= kept - 1  # ...and goes with it


def test_head_training_on_cached_features_updates_the_full_model_only_in_the_head():
    model = _model(2)
    x, y = tiny_images(16)
    backbone_before = weights_by_path(get_backbone(model).layers)
    head_before = model.get_layer("head").kernel.numpy().copy()
    feats = np.random.default_rng(0).normal(size=(16, _FEATURES)).astype("float32")
    train_head_on_features(model, feats, y, epochs=2, batch_size=8, verbose=0)
    assert not np.array_equal(head_before, model.get_layer("head").kernel.numpy())
    after = weights_by_path(get_backbone(model).layers)
    assert all(np.array_equal(backbone_before[k], after[k]) for k in backbone_before)


def test_fine_tune_runs_both_phases_and_keeps_bn_statistics():
    model = _model(2)
    x, y = tiny_images(16)
    bn_before = {k: v for k, v in weights_by_path(get_backbone(model).layers).items() if "moving" in k}
    result = fine_tune(model, (x, y), val=(x, y), head_epochs=2, epochs=3, stages={0: 1, 1: 2, 2: 3}, batch_size=8,
                       verbose=0)
    assert len(result.history["loss"]) == 5 and len(result.history["val_loss"]) == 5
    assert [s["epoch"] for s in result.stages] == [0, 2, 3, 4]
    assert result.stages[0]["cached_features"] is True
    assert result.stages[-1]["trainable_groups"][-4:] == ["block10_12", "block13_16", "top", "head"]
    bn_after = {k: v for k, v in weights_by_path(get_backbone(model).layers).items() if "moving" in k}
    assert all(np.array_equal(bn_before[k], bn_after[k]) for k in bn_before)


def test_fine_tune_without_cache_and_with_custom_stages_and_soft_labels():
    model = _model(3)
    x, y = tiny_images(12, classes=3)
    soft = keras.utils.to_categorical(y, 3) * 0.9 + 0.1 / 3
    ds = tf.data.Dataset.from_tensor_slices((x, soft)).batch(6)
    result = fine_tune(model, ds, head_epochs=1, epochs=2, stages={0: 2}, use_cached_features=False,
                       warmup_epochs=0, optimizer="sgd", verbose=0)
    assert len(result.history["loss"]) == 3
    assert result.stages[-1]["trainable_groups"][-3:] == ["block13_16", "top", "head"]
    assert default_loss(model, soft) == "categorical_crossentropy"


def test_default_loss_follows_the_head():
    assert default_loss(_model(2), np.array([0, 1])) == "sparse_categorical_crossentropy"
    assert default_loss(_model(2, task="multilabel"), np.zeros((2, 2))) == "binary_crossentropy"
    assert default_loss(_model(1, task="regression"), np.zeros(2)) == "mse"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(head_epochs=-1), ArgumentError, "`head_epochs` must be an int >= 0"),
        (dict(head_epochs=0, epochs=0), ArgumentError, "cannot both be 0"),
        (dict(base_lr=0), ArgumentError, "`base_lr` must be a finite number > 0"),
        (dict(unfreeze_lr_factor=2), ArgumentError, "`unfreeze_lr_factor`"),
        (dict(stages={9: 1}), ArgumentError, "`stages` must have epochs in"),
        (dict(stages={0: 99}), ArgumentError, r"`stages` must map epochs to a number of top groups in \[0, "),
        (dict(lr_decay="step"), ArgumentError, "`lr_decay` must be one of cosine, linear or None"),
        (dict(optimizer="rmsprop"), ArgumentError, "`optimizer` must be one of adam, adamw, sgd or None"),
        (dict(warmup_epochs=-1), ArgumentError, "`warmup_epochs` must be a finite number >= 0"),
        (dict(callbacks=[keras.callbacks.ReduceLROnPlateau()]), ArgumentError,
         "cannot change the learning rate of a schedule-driven optimizer"),
        (dict(callbacks=["early"]), ArgumentTypeError, "`callbacks`"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    model = _model(2)
    x, y = tiny_images(4)
    with pytest.raises(error, match=match):
        fine_tune(model, (x, y), **kwargs)


def test_bad_data():
    model = _model(2)
    x, y = tiny_images(4)
    with pytest.raises(DataError, match="4 inputs but 3 labels"):
        fine_tune(model, (x, y[:3]))
    with pytest.raises(ArgumentTypeError, match="`train` must be a tf.data.Dataset"):
        fine_tune(model, [1, 2, 3])
    with pytest.raises(DataError, match="`features` has 4 rows but `labels` has 3"):
        train_head_on_features(model, np.zeros((4, _FEATURES)), y[:3])


def test_loss_picker_for_every_task():
    from tfxfer.train.losses import compile_args, default_metrics

    image = _model(3)
    assert default_loss(image, np.array([0, 2])) == "sparse_categorical_crossentropy"
    assert default_loss(image, np.eye(3)[[0, 2]]) == "categorical_crossentropy"
    multilabel = _model(3, task="multilabel")
    assert default_metrics(multilabel, default_loss(multilabel, np.zeros((2, 3)))) == ["binary_accuracy"]
    assert default_metrics(_model(1, task="regression"), "mse") == []
    tokens = keras.Sequential([keras.Input((5, 4)), keras.layers.Dense(3, activation="softmax")])  # per-token tags
    assert default_loss(tokens, np.zeros((2, 5), "int32")) == "sparse_categorical_crossentropy"
    assert compile_args(tokens, np.zeros((2, 5)), weighted=True) == {
        "loss": "sparse_categorical_crossentropy", "weighted_metrics": ["accuracy"]}


def test_data_adaptor_takes_texts_token_tensors_and_sample_weights():
    texts = np.array(["good film", "bad film", b"great plot"], dtype=object)
    x, y = next(iter(as_dataset((texts, np.array([1, 0, 1])), batch_size=3)))
    assert x.dtype == tf.string and x.numpy().tolist() == [b"good film", b"bad film", b"great plot"]
    tokens = {"token_ids": np.ones((4, 6), "int32"), "padding_mask": np.ones((4, 6), "int32")}
    batch = next(iter(as_dataset((tokens, np.zeros((4, 6), "int32"), np.ones((4, 6), "float32")), batch_size=2)))
    assert len(batch) == 3 and batch[0]["token_ids"].shape == (2, 6) and batch[2].shape == (2, 6)
    with pytest.raises(DataError, match="`train` has 4 inputs but 3 sample weights"):
        as_dataset((tokens, np.zeros(4), np.ones(3)), name="train")


def test_staged_unfreezing_round_trips():
    from tfxfer.train.unfreeze import StagedUnfreezing

    cb = StagedUnfreezing({0: ["top"], 2: 3}, learning_rates={0: 1e-3, 2: 1e-4}, warmup_epochs=0.5, decay="linear",
                          verbose=0)
    config = cb.get_config()
    assert config["warmup_epochs"] == 0.5 and config["decay"] == "linear"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert type(restored) is StagedUnfreezing and restored.get_config() == config
    with pytest.raises(ArgumentError, match="`lr_decay` must be one of cosine, linear"):
        StagedUnfreezing({0: 1}, decay="step")
