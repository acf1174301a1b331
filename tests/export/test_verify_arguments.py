"""`verify` / `export_all` refuse what would make the gate meaningless, before any prediction: a
``thresholds`` key that names no variant (its default would stay in force), no files at all, and a file
that is missing, corrupt or of another model (typed errors naming ``exports`` and the file)."""

import numpy as np
import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import ArgumentError, ModelError
from tfxfer.export import convert_tflite, export_all, verify
from tfxfer.export.gate import DEFAULT_THRESHOLDS, resolve_thresholds


@pytest.fixture(scope="module")
def task():
    model = tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=1)
    return model, tiny_images(16, size=16, classes=3, seed=1)


@pytest.mark.parametrize("key,hint", [("INT8", "Did you mean 'int8'"), ("int-8", "Did you mean 'int8'"),
                                      ("fp16", None)])
def test_a_thresholds_key_that_names_no_variant_is_refused(key, hint):
    with pytest.raises(ArgumentError, match=rf"`thresholds\['{key}'\]` names no variant") as info:
        resolve_thresholds({key: {"max_accuracy_drop": 0.0}})
    assert hint is None or hint in str(info.value)
    assert resolve_thresholds({"int8_qat": {"max_accuracy_drop": 0.5}})["int8"] == DEFAULT_THRESHOLDS["int8"]
    assert resolve_thresholds({"mine": {"max_accuracy_drop": 0.5}}, names=["mine"])["mine"].max_accuracy_drop == 0.5


def test_export_all_refuses_a_misspelt_thresholds_key_before_any_work(task, tmp_path):
    model, (x, y) = task
    with pytest.raises(ArgumentError, match=r"thresholds\['INT8'\].*Did you mean 'int8'"):
        export_all(model, tmp_path / "out", variants=("int8",), representative_data=x, eval_data=(x, y),
                   benchmark=False, thresholds={"INT8": {"min_top1_agreement": 1.01}})
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_verify_keys_of_exports_may_carry_thresholds(task):
    model, (x, y) = task
    report = verify(model, {"mine": convert_tflite(model)}, (x, y), thresholds={"mine": {"max_abs_error": 1.0}})
    assert report.passed and report["mine"].thresholds["max_abs_error"] == 1.0


def test_verify_of_no_files_is_refused(task):
    model, (x, y) = task
    for empty in ({}, []):
        with pytest.raises(ArgumentError, match="`exports` must name at least one"):
            verify(model, empty, (x, y))


def test_verify_of_a_missing_corrupt_or_foreign_file_is_refused(task, tmp_path):
    model, (x, y) = task
    with pytest.raises(ArgumentError, match=r"`exports` must name existing .tflite files.*missing\.tflite"):
        verify(model, str(tmp_path / "missing.tflite"), (x, y))
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all" * 10)
    with pytest.raises(ModelError, match=r"`exports` file '.*junk\.tflite' is not a loadable"):
        verify(model, str(junk), (x, y))
    with pytest.raises(ModelError, match=r"`exports` file 230 .tflite bytes is not a loadable"):
        verify(model, bytes(junk.read_bytes()), (x, y))
    spec = tiny_spec("convs")
    other_classes = convert_tflite(tiny_model(2, backbone=spec, size=16, seed=1))
    other_size = convert_tflite(tiny_model(3, backbone=spec, size=24, seed=1))
    with pytest.raises(ModelError, match=r"gives 2 outputs, but the model .* gives 3: was it exported"):
        verify(model, other_classes, (x, y))
    with pytest.raises(ModelError, match=r"takes \(24, 24, 3\) images .* the model takes \(16, 16, 3\)"):
        verify(model, other_size, (x, y))
    assert np.isfinite(verify(model, convert_tflite(model), (x, y))["float32"].max_abs_error)
