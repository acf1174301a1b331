"""Smaller pieces of the pipeline: fingerprints, data sources, metrics, the learning-rate log, the console."""

import io
import json
import os

import numpy as np
import pytest

from tfxfer.errors import ArgumentError, ConfigError
from tfxfer.recipes.config_loader import load_config
from tfxfer.recipes.context import RunContext
from tfxfer.recipes.fingerprint import arrays_fingerprint, fingerprint, package_fingerprint, path_fingerprint
from tfxfer.metrics import classification_metrics, reliability
from tfxfer.recipes.sources import resolve_source


def test_path_fingerprint_tracks_names_and_contents(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.png").write_bytes(b"one")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x").write_bytes(b"ignored")
    first = path_fingerprint(tmp_path)
    (tmp_path / ".hidden" / "x").write_bytes(b"changed")
    assert path_fingerprint(tmp_path) == first
    (tmp_path / "a" / "1.png").write_bytes(b"uno")
    second = path_fingerprint(tmp_path)
    assert second != first
    os.rename(tmp_path / "a" / "1.png", tmp_path / "a" / "2.png")
    assert path_fingerprint(tmp_path) not in (first, second)


def test_other_fingerprints():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1}) != fingerprint({"a": 2})
    x = np.arange(6, dtype=np.uint8)
    assert arrays_fingerprint(x) == arrays_fingerprint(x.copy()) != arrays_fingerprint(x.reshape(2, 3))
    assert arrays_fingerprint(np.array(["a", "b"], object)) != arrays_fingerprint(np.array(["ab", ""], object))
    assert len(package_fingerprint("animal-mnist")) == 64 and package_fingerprint("no-such-package-xyz") is None


def test_sources(tmp_path):
    def cfg(source, task="image_classification"):
        return load_config(text=f"task: {task}\ndata: {{source: '{source}'}}")

    assert resolve_source(cfg("Animal-MNIST")).value == "animal_mnist"
    assert resolve_source(cfg(str(tmp_path))).kind == "folder"
    table = tmp_path / "t.csv"
    table.write_text("path,label\n")
    assert resolve_source(cfg(str(table))).kind == "table"
    assert resolve_source(cfg(str(table), "token_classification")).kind == "conll"
    with pytest.raises(ConfigError, match=r"packaged data set 'sentiment_movies' is for text_classification"):
        resolve_source(cfg("sentiment_movies"))
    with pytest.raises(ConfigError, match=r"is a folder; text_classification reads a table file"):
        resolve_source(cfg(str(tmp_path), "text_classification"))
    with pytest.raises(ConfigError, match=r"folder or file not found: ./nowhere"):
        resolve_source(cfg("./nowhere"))
    with pytest.raises(ConfigError, match=r"unknown packaged data set 'ELVP'\. Did you mean 'elpv'\?"):
        resolve_source(cfg("ELVP"))
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(ConfigError, match=r"is not a table"):
        resolve_source(cfg(str(tmp_path / "notes.md")))


def test_metrics_match_scikit_learn():
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 4))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 4, 200)
    m = classification_metrics(probs, labels, ["a", "b", "c", "d"])
    pred = probs.argmax(1)
    p, r, f, s = precision_recall_fscore_support(labels, pred, zero_division=0)
    assert m["confusion"] == confusion_matrix(labels, pred).tolist()
    np.testing.assert_allclose([c["precision"] for c in m["per_class"]], p, atol=1e-4)
    np.testing.assert_allclose([c["recall"] for c in m["per_class"]], r, atol=1e-4)
    assert m["macro_f1"] == pytest.approx(f1_score(labels, pred, average="macro"), abs=1e-4)
    assert [c["support"] for c in m["per_class"]] == s.tolist()
    one_hot = np.eye(4)[labels]
    assert classification_metrics(probs, one_hot, list("abcd"))["accuracy"] == m["accuracy"]


def test_ece_matches_the_export_gate_definition():
    from tfxfer.metrics import expected_calibration_error

    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3) * 0.5, 300)
    labels = rng.integers(0, 3, 300)
    ece, table = reliability(probs, labels, bins=15)
    assert ece == pytest.approx(expected_calibration_error(probs, labels, bins=15), abs=1e-3)
    assert sum(b["count"] for b in table) == 300
    perfect = np.eye(3)[labels]
    assert reliability(perfect, labels, bins=10)[0] == 0.0


def test_learning_rate_log_round_trip_and_validation():
    import keras

    from tfxfer.recipes.training_log import LearningRateLog

    log = LearningRateLog(every=2, epoch_offset=3)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(log))
    assert isinstance(again, LearningRateLog) and again.get_config() == {"every": 2, "epoch_offset": 3.0,
                                                                          "max_points": 4096}
    with pytest.raises(ArgumentError, match=r"`every` must be an int >= 1"):
        LearningRateLog(every=0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(np.zeros((8, 2)), np.zeros(8), batch_size=2, epochs=1, callbacks=[log], verbose=0)
    assert [s["step"] for s in log.steps] == [2, 4] and log.steps[-1]["epoch"] == 4.0
    assert log.steps[0]["lr"] == pytest.approx(0.1)


def test_learning_rate_log_stays_bounded_and_thins_evenly_across_a_resume():
    """The whole log rides in every checkpoint: a long run grew it without bound."""
    import keras

    from tfxfer.recipes.training_log import LearningRateLog

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.zeros((40, 2))
    log = LearningRateLog(max_points=8)
    model.fit(x, np.zeros(40), batch_size=1, epochs=1, callbacks=[log], verbose=0)  # 40 steps
    assert len(log.steps) <= 8 and [s["step"] for s in log.steps] == list(range(log.every, 41, log.every))
    resumed = LearningRateLog(max_points=8)
    resumed.restore_state(log.get_state())
    model.fit(x, np.zeros(40), batch_size=1, epochs=1, callbacks=[resumed], verbose=0)
    straight = LearningRateLog(max_points=8)
    model.fit(np.zeros((80, 2)), np.zeros(80), batch_size=1, epochs=1, callbacks=[straight], verbose=0)
    assert [s["step"] for s in resumed.steps] == [s["step"] for s in straight.steps]
    assert len(straight.steps) <= 8 and straight.every == 16
    with pytest.raises(ArgumentError, match="max_points"):
        LearningRateLog(max_points=1)


def test_console_modes():
    from tfxfer.recipes.console import Console

    quiet, normal, verbose = (Console(v, stream=io.StringIO()) for v in (0, 1, 2))
    for c in (quiet, normal, verbose):
        c.stage("data", "done", "1.0s")
        c.detail("fingerprint 123")
        c.always("Report: x")
    assert quiet.stream.getvalue() == "Report: x\n"
    assert "data      done" in normal.stream.getvalue() and "fingerprint" not in normal.stream.getvalue()
    assert "  fingerprint 123" in verbose.stream.getvalue()
    assert quiet.keras_verbose == 0 and normal.keras_verbose == 2  # not a terminal: one line per epoch
    with pytest.raises(ArgumentError, match=r"`verbosity` must be 0"):
        Console(3)
    for c in (quiet, normal):
        bar = c.counter(desc="benchmark", unit="block")
        bar.update(1, 4)
        bar.update(4, 4)
        bar.close()
    assert "benchmark" not in quiet.stream.getvalue()
    # not a terminal: one plain line per finished loop, no progress bar or carriage returns
    assert "  benchmark: 4/4 block in " in normal.stream.getvalue() and "\r" not in normal.stream.getvalue()


def _result(variant, passed, drop):
    from tfxfer.export.gate import VariantResult

    return VariantResult(variant=variant, path=None, passed=passed, failures=[] if passed else [f"drop {drop}"],
                         examples=10, max_abs_error=0.1, mean_abs_error=0.01, top1_agreement=0.9, keras_accuracy=0.8,
                         tflite_accuracy=0.8 - drop / 100, accuracy_drop=drop, ece_keras=None, ece_tflite=None,
                         per_class=[], thresholds={})


@pytest.mark.parametrize("qat_passes, expected", [(True, True), (False, False)])
def test_a_passing_qat_file_supersedes_a_failing_post_training_int8(tmp_path, qat_passes, expected):
    from tfxfer.recipes.export_stages import record_gate

    cfg = load_config(text="data: {source: x}\nexport: {variants: [float32, int8], deliver: int8}")
    ctx = RunContext(cfg, tmp_path)
    exports = {v: {"path": f"export/m_{v}.tflite", "size_bytes": 1000, "sidecar": f"export/m_{v}.json"}
               for v in ("float32", "int8", "int8_qat")}
    results = {"float32": _result("float32", True, 0.0), "int8": _result("int8", False, 2.7),
               "int8_qat": _result("int8_qat", qat_passes, 0.4 if qat_passes else 3.0)}
    out = record_gate(ctx, exports, results, {}, deliver="int8_qat" if qat_passes else None)
    assert out["passed"] is expected
    if qat_passes:
        assert out["deliver"] == "export/m_int8_qat.tflite" and out["failed"] == []
    else:
        # both int8 files failed: the float32 file that passed ships instead, and the run still fails
        assert out["deliver"] == "export/m_float32.tflite" and out["failed"] == ["int8", "int8_qat"]
    assert [r["gate"] for r in out["rows"]] == ["pass", "FAIL", "pass" if qat_passes else "FAIL"]
    assert json.loads((tmp_path / "export" / "m_int8.json").read_text())["gate"]["passed"] is False
