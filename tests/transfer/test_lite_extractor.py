"""Ranking's TFLite extractors: the same features as the Keras model, converted once per
(backbone, weights, input size) into the ranking cache, loaded without a Keras build afterwards,
and a Keras fallback where a file does not convert or reproduce its model."""

import os

import numpy as np
import pytest

import tfxfer.transfer.feature_pass as fp
import tfxfer.transfer.lite_extractor as le
from tfxfer.errors import ArgumentError, ArgumentTypeError, ExportError
from tfxfer.transfer import Candidate
from tfxfer.transfer.cache import RankingCache
from tfxfer.transfer.feature_pass import extract_candidates

PAIR = (Candidate("efficientnet_lite0"), Candidate("efficientnet_lite0", weights=None))


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()) + 1e-7)


def test_extractors_match_keras_load_without_a_build_and_a_damaged_one_is_rewritten(bright_dark_images, tmp_path,
                                                                                      monkeypatch):
    x = bright_dark_images[0][:10]
    keras_path = extract_candidates(PAIR, x, input_size=(32, 32))
    cache = RankingCache(tmp_path)
    first = extract_candidates(PAIR, x, input_size=(32, 32), extractor_cache=cache)
    files = sorted(tmp_path.joinpath("extractors").glob("*.tflite"))
    assert len(files) == 2
    build = fp._build
    monkeypatch.setattr(fp, "_build", lambda *a, **k: pytest.fail("a Keras model was built"))
    second = extract_candidates(PAIR, x, input_size=(32, 32), extractor_cache=cache)
    for c in PAIR:
        _close(first[c.label][0].features, keras_path[c.label][0].features)
        _close(first[c.label][0].source_probs, keras_path[c.label][0].source_probs)
        np.testing.assert_array_equal(first[c.label][0].features, second[c.label][0].features)
    assert not np.allclose(first[PAIR[0].label][0].features, first[PAIR[1].label][0].features)
    # a damaged file is a miss: converted again (one build for the pair) and rewritten
    monkeypatch.setattr(fp, "_build", build)
    files[0].write_bytes(files[0].read_bytes()[:100])
    third = extract_candidates(PAIR, x, input_size=(32, 32), extractor_cache=cache)
    assert files[0].stat().st_size > 1000
    for c in PAIR:
        np.testing.assert_array_equal(first[c.label][0].features, third[c.label][0].features)


def test_an_extractor_that_does_not_convert_falls_back_to_keras(tiny_specs, bright_dark_images, tmp_path,
                                                               monkeypatch):
    def refuse(*args):
        raise ExportError("no TFLite for this one")

    monkeypatch.setattr(le, "convert_extractor", refuse)
    x = bright_dark_images[0][:6]
    random = [Candidate(tiny_specs[0], weights=None)]  # any architecture: the conversion is refused
    out = extract_candidates(random, x, input_size=(16, 16), extractor_cache=RankingCache(tmp_path))
    reference = extract_candidates(random, x, input_size=(16, 16))
    np.testing.assert_array_equal(out[random[0].label][0].features, reference[random[0].label][0].features)
    assert not os.path.isdir(tmp_path / "extractors")  # nothing stored


def test_a_file_that_does_not_reproduce_its_model_is_refused(monkeypatch):
    import keras

    inputs = keras.Input((6, 6, 1))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3)(inputs)))
    probe = np.random.default_rng(0).uniform(0, 255, (2, 6, 6, 1)).astype("float32")
    monkeypatch.setattr(le, "TOLERANCE", -1.0)  # nothing can be close enough
    with pytest.raises(ExportError, match="does not reproduce its output 0"):
        le.convert_extractor(model, probe)
    with pytest.raises(ArgumentError, match="probe"):
        le.convert_extractor(model, probe[0])


def test_rank_backbones_converts_small_backbones_by_default_and_then_reuses_the_extractors(
        bright_dark_images, tmp_path, monkeypatch):
    import shutil

    from tfxfer.transfer import rank_backbones
    from tfxfer.transfer import ranking

    x, y = bright_dark_images
    kwargs = dict(input_size=(32, 32), scores=("logme",), measure_cost=False, verbose=0, cache_dir=tmp_path)
    plain = rank_backbones((x, y), ["mobilenet_v2:random"], convert_extractors=False, **kwargs).to_rows()[0]
    assert not os.path.isdir(tmp_path / "extractors")  # False: rankings run in TensorFlow, nothing converted
    shutil.rmtree(tmp_path / "features")  # new data, as far as the cache can tell
    monkeypatch.setattr(ranking, "AUTO_CONVERT_MAX_PARAMS", 1_000_000)  # mobilenet_v2 has 2.26M: too large
    rank_backbones((x, y), ["mobilenet_v2:random"], **kwargs)
    assert not os.path.isdir(tmp_path / "extractors")
    monkeypatch.undo()
    shutil.rmtree(tmp_path / "features")
    converted = rank_backbones((x, y), ["mobilenet_v2:random"], **kwargs).to_rows()[0]  # default: small, converted
    assert os.listdir(tmp_path / "extractors")
    assert converted["logme"] == pytest.approx(plain["logme"], rel=1e-3)
    shutil.rmtree(tmp_path / "features")
    monkeypatch.setattr(fp, "_build", lambda *a, **k: pytest.fail("a Keras model was built"))
    reused = rank_backbones((x, y), ["mobilenet_v2:random"], convert_extractors=False, **kwargs).to_rows()[0]
    assert reused["logme"] == converted["logme"] and not reused["features_cached"]  # held ones are always used
    with pytest.raises(ArgumentTypeError, match="convert_extractors"):
        rank_backbones((x, y), ["mobilenet_v2:random"], convert_extractors="yes", **kwargs)
