"""Real shifts on packaged data with real pretrained weights (slow): flagged, and a random split is not."""

import numpy as np
import pytest

from tfxfer.adapt import detect_shift

pytestmark = pytest.mark.slow


def _take(split, n, seed=0):
    idx = np.sort(np.random.default_rng(seed).choice(len(split.y), size=min(n, len(split.y)), replace=False))
    return split.x[idx], split.y[idx]


def test_elpv_cell_types_differ_in_efficientnet_features_and_random_halves_do_not():
    import tensorflow as tf

    import tfxfer
    from tfxfer.data.domains import domain_pair

    pair = domain_pair("elpv_mono_to_poly")
    model = tfxfer.build_model("efficientnet_lite0", 2, input_size=(96, 96), channels=1, weights="imagenet")

    def small(x):
        return tf.image.resize(x.astype("float32"), (96, 96)).numpy()

    xs, ys = _take(pair.source_train, 150)
    xt, yt = _take(pair.target_train, 150)
    shifted = detect_shift(model, (small(xs), ys), (small(xt), yt))
    assert shifted.shifted and shifted.p_value < 0.01, shifted.summary()
    pool, pool_y = _take(pair.source_train, 300, seed=1)
    order = np.random.default_rng(2).permutation(len(pool_y))
    same = detect_shift(model, (small(pool[order[:150]]), pool_y[order[:150]]), small(pool[order[150:]]))
    assert same.p_value > 0.05, same.summary()


def test_sentiment_domains_differ_in_minilm_embeddings():
    from tfxfer.data.domains import domain_pair
    from tfxfer.text import load_encoder

    encoder = load_encoder("all-minilm-l6-v2", sequence_length=48)
    pair = domain_pair("sentiment_movies_to_tweets")
    result = detect_shift(encoder, _take(pair.source_val, 200), _take(pair.target_train, 200)[0])
    assert result.shifted and result.domain_auc > 0.8, result.summary()
