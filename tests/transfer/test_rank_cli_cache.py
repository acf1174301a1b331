"""``tfxfer rank`` keeps features in its cache between runs (``--cache DIR``; ``--no-cache``)."""

import json

import numpy as np
import pytest

from tfxfer.cli import main
from tests.factories import make_simple_folder


def _rank_argv(data, cache):
    return ["rank", str(data), "--candidates", "mobilenet_v2:random@32", "--no-cost", "--cache", str(cache),
            "--json", "-q"]


@pytest.fixture(scope="module")
def first_ranking(tmp_path_factory):
    """One in-process `tfxfer rank` into an empty cache (features and a TFLite extractor kept), shared by
    the two tests that rank again from that cache: each works on its own copy of the cache folder."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("rank_cache")
    data = root / "data"
    make_simple_folder(data, {"a": 6, "b": 6})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(_rank_argv(data, root / "c")) == 0
    return {"data": data, "cache": root / "c", "first": json.loads(out.getvalue())["candidates"][0]}


def _cache_copy(first_ranking, tmp_path):
    import shutil

    return shutil.copytree(first_ranking["cache"], tmp_path / "c")


def test_second_cli_ranking_reads_the_cache(first_ranking, tmp_path, capsys):
    data, first = first_ranking["data"], first_ranking["first"]
    argv = _rank_argv(data, _cache_copy(first_ranking, tmp_path))
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)["candidates"][0]
    assert not first["features_cached"] and second["features_cached"]
    assert second["logme"] == first["logme"] and 0.0 <= second["knn"] <= 1.0
    assert np.isfinite(second["knn"])
    assert main(["rank", str(data), "--candidates", "mobilenet_v2", "--cache", "x", "--no-cache"]) == 2
    assert "--no-cache" in capsys.readouterr().err


def test_default_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    import argparse

    from tfxfer.cli.rank import cache_dir

    args = argparse.Namespace(cache=None, no_cache=False)
    monkeypatch.setenv("TFXFER_CACHE_DIR", str(tmp_path))
    assert cache_dir(args) == str(tmp_path / "ranking")
    monkeypatch.delenv("TFXFER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir(args) == str(tmp_path / "xdg" / "tfxfer" / "ranking")
    assert cache_dir(argparse.Namespace(cache=None, no_cache=True)) is None


def test_rank_reads_locally_supplied_imagenet_weights(tmp_path, capsys):
    from tfxfer.backbones import get_spec

    data = tmp_path / "data"
    make_simple_folder(data, {"a": 6, "b": 6})
    weights = tmp_path / "weights"
    weights.mkdir()
    get_spec("mobilenet_v2").top_builder((32, 32, 3), None).save_weights(weights / "mobilenet_v2.weights.h5")
    argv = ["rank", str(data), "--candidates", "mobilenet_v2@32", "--no-cost", "--no-cache", "--json", "-q"]
    assert main([*argv, "--weights-dir", str(weights)]) == 0
    row = json.loads(capsys.readouterr().out)["candidates"][0]
    assert row["candidate"] == "mobilenet_v2@32" and row["weights"] == str(weights / "mobilenet_v2.weights.h5")
    assert row["leep"] is not None and row["knn"] is not None
    assert main([*argv, "--weights-dir", str(tmp_path / "nope")]) == 2
    assert "--weights-dir" in capsys.readouterr().err


def test_extractors_kept_by_one_process_are_read_by_the_next(first_ranking, tmp_path):
    """The default ranking keeps a TFLite extractor in the cache; a new `tfxfer rank` process ranking new
    data reads it (same file, untouched) and scores the same features."""
    import os
    import shutil
    import subprocess
    import sys

    data, first = first_ranking["data"], first_ranking["first"]
    cache = _cache_copy(first_ranking, tmp_path)
    argv = _rank_argv(data, cache)
    kept = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (cache / "extractors").iterdir()}
    assert any(name.endswith(".tflite") for name in kept)
    shutil.rmtree(cache / "features")  # new data, as far as the cache can tell
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-m", "tfxfer.cli", *argv], capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = json.loads(proc.stdout)["candidates"][0]
    assert not second["features_cached"]
    assert second["logme"] == pytest.approx(first["logme"], rel=1e-9)  # same features; BLAS may round differently
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (cache / "extractors").iterdir()}
    assert after == kept  # read, not converted and written again
