"""Sequence classifiers: raw strings in, probabilities out; single/multi-label; class weights; round trips."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_text_encoder
from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError, ModelError
from tfxfer.text import (WeightedBinaryCrossentropy, build_text_classifier, predict_texts, text_class_weights,
                         token_model)
from tfxfer.text.graph import text_parts
from tfxfer.train.fine_tune import fine_tune

TEXTS = np.array(["good film", "bad film", "great plot", "awful plot", "loved it", "hated it"] * 4, dtype=object)
LABELS = np.array([1, 0, 1, 0, 1, 0] * 4)


def test_multiclass_fine_tune_learns_and_round_trips(tmp_path):
    model = build_text_classifier(tiny_text_encoder(sequence_length=8), 2, pooling="mean")
    # 10 epochs: "loved the film" sits near p=0.5 after 8 (with the old loop too: 0.51-0.56 over seeds)
    result = fine_tune(model, (TEXTS, LABELS), head_epochs=0, epochs=10, batch_size=8, base_lr=1e-2,
                       unfreeze_lr_factor=1.0, layer_decay=0.5, class_weight=text_class_weights(LABELS), verbose=0)
    assert result.history["accuracy"][-1] == 1.0
    held_out = ["good plot", "awful film", "loved the film", "hated the plot"]
    probs = predict_texts(model, held_out)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs.argmax(1).tolist() == [1, 0, 1, 0]
    path = str(tmp_path / "clf.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(predict_texts(loaded, held_out), probs, atol=1e-6)
    ids = text_parts(model).tokenizer.tokenize(np.array(held_out, dtype=object))
    np.testing.assert_allclose(token_model(loaded).predict(ids, verbose=0), probs, atol=1e-5)


@pytest.mark.parametrize("pooling", ["pooled", "cls"])
def test_pooling_modes_and_hidden_layer(pooling):
    model = build_text_classifier(tiny_text_encoder(sequence_length=8, num_layers=1), 3, pooling=pooling,
                                  hidden_units=4)
    assert [l.name for l in text_parts(model).head] == ["head_dropout", "head_hidden", "head"]
    probs = predict_texts(model, ["good film", "", "unbelievable " * 20])
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_multilabel_with_weighted_loss():
    encoder = tiny_text_encoder(sequence_length=8, num_layers=1)
    model = build_text_classifier(encoder, 3, task="multilabel")
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 1], [1, 0, 0], [0, 1, 0]] * 4, dtype="float32")
    weights = text_class_weights(y)
    np.testing.assert_allclose(weights, [1.0, 1.0, 2.0])
    loss = WeightedBinaryCrossentropy(weights)
    fine_tune(model, (TEXTS, y), head_epochs=0, epochs=1, batch_size=8, base_lr=1e-3, unfreeze_lr_factor=1.0,
              loss=loss, verbose=0)
    probs = predict_texts(model, ["good film", "hated it"])
    assert probs.shape == (2, 3) and ((probs > 0) & (probs < 1)).all()
    assert not np.allclose(probs.sum(axis=1), 1.0)  # independent sigmoids
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model.loss))
    assert isinstance(restored, WeightedBinaryCrossentropy) and restored.positive_weights == [1.0, 1.0, 2.0]


def test_weighted_binary_crossentropy_values():
    y_true = np.array([[1.0, 0.0]], dtype="float32")
    y_pred = np.array([[0.8, 0.3]], dtype="float32")
    plain = float(keras.losses.BinaryCrossentropy()(y_true, y_pred))
    same = float(WeightedBinaryCrossentropy([1.0, 1.0])(y_true, y_pred))
    assert same == pytest.approx(plain, rel=1e-5)
    heavy = float(WeightedBinaryCrossentropy([3.0, 1.0])(y_true, y_pred))
    assert heavy == pytest.approx((-3 * np.log(0.8) - np.log(0.7)) / 2, rel=1e-5)
    config = WeightedBinaryCrossentropy([3.0, 1.0]).get_config()
    assert WeightedBinaryCrossentropy.from_config(config).positive_weights == [3.0, 1.0]


def test_class_weights_single_label():
    weights = text_class_weights(np.array([0, 0, 0, 1]))
    assert weights == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}
    with pytest.raises(DataError, match="no example"):
        text_class_weights(np.array([0, 0, 2]))
    with pytest.raises(DataError, match="no positive"):
        text_class_weights(np.array([[1, 0], [1, 0]]))
    with pytest.raises(DataError, match="empty"):
        text_class_weights(np.array([]))


def test_errors():
    encoder = tiny_text_encoder(sequence_length=8, num_layers=1)
    with pytest.raises(ArgumentError, match="num_classes"):
        build_text_classifier(encoder, 1)
    for dropout in ("0.1", None, float("nan")):  # a typed error, not a raw TypeError from the range check
        with pytest.raises(ArgumentError, match=r"`dropout` must be a finite number in \[0, 1\)"):
            build_text_classifier(encoder, 2, dropout=dropout)
    with pytest.raises(ArgumentError, match="`hidden_units` must be an int >= 1 or None"):
        build_text_classifier(encoder, 2, hidden_units=0)
    model = build_text_classifier(encoder, np.int64(3), dropout=np.float32(0.2), hidden_units=np.int64(4))
    assert model.output_shape == (None, 3)  # numpy numbers (e.g. labels.max() + 1) are numbers
    with pytest.raises(ArgumentError, match="task"):
        build_text_classifier(encoder, 2, task="regression")
    with pytest.raises(ArgumentError, match="pooling"):
        build_text_classifier(encoder, 2, pooling="tokens")
    with pytest.raises(ArgumentError, match="pooling"):
        build_text_classifier(encoder, 2, pooling="max")
    with pytest.raises(ArgumentTypeError, match="TextEncoder"):
        build_text_classifier(encoder.backbone, 2)
    with pytest.raises(ArgumentError, match="positive_weights"):
        WeightedBinaryCrossentropy([1.0, 0.0])
    with pytest.raises(ModelError, match="not a tfxfer text model"):
        token_model(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
    model = build_text_classifier(encoder, 2)
    with pytest.raises(DataError, match="24 inputs but 3 labels"):
        fine_tune(model, (TEXTS, LABELS[:3]), verbose=0)
