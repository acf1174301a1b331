"""A failed ImageNet weights download (no network) is a typed error that says how to work offline,
in the API and in ``tfxfer rank`` (one error line, exit 1, a JSON error document): never a traceback."""

import json

import keras
import pytest

from tfxfer.backbones import get_spec
from tfxfer.backbones.spec import download_failed
from tfxfer.cli import main
from tfxfer.errors import WeightsUnavailableError
from tests.factories import make_simple_folder


@pytest.fixture
def no_network(monkeypatch):
    """Keras' downloader fails the way it does offline (a bare Exception raised from a URLError)."""
    import urllib.error

    from keras.src.utils import file_utils

    def fail(*args, **kwargs):
        try:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        except urllib.error.URLError as exc:
            raise Exception(f"URL fetch failure on {kwargs.get('origin', args[1] if len(args) > 1 else '?')}: "
                            "None -- [Errno -2] Name or service not known") from exc

    monkeypatch.setattr(file_utils, "get_file", fail)


def test_build_names_the_backbone_and_the_offline_remedies(no_network):
    with pytest.raises(WeightsUnavailableError, match="'mobilenet_v2' could not be downloaded") as info:
        get_spec("mobilenet_v2").build(input_shape=(96, 96, 3), weights="imagenet")
    assert "weights=PATH" in str(info.value) and "--weights-dir" in str(info.value)
    assert isinstance(info.value, OSError) and info.value.backbone == "mobilenet_v2"
    model = get_spec("mobilenet_v2").build(input_shape=(32, 32, 3), weights=None)  # no download: unaffected
    assert isinstance(model, keras.Model)


def test_other_build_errors_are_not_mistaken_for_a_download():
    assert not download_failed(ValueError("the input shape is too small"))
    assert download_failed(OSError("x")) is False
    try:
        try:
            raise ConnectionError("reset")
        except ConnectionError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert download_failed(outer)


def test_rank_reports_the_missing_weights_as_one_line_and_a_json_error(no_network, tmp_path, capsys):
    data = tmp_path / "data"
    make_simple_folder(data, {"a": 4, "b": 4})
    argv = ["rank", str(data), "--candidates", "mobilenet_v2@96", "--no-cost", "--no-cache", "--json", "-q"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["error"]["type"] == "WeightsUnavailableError" and "mobilenet_v2" in doc["error"]["message"]
    assert "Traceback" not in captured.err
    assert captured.err.strip().startswith("tfxfer: error: ImageNet weights for backbone 'mobilenet_v2'")


def test_download_failed_docstring_example_runs():
    import doctest

    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(download_failed, globs={"download_failed": download_failed}):
        runner.run(test)
    assert runner.tries >= 3 and runner.failures == 0
