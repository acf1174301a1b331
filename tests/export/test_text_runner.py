"""export/litert_runner.py on a text model: a text that is not UTF-8 is a per-input error naming it
(the other texts still run), and ``--json`` is read only before ``--``, never abbreviated."""

import json
import os

import pytest

from tests.factories import tiny_text_encoder
from tests.text.helpers import run_device_runner


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    from tfxfer.export import export_text_tflite
    from tfxfer.text import build_text_classifier

    folder = tmp_path_factory.mktemp("text-runner")
    model = build_text_classifier(tiny_text_encoder(sequence_length=8, num_layers=1), 2, dropout=0.0)
    out = export_text_tflite(model, str(folder / "m.tflite"), class_names=["neg", "pos"])
    return folder, out.path


def test_a_text_that_is_not_utf8_is_one_input_error_and_the_others_run(text_model):
    folder, path = text_model
    bad = os.fsdecode(b"caf\xe9")  # a Latin-1 argument: Python makes it "caf\udce9"
    proc = run_device_runner(folder, path, ["good film", bad, "bad movie"], "wordpiece_tokenizer.py",
                             "--json", "--repeat", "1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["exit_code"] == 1 and doc["error"]["message"] == "1 of 3 inputs could not be read"
    good, refused, other = doc["results"]
    assert "top" in good and "top" in other and "top" not in refused
    assert refused["error"]["message"] == "inputs[1] is not UTF-8 text: \\xe9 in caf\\xe9"


def test_a_text_after_the_double_dash_may_be_json(text_model):
    folder, path = text_model
    proc = run_device_runner(folder, path, ["--repeat", "1", "--", "--json"], "wordpiece_tokenizer.py")
    assert proc.returncode == 0 and proc.stdout.startswith("'--json': "), proc.stdout  # a text, no document
