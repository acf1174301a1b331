"""Text models train through the one core: the head step on cached encoder features (the encoder
runs once, stays bit-identical), the unfreezing step with the BERT plan, resume from checkpoints."""

import keras
import numpy as np
import pytest

from tests.factories import tiny_text_encoder
from tfxfer.text import build_text_classifier, build_token_classifier, token_model
from tfxfer.text.graph import text_parts, token_features
from tfxfer.train.fine_tune import fine_tune
from tfxfer.train.head import extract_features, split_at_pool

TEXTS = np.array(["good film", "bad film", "great plot", "awful plot", "loved it", "hated it"] * 4, dtype=object)
LABELS = np.array([1, 0, 1, 0, 1, 0] * 4)


class EncoderCalls(keras.callbacks.Callback):
    """Counts training batches per fit (a head fit on cached features sees the head model only)."""

    def __init__(self):
        super().__init__()
        self.models = []

    def on_train_begin(self, logs=None):
        self.models.append(self.model.name)


def test_text_head_trains_on_cached_encoder_features():
    model = build_text_classifier(tiny_text_encoder(sequence_length=8), 2, pooling="mean")
    feats, labels = extract_features(model, (TEXTS, LABELS), batch_size=5)
    tokens = text_parts(model).tokenizer.tokenize(TEXTS)
    np.testing.assert_allclose(feats, token_features(model).predict(tokens, verbose=0), atol=1e-5)
    np.testing.assert_array_equal(labels, LABELS)
    encoder_before = [w.copy() for w in text_parts(model).backbone.get_weights()]
    seen = EncoderCalls()
    result = fine_tune(model, (TEXTS, LABELS), val=(TEXTS[:6], LABELS[:6]), head_epochs=3, epochs=0, base_lr=1e-2,
                       batch_size=8, callbacks=[seen], verbose=0)
    assert seen.models == [f"{model.name}_head"]  # the encoder never ran inside fit
    assert result.stages == [{"epoch": 0, "trainable_groups": ["head"], "learning_rate": 1e-2, "cached_features": True}]
    assert len(result.history["val_accuracy"]) == 3 and result.history["loss"][-1] < result.history["loss"][0]
    for a, b in zip(text_parts(model).backbone.get_weights(), encoder_before):
        np.testing.assert_array_equal(a, b)


def test_text_plan_defaults_bert_recipe_and_resume(tmp_path):
    """None picks AdamW (weight decay 0.01), 10 % warmup then linear decay, the whole encoder at once;
    a second call on the same checkpoint folder hands back the finished run."""
    model = build_text_classifier(tiny_text_encoder(sequence_length=8), 2, pooling="mean")
    kw = dict(head_epochs=1, epochs=2, base_lr=1e-2, batch_size=8, checkpoint_dir=str(tmp_path), verbose=0)
    first = fine_tune(model, (TEXTS, LABELS), **kw)
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "DiscriminativeAdamW" and optimizer.weight_decay == pytest.approx(0.01)
    schedule = optimizer._learning_rate
    assert (schedule.decay, schedule.warmup_steps, schedule.decay_steps) == ("linear", 1, 5)  # 2 epochs x 3 steps
    assert schedule.peak_learning_rate == pytest.approx(1e-3)
    assert first.stages[-1]["trainable_groups"] == ["embeddings", "layer_0", "layer_1", "head"]
    again = build_text_classifier(tiny_text_encoder(sequence_length=8), 2, pooling="mean")
    second = fine_tune(again, (TEXTS, LABELS), **kw)
    assert second.resumed_from and second.history == first.history
    for a, b in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_split_at_pool_of_a_token_model():
    model = build_token_classifier(tiny_text_encoder(sequence_length=8, num_layers=1), ["O", "B-PER", "I-PER"])
    features, head = split_at_pool(token_model(model))
    assert tuple(features.output.shape) == (None, 8, 16) and [l.name for l in head.layers[1:]] == ["head_dropout",
                                                                                                   "head"]
    assert head.get_layer("head") is model.get_layer("head")
