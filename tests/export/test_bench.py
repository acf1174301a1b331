"""Benchmark and export_all table (no timing assertions: only that numbers are measured)."""

import os

import pytest

from tfxfer.errors import ArgumentError
from tfxfer.export import benchmark_many, benchmark_tflite, export_all

from .conftest import CLASS_NAMES


def test_benchmark_measures_size_latency_and_memory(exported):
    result = benchmark_tflite(exported["int8"].path, threads=(1, 2), warmup=2, runs=5)
    assert result.size_bytes == os.path.getsize(exported["int8"].path)
    assert set(result.latency) == {"1", "2"}
    for stats in result.latency.values():
        assert 0 < stats["min_ms"] <= stats["median_ms"] <= stats["p90_ms"]
    assert result.peak_rss_mib > result.runtime_rss_mib > 0
    assert result.median_ms(1) == result.latency["1"]["median_ms"]


def test_benchmark_many_interleaves_files(exported):
    paths = [exported["float32"].path, exported["int8"].path]
    seen = []
    results = benchmark_many(paths, threads=(1,), warmup=1, runs=6, rounds=3, memory=False,
                             progress=lambda done, total: seen.append((done, total)))
    assert seen == [(k, 6) for k in range(1, 7)]  # 3 rounds x 2 files, reported as they finish
    assert sorted(results) == sorted(paths)
    for path, result in results.items():
        assert result.size_bytes == os.path.getsize(path) and result.latency["1"]["median_ms"] > 0
        assert result.model_memory_mib != result.model_memory_mib  # NaN: not measured
    with pytest.raises(ArgumentError, match="at least one"):
        benchmark_many([])


def test_benchmark_argument_errors(exported):
    for kwargs, match in [({"threads": ()}, "threads"), ({"threads": (0,)}, "threads"), ({"runs": 0}, "runs"),
                          ({"warmup": -1}, "warmup"), ({"batch_size": 0}, "batch_size"),
                          ({"rounds": 0}, "rounds")]:
        with pytest.raises(ArgumentError, match=match):
            benchmark_tflite(exported["float32"].path, **kwargs)


def test_benchmark_missing_file(tmp_path):
    with pytest.raises(ArgumentError, match="existing .tflite"):
        benchmark_tflite(tmp_path / "nope.tflite")


def test_export_all_table(trained_model, color_data, tmp_path):
    (x, _), (xt, yt) = color_data
    table = export_all(trained_model, tmp_path, variants=("float32", "float16", "dynamic", "int8"),
                       representative_data=x, eval_data=(xt, yt), class_names=CLASS_NAMES,
                       threads=(1, 2), bench_runs=5, name="tiny")
    assert table.passed
    assert [r["variant"] for r in table.rows] == ["float32", "float16", "dynamic", "int8"]
    base = table.rows[0]
    assert base["size_ratio"] == 1.0 and base["latency_ratio"] == 1.0
    for row in table.rows:
        assert row["latency_ms"] > 0 and row["latency_nt_ms"] > 0 and row["p90_ms"] >= row["latency_ms"]
        assert row["gate"] == "pass"
    assert table.rows[1]["size_ratio"] < 1.0
    text = table.format()
    assert "size ratio" in text and "int8" in text
    assert os.path.exists(table.report_path)
    for variant in ("float32", "float16", "dynamic", "int8"):
        assert os.path.exists(tmp_path / f"tiny_{variant}.tflite")
        assert os.path.exists(tmp_path / f"tiny_{variant}.json")


def test_export_all_argument_errors(trained_model, color_data, tmp_path):
    _, (xt, yt) = color_data
    for kwargs, match in [({"variants": ("float32", "float32")}, "distinct"),
                          ({"variants": ("bf16",)}, "may only contain"),
                          ({"variants": ("int8",)}, "representative_data"),
                          ({"eval_data": xt, "variants": ("float32",)}, "must carry labels")]:
        with pytest.raises(ArgumentError, match=match):
            export_all(trained_model, tmp_path, **{"eval_data": (xt, yt), "benchmark": False, **kwargs})


def test_token_id_models_get_every_input_filled(tmp_path):
    """A text .tflite (token ids + padding mask): both inputs are fed, ids in range, mask all ones."""
    import keras
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from tfxfer.export import _bench_worker

    ids = keras.Input((8,), dtype="int32", name="token_ids")
    mask = keras.Input((8,), dtype="int32", name="padding_mask")
    x = keras.layers.Embedding(128, 4)(ids) * keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    model = keras.Model([ids, mask], keras.layers.Dense(2)(keras.ops.sum(x, axis=1)))
    path = tmp_path / "text.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    interpreter, run = _bench_worker._prepare(Interpreter, np, str(path), 1, 2, np.random.default_rng(0))
    run()
    fed = {d["name"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_input_details()}
    by_kind = {("mask" if "mask" in k else "ids"): v for k, v in fed.items()}
    assert by_kind["mask"].shape == by_kind["ids"].shape == (2, 8) and (by_kind["mask"] == 1).all()
    assert 1 <= by_kind["ids"].min() and by_kind["ids"].max() < 5
    result = benchmark_tflite(path, threads=(1,), warmup=1, runs=3, memory=False)
    assert result.latency["1"]["median_ms"] > 0
