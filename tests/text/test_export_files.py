"""Text TFLite exports ship their own tokenizer files (named after the model file, hashed in the sidecar):
models exported into one folder never share or overwrite a vocabulary, and the device runner refuses a
tokenizer file that is missing or belongs to another model."""

import hashlib
import importlib.util
import json
import os

import numpy as np
import pytest

from tests.factories import WORDPIECE_VOCAB, tiny_text_encoder
from tests.text.helpers import run_device_runner
from tfxfer.errors import GateError
from tfxfer.export import Thresholds, export_all, export_text_tflite
from tfxfer.export.workflow import variant_files
from tfxfer.text import build_text_classifier, predict_texts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = ["good film", "bad movie", "great", "awful awful film", "zoe visits paris"]
#: Model B's vocabulary: the same words in another order (every id of model A's vocabulary means another token).
OTHER_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(WORDPIECE_VOCAB[5:], reverse=True)


def _sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def two_models():
    """Models A and B (B's vocabulary: A's words in another order), built once and shared read-only: each new
    text model costs seconds of tracing before its first output."""
    import keras

    keras.utils.set_random_seed(1234)
    a = build_text_classifier(tiny_text_encoder(sequence_length=8, num_layers=1), 2, dropout=0.0)
    b = build_text_classifier(tiny_text_encoder(vocab=OTHER_VOCAB, sequence_length=8, num_layers=1), 2, dropout=0.0)
    return a, b


def _probabilities(proc):
    assert proc.returncode == 0, proc.stderr
    return np.array([r["probabilities"] for r in json.loads(proc.stdout)["results"]])


def test_export_all_of_two_models_into_one_folder_keeps_each_vocabulary(tmp_path, two_models):
    """`export_all` of model A (name "a") then model B (name "b", another vocabulary) into one folder: A's
    file still runs on A's vocabulary on the device (it used to share one vocab.txt, overwritten by B's)."""
    a, b = two_models
    kw = dict(eval_data=(TEXTS, [1, 0, 1, 0, 1]), variants=["float32"], benchmark=False, keep_failed=True,
              class_names=["neg", "pos"])
    table_a = export_all(a, tmp_path, name="a", **kw)
    export_all(b, tmp_path, name="b", **kw)
    assert sorted(os.listdir(tmp_path)) == [
        "a_export_report.json", "a_float32.json", "a_float32.tflite", "a_float32.vocab.txt",
        "b_export_report.json", "b_float32.json", "b_float32.tflite", "b_float32.vocab.txt"]
    for name, vocab in (("a", WORDPIECE_VOCAB), ("b", OTHER_VOCAB)):
        config = json.loads((tmp_path / f"{name}_float32.json").read_text())["tokenizer"]
        assert config["vocabulary"] == f"{name}_float32.vocab.txt"
        assert config["sha256"] == {"vocabulary": _sha256(tmp_path / f"{name}_float32.vocab.txt")}
        assert (tmp_path / f"{name}_float32.vocab.txt").read_text().split("\n")[:-1] == list(vocab)
    export = table_a.exports["float32"]
    assert export.vocab_path == str(tmp_path / "a_float32.vocab.txt") and export.tokenizer_paths == [export.vocab_path]
    # the device side: A's file, run by the runner beside B's files, gives A's Keras outputs
    on_device = _probabilities(run_device_runner(tmp_path, tmp_path / "a_float32.tflite", TEXTS,
                                                 "wordpiece_tokenizer.py", "--json", "--repeat", "1"))
    np.testing.assert_allclose(on_device, predict_texts(a, TEXTS), atol=1e-4)


def test_export_text_tflite_names_tokenizer_files_after_the_model_file(tmp_path, two_models):
    a, b = two_models
    out_a = export_text_tflite(a, str(tmp_path / "a.tflite"))
    out_b = export_text_tflite(b, str(tmp_path / "b.tflite"))
    assert sorted(os.listdir(tmp_path)) == ["a.json", "a.tflite", "a.vocab.txt", "b.json", "b.tflite", "b.vocab.txt"]
    assert (out_a.vocab_path, out_b.vocab_path) == (str(tmp_path / "a.vocab.txt"), str(tmp_path / "b.vocab.txt"))
    assert out_a.files() == [out_a.path, out_a.sidecar_path, out_a.vocab_path]
    wordpiece = importlib.util.spec_from_file_location("wordpiece_tokenizer",
                                                       os.path.join(ROOT, "export", "wordpiece_tokenizer.py"))
    module = importlib.util.module_from_spec(wordpiece)
    wordpiece.loader.exec_module(module)
    ids = module.WordPieceTokenizer.from_config(out_a.sidecar_path).pack(TEXTS)["token_ids"]
    np.testing.assert_array_equal(ids, a.get_layer("tokenize").tokenize(np.array(TEXTS, dtype=object))["token_ids"])


def test_runner_refuses_a_missing_or_foreign_tokenizer_file_and_runs_old_sidecars(tmp_path, two_models):
    """The sidecar's tokenizer.sha256 is checked before anything runs (a refusal: one line on stderr, exit 1,
    a tfxfer/1 error document with --json); a sidecar without it (older exports) runs unchecked as before."""
    a, b = two_models
    out_a = export_text_tflite(a, str(tmp_path / "a.tflite"), class_names=["neg", "pos"])
    out_b = export_text_tflite(b, str(tmp_path / "b.tflite"), class_names=["neg", "pos"])
    keep = (tmp_path / "a.vocab.txt").read_bytes()
    (tmp_path / "a.vocab.txt").write_bytes((tmp_path / "b.vocab.txt").read_bytes())  # B's vocabulary under A's name
    proc = run_device_runner(tmp_path, out_a.path, TEXTS, "wordpiece_tokenizer.py", "--json", "--repeat", "1")
    assert proc.returncode == 1 and "belongs to another model" in proc.stderr and "a.vocab.txt" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["error"]["type"] == "RunnerError" and "vocabulary" in doc["error"]["message"]
    proc = run_device_runner(tmp_path, out_a.path, TEXTS, "wordpiece_tokenizer.py", "--allow-failed")
    assert proc.returncode == 1 and "belongs to another model" in proc.stderr  # no flag runs a wrong vocabulary
    os.remove(tmp_path / "a.vocab.txt")
    proc = run_device_runner(tmp_path, out_a.path, TEXTS, "wordpiece_tokenizer.py")
    assert proc.returncode == 1 and "cannot be read" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "a.vocab.txt").write_bytes(keep)
    np.testing.assert_allclose(_probabilities(run_device_runner(
        tmp_path, out_a.path, TEXTS, "wordpiece_tokenizer.py", "--json", "--repeat", "1")), predict_texts(a, TEXTS),
        atol=1e-4)
    sidecar = json.loads((tmp_path / "a.json").read_text())
    sidecar["tokenizer"]["sha256"] = "f" * 64
    (tmp_path / "a.json").write_text(json.dumps(sidecar))
    proc = run_device_runner(tmp_path, out_a.path, TEXTS, "wordpiece_tokenizer.py")
    assert proc.returncode == 1 and "tokenizer.sha256 is not an object" in proc.stderr
    # an older export: one shared vocab.txt, no tokenizer.sha256 -> runs as before
    del sidecar["tokenizer"]["sha256"]
    sidecar["tokenizer"]["vocabulary"] = "vocab.txt"
    (tmp_path / "a.json").write_text(json.dumps(sidecar))
    os.replace(tmp_path / "a.vocab.txt", tmp_path / "vocab.txt")
    np.testing.assert_allclose(_probabilities(run_device_runner(
        tmp_path, out_a.path, TEXTS, "wordpiece_tokenizer.py", "--json", "--repeat", "1")), predict_texts(a, TEXTS),
        atol=1e-4)
    assert out_b.tokenizer_paths == [str(tmp_path / "b.vocab.txt")]


def test_failed_and_stale_variants_take_their_tokenizer_files_with_them(tmp_path, two_models):
    """A variant that fails its gate is removed with its tokenizer file; a later run of the same name removes
    the tokenizer files of variants it did not produce; another name's files stay."""
    from tfxfer.export.text_tflite import tokenizer_file_names

    a, b = two_models
    export_all(b, tmp_path, name="b", eval_data=TEXTS, variants=["float32"], benchmark=False)
    assert {"a_float16.vocab.txt", "a_float16.vocab.json", "a_float16.merges.txt"} <= set(variant_files("a"))
    assert tokenizer_file_names("a_float16") == ["a_float16.merges.txt", "a_float16.vocab.json", "a_float16.vocab.txt"]
    export_all(a, tmp_path, name="a", eval_data=TEXTS, variants=["float32", "float16"], benchmark=False)
    assert {"a_float32.vocab.txt", "a_float16.vocab.txt"} <= set(os.listdir(tmp_path))
    export_all(a, tmp_path, name="a", eval_data=TEXTS, variants=["float32"], benchmark=False)
    assert not (tmp_path / "a_float16.vocab.txt").exists() and (tmp_path / "a_float32.vocab.txt").is_file()
    with pytest.raises(GateError) as info:
        export_all(a, tmp_path, name="a", eval_data=TEXTS, variants=["float32", "float16"], benchmark=False,
                   thresholds={"float16": Thresholds(max_abs_error=-1.0)})
    assert info.value.report.failed == ["float16"]
    assert sorted(os.listdir(tmp_path)) == [
        "a_export_report.json", "a_float32.json", "a_float32.tflite", "a_float32.vocab.txt",
        "b_export_report.json", "b_float32.json", "b_float32.tflite", "b_float32.vocab.txt"]


def test_bpe_files_are_named_after_the_model_file_and_hashed(tmp_path, tiny_roberta):
    """A byte-level BPE (RoBERTa) export: ``<stem>.vocab.json`` and ``<stem>.merges.txt``, both hashed; a
    foreign merges file is refused on the device."""
    model, vocab = tiny_roberta  # test_bpe_tokenizer's tiny RoBERTa classifier, shared (tests/text/conftest.py)
    out = export_text_tflite(model, str(tmp_path / "r.tflite"))
    assert sorted(os.listdir(tmp_path)) == ["r.json", "r.merges.txt", "r.tflite", "r.vocab.json"]
    config = json.loads((tmp_path / "r.json").read_text())["tokenizer"]
    assert (config["vocabulary"], config["merges"]) == ("r.vocab.json", "r.merges.txt")
    assert config["sha256"] == {"vocabulary": _sha256(tmp_path / "r.vocab.json"),
                                "merges": _sha256(tmp_path / "r.merges.txt")}
    assert out.tokenizer_paths == [str(tmp_path / "r.vocab.json"), str(tmp_path / "r.merges.txt")]
    assert json.loads((tmp_path / "r.vocab.json").read_text()) == vocab
    texts = ["the film was good!", "Zoë's café"]
    np.testing.assert_allclose(_probabilities(run_device_runner(
        tmp_path, out.path, texts, "bpe_tokenizer.py", "--json", "--repeat", "1")), predict_texts(model, texts),
        atol=1e-4)
    with open(tmp_path / "r.merges.txt", "a", encoding="utf-8") as f:
        f.write("Ġ x\n")
    proc = run_device_runner(tmp_path, out.path, texts, "bpe_tokenizer.py")
    assert proc.returncode == 1 and "r.merges.txt (merges) belongs to another model" in proc.stderr
