"""An output path that is a folder, under a file or in a place no file can be created is refused with
`ArgumentError` naming ``path`` before any work (no conversion, no QAT training), and `export_tflite`
writes the sidecar only once the file its sha256 describes is in place."""

import contextlib
import os

import pytest

from tests.factories import tiny_images, tiny_model, tiny_spec
from tfxfer.errors import ArgumentError, ArgumentTypeError
from tfxfer.export import export_tflite


@pytest.fixture(scope="module")
def model():
    return tiny_model(3, backbone=tiny_spec("convs"), size=16, seed=1)


def _bad_paths(tmp_path):
    (tmp_path / "folder.tflite").mkdir()
    (tmp_path / "afile").write_text("x")
    bad = {"folder": (tmp_path / "folder.tflite", "is a folder"),
           "under_a_file": (tmp_path / "afile" / "m.tflite", "is a file, not a folder")}
    if os.path.isdir("/proc/self"):
        bad["no_file_can_be_made"] = ("/proc/m.tflite", "no file can be created in '/proc'")
    return bad


def test_check_output_file(tmp_path):
    from tfxfer.utils.output_path import check_output_file

    for path, message in _bad_paths(tmp_path).values():
        with pytest.raises(ArgumentError, match=rf"`path` (cannot be written: .*)?{message}"):
            check_output_file("path", path)
    assert check_output_file("path", tmp_path / "new" / "m.onnx", suffix=".onnx").endswith("m.onnx")
    with pytest.raises(ArgumentError, match=r"`path` must end in \.onnx"):
        check_output_file("path", tmp_path / "m.bin", suffix=".onnx")
    with pytest.raises(ArgumentTypeError, match="`path` must be a file path"):
        check_output_file("path", 3)
    assert sorted(os.listdir(tmp_path)) == ["afile", "folder.tflite"]  # the write probe left nothing


def test_export_tflite_refuses_a_bad_path_before_converting(model, tmp_path, monkeypatch):
    import tfxfer.export.tflite as tflite

    monkeypatch.setattr(tflite, "_convert", lambda *a, **k: pytest.fail("converted before the path was checked"))
    for path, message in _bad_paths(tmp_path).values():
        with pytest.raises(ArgumentError, match=message):
            export_tflite(model, path, variant="float32")
    assert not (tmp_path / "folder.json").exists()


def test_no_sidecar_when_the_file_could_not_be_put_in_place(model, tmp_path, monkeypatch):
    import tfxfer.export.tflite as tflite

    real = tflite.atomic_path

    @contextlib.contextmanager
    def failing_rename(path):
        if not str(path).endswith(".tflite"):
            with real(path) as tmp:
                yield tmp
            return
        yield str(tmp_path / "tmp.bin")
        raise OSError("rename failed")

    monkeypatch.setattr(tflite, "atomic_path", failing_rename)
    with pytest.raises(OSError, match="rename failed"):
        export_tflite(model, tmp_path / "m.tflite", variant="float32")
    assert sorted(os.listdir(tmp_path)) == ["tmp.bin"]  # no m.json describing a file never written


def test_train_qat_refuses_a_bad_path_before_training(model, tmp_path, monkeypatch):
    import tfxfer.quantize.qat_train as qat_train

    monkeypatch.setattr(qat_train, "fit", lambda *a, **k: pytest.fail("trained before the path was checked"))
    x, y = tiny_images(16, size=16, classes=3, seed=1)
    for path, message in _bad_paths(tmp_path).values():
        with pytest.raises(ArgumentError, match=message):
            qat_train.train_qat(model, (x, y), eval_data=(x, y), path=path)


def test_export_onnx_refuses_a_folder(model, tmp_path):
    pytest.importorskip("tf2onnx")
    from tfxfer.export.onnx import export_onnx

    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(ArgumentError, match="`path` is a folder"):
        export_onnx(model, tmp_path / "dir.onnx", eval_data=None)
