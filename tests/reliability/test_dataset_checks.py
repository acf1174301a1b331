"""tf.data inputs that cannot train the model fail with a `DataError` naming the argument, before training."""

from __future__ import annotations


import numpy as np
import pytest
import tensorflow as tf

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import DataError
from tfxfer.train.fine_tune import fine_tune

X, Y = tiny_images(16, size=16)


@pytest.fixture(scope="module")
def model():
    return tiny_model(2, backbone=tiny_spec("convs"), size=16, seed=0)


def _ds(*parts):
    return tf.data.Dataset.from_tensor_slices(parts if len(parts) > 1 else parts[0])


@pytest.mark.parametrize("train, message", [
    (_ds(X, Y), r"`train` is an unbatched tf.data.Dataset \(its images have shape \(16, 16, 3\)\): call .batch"),
    (_ds({"image": X, "label": Y}).batch(4), r"`train` yields dicts with keys \['image', 'label'\]"),
    (_ds(X).batch(4), r"`train` yields single tensors \(inputs without labels\)"),
    (_ds(np.zeros((16, 20, 20, 3), "float32"), Y).batch(4),
     r"`train` yields images of shape \(20, 20, 3\) but the model takes \(16, 16, 3\)"),
    (_ds(X, np.array(["a", "b"] * 8)).batch(4), "`train` yields string labels"),
    (_ds(X, np.eye(3, dtype="float32")[Y]).batch(4), "`train` yields label rows of width 3 but the model's head has 2"),
])
def test_fine_tune_names_what_a_dataset_yields(model, train, message):
    with pytest.raises(DataError, match=message):
        fine_tune(model, train, head_epochs=1, epochs=0, batch_size=4, verbose=0, use_cached_features=True)


def test_val_and_test_datasets_are_checked_before_any_training(model):
    good = _ds(X, Y).batch(4)
    with pytest.raises(DataError, match="`val` is an unbatched"):
        fine_tune(model, good, val=_ds(X, Y), head_epochs=1, epochs=0, batch_size=4, verbose=0, use_cached_features=True)
    with pytest.raises(DataError, match="`test` yields dicts"):
        fine_tune(model, good, test=_ds({"x": X, "y": Y}).batch(4), head_epochs=1, epochs=0, batch_size=4, verbose=0, use_cached_features=True)


def test_val_labels_in_another_format_than_train_are_named(model):
    for val in (_ds(X, np.eye(2, dtype="float32")[Y]).batch(4), (X, np.eye(2, dtype="float32")[Y])):
        with pytest.raises(DataError, match=r"`val` labels have shape \(None, 2\) per batch but `train`'s have \(None,\)"):
            fine_tune(model, _ds(X, Y).batch(4), val=val, head_epochs=1, epochs=0, batch_size=4, verbose=0,
                      use_cached_features=True)


def test_a_well_formed_dataset_still_trains(model):
    result = fine_tune(model, _ds(X, Y).batch(4), val=_ds(X, Y).batch(4),
                       head_epochs=1, epochs=0, batch_size=4, verbose=0, use_cached_features=True)
    assert len(result.history["loss"]) == 1


def test_text_dataset_unbatched_is_named():
    from tfxfer.text import build_bert_encoder, build_text_classifier

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]
    encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16, num_heads=2, sequence_length=6)
    text_model = build_text_classifier(encoder, 2)
    texts = np.array(["good", "bad"] * 4, dtype=object)
    with pytest.raises(DataError, match="`train` is an unbatched tf.data.Dataset \\(one text per element\\)"):
        fine_tune(text_model, _ds(texts, np.array([1, 0] * 4)), head_epochs=1, epochs=0, batch_size=4, verbose=0, use_cached_features=True)
