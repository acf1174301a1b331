"""Text export: raw-string SavedModel and token-id TFLite agree with Keras; the export/ tokenizer feeds TFLite."""

import importlib.util
import json
import os

import numpy as np
import pytest

from tests.factories import tiny_text_encoder
from tests.text.helpers import HELD_OUT
from tfxfer.errors import ArgumentError, GateError, ModelError
from tfxfer.export import (Thresholds, convert_text_tflite, export_all, export_text_saved_model, export_text_tflite,
                           predict_text_tflite, verify)
from tfxfer.text import build_text_classifier, build_token_classifier, predict_texts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAGS = ["O", "B-PER", "I-PER"]


# Each new text model costs seconds before its first output (tracing the tokenizer and the model), so the tests
# share a few tiny models, read-only: `clf` (2 classes, 12 tokens; tests/text/conftest.py's `tiny_classifier`,
# whose SavedModel is `served_classifier`), `wide` (hidden size 64, exported once per TFLite variant) and `tagger`.
@pytest.fixture(scope="module")
def clf(tiny_classifier):
    return tiny_classifier


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """``(model, {variant: TextTFLiteExport})``: a classifier large enough for int8 to matter, exported once as
    float32, dynamic and weight_only (each in its own folder, as ``<variant>/m.tflite``)."""
    import keras

    keras.utils.set_random_seed(1234)
    encoder = tiny_text_encoder(sequence_length=12, num_layers=1, hidden_dim=64, intermediate_dim=128)
    model = build_text_classifier(encoder, 2)
    folder = tmp_path_factory.mktemp("wide")
    return model, {v: export_text_tflite(model, str(folder / v / "m.tflite"), variant=v)
                   for v in ("float32", "dynamic", "weight_only")}


@pytest.fixture(scope="module")
def tagger():
    import keras

    keras.utils.set_random_seed(1234)
    return build_token_classifier(tiny_text_encoder(sequence_length=10, num_layers=1), TAGS)


def _wordpiece_module():
    spec = importlib.util.spec_from_file_location("wordpiece_tokenizer", os.path.join(ROOT, "export", "wordpiece_tokenizer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tflite_variants_pass_the_gate_and_run_from_the_standalone_tokenizer(tmp_path, clf):
    model = clf
    out = export_text_tflite(model, str(tmp_path / "clf.tflite"), class_names=["neg", "pos"])
    report = verify(model, {"float32": out.path}, HELD_OUT)
    result = report["float32"]
    assert report.passed and result.max_abs_error < 1e-5 and result.examples == len(HELD_OUT)
    assert sorted(os.listdir(tmp_path)) == ["clf.json", "clf.tflite", "clf.vocab.txt"]
    sidecar = json.loads((tmp_path / "clf.json").read_text())
    assert sidecar["class_names"] == ["neg", "pos"] and sidecar["sequence_length"] == 12
    assert sorted(i["name"] for i in sidecar["inputs"]) == ["padding_mask", "segment_ids", "token_ids"]
    # the device side: pure-Python tokenizer from the sidecar -> LiteRT == Keras on raw strings
    tok = _wordpiece_module().WordPieceTokenizer.from_config(str(tmp_path / "clf.json"))
    packed = {k: np.array(v, dtype=np.int32) for k, v in tok.pack(HELD_OUT).items()}
    np.testing.assert_allclose(predict_text_tflite(out.path, packed), predict_texts(model, HELD_OUT), atol=1e-5)
    dynamic = export_text_tflite(model, str(tmp_path / "clf_dynamic.tflite"), variant="dynamic")
    report = verify(model, {"dynamic": dynamic.path}, HELD_OUT)
    assert report.passed and report["dynamic"].top1_agreement >= 0.99


def test_dynamic_file_stores_per_row_int8_weights_and_tracks_keras(tmp_path, wide):
    """The dynamic text file: every large matrix int8 with one scale per row (the token embedding too, dequantized
    once at load, never one scale for the whole table), the projections on hybrid kernels with asymmetric input
    quantization; it agrees with Keras and is about 4x smaller than float32."""
    from ai_edge_litert import schema_py_generated as fb

    from tfxfer.export.flatbuffer import detect_variant, tflite_ops

    model, files = wide
    dynamic, plain = files["dynamic"], files["float32"]
    content = open(dynamic.path, "rb").read()
    assert detect_variant(content) == "dynamic" and "DEQUANTIZE" in tflite_ops(content)
    graph = fb.ModelT.InitFromPackedBuf(bytearray(content), 0).subgraphs[0]
    int8 = {i: t for i, t in enumerate(graph.tensors) if t.type == fb.TensorType.INT8}
    assert len(int8) >= 5  # query, key, value, attention output, 2 feed-forward matrices, the embedding
    assert all(len(t.quantization.scale) == t.shape[0] > 1 for t in int8.values())
    hybrid = [op for op in graph.operators if any(i in int8 for i in op.inputs)
              and getattr(op.builtinOptions, "asymmetricQuantizeInputs", None) is not None]
    assert len(hybrid) >= 4 and all(op.builtinOptions.asymmetricQuantizeInputs for op in hybrid)
    assert os.path.getsize(dynamic.path) < 0.5 * os.path.getsize(plain.path)
    report = verify(model, {"dynamic": dynamic.path}, HELD_OUT)
    assert report.passed and report["dynamic"].max_abs_error < 0.05
    # the file that ships runs in a fresh process on the device side (runner + tokenizer, no TensorFlow)
    import shutil

    from tests.text.helpers import run_device_runner

    for path in dynamic.files():  # the runner goes beside a copy: the shared folder stays as exported
        shutil.copy(path, tmp_path)
    proc = run_device_runner(tmp_path, tmp_path / "m.tflite", HELD_OUT, "wordpiece_tokenizer.py", "--json", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    on_device = np.array([r["probabilities"] for r in json.loads(proc.stdout)["results"]])
    np.testing.assert_allclose(on_device, predict_texts(model, HELD_OUT), atol=0.05)
    assert (on_device.argmax(1) == predict_texts(model, HELD_OUT).argmax(1)).all()
    # the converter's own pass (kept for comparison): one scale for the whole token-embedding table
    converter = fb.ModelT.InitFromPackedBuf(bytearray(convert_text_tflite(model, variant="dynamic",
                                                                          quantizer="converter")), 0).subgraphs[0]
    assert any(t.type == fb.TensorType.INT8 and len(t.quantization.scale) == 1 for t in converter.tensors)
    with pytest.raises(ArgumentError, match="quantizer"):
        convert_text_tflite(model, variant="dynamic", quantizer="per_tensor")


def test_weight_only_file_keeps_int8_weights_and_computes_in_float(wide):
    """The dynamic file's remedy: the same per-row int8 weights, each dequantized once at load and no hybrid
    kernel, so the arithmetic is float32's: about as small as the dynamic file, closer to Keras than it."""
    from ai_edge_litert import schema_py_generated as fb

    model, files = wide
    graph = fb.ModelT.InitFromPackedBuf(bytearray(open(files["weight_only"].path, "rb").read()), 0).subgraphs[0]
    int8 = {i for i, t in enumerate(graph.tensors) if t.type == fb.TensorType.INT8}
    assert len(int8) >= 5 and all(len(graph.tensors[i].quantization.scale) > 1 for i in int8)
    readers = [op for op in graph.operators if int8 & set(op.inputs)]
    assert readers and all(len(op.inputs) == 1 for op in readers)  # only DEQUANTIZE reads an int8 weight
    size = {v: os.path.getsize(f.path) for v, f in files.items()}
    assert size["weight_only"] < 0.5 * size["float32"] and abs(size["weight_only"] - size["dynamic"]) < 0.1 * size["dynamic"]
    report = verify(model, {v: f.path for v, f in files.items()}, HELD_OUT)
    assert report.passed and report["weight_only"].max_abs_error < report["dynamic"].max_abs_error
    with open(files["weight_only"].sidecar_path) as f:
        assert json.load(f)["variant"] == "weight_only"
    with pytest.raises(ArgumentError, match="applies to variant='dynamic' only"):
        convert_text_tflite(model, variant="weight_only", quantizer="converter")  # would silently be per-row


def test_gate_failure_raises_and_keeps_no_file(tmp_path, clf):
    model = clf
    with pytest.raises(GateError, match="max abs error") as info:
        export_all(model, tmp_path, variants=["float32"], eval_data=["good film"], name="m", benchmark=False,
                   thresholds={"float32": Thresholds(max_abs_error=-1.0)})
    assert not info.value.report.passed and not (tmp_path / "m_float32.tflite").exists()
    assert not (tmp_path / "m_float32.json").exists()
    with pytest.raises(ArgumentError, match="variant"):
        export_text_tflite(model, str(tmp_path / "m.tflite"), variant="int4")
    with pytest.raises(ArgumentError, match="class_names"):
        export_text_tflite(model, str(tmp_path / "m.tflite"), class_names=["a"])


def test_saved_model_serves_raw_strings(served_classifier):
    import tensorflow as tf

    from tfxfer.export import read_warmup

    # export_text_saved_model(model, base, name="sentiment", class_names=["neg", "pos"], eval_data=HELD_OUT),
    # written once for this module and test_export_savedmodel_process.py (tests/text/conftest.py)
    model, result, report = served_classifier.model, served_classifier.result, served_classifier.report
    assert report.passed and report["saved_model"].max_abs_error < 1e-5
    assert result.version == 1 and os.path.isfile(os.path.join(result.path, "saved_model.pb"))
    loaded = tf.saved_model.load(result.path)
    out = loaded.signatures["serving_default"](text=tf.constant(HELD_OUT))
    np.testing.assert_allclose(out["probabilities"].numpy(), predict_texts(model, HELD_OUT), atol=1e-5)
    assert out["top_class"].numpy()[0].decode() in ("neg", "pos")
    again = loaded.signatures["serving_default"](text=tf.constant(HELD_OUT))["probabilities"].numpy()
    np.testing.assert_array_equal(again, out["probabilities"].numpy())  # no dropout at serving time
    ids = model.get_layer("tokenize").tokenize(np.array(HELD_OUT, dtype=object))
    by_tokens = loaded.signatures["serving_tokens"](**{k: tf.constant(v) for k, v in ids.items()})
    np.testing.assert_allclose(by_tokens["probabilities"].numpy(), out["probabilities"].numpy(), atol=1e-5)
    assert len(read_warmup(result.warmup_path)) == 1
    assert "sentiment" in open(result.models_config_path).read()
    with pytest.raises(ArgumentError, match="already exists"):
        export_text_saved_model(model, str(served_classifier.base), name="sentiment", version=1)


def test_saved_model_of_a_logits_head_serves_softmax_probabilities_and_refuses_regression(tmp_path):
    """A linear ``head`` over several classes is a linear classifier in a text model (tfxfer.text builds no
    regression head): it serves real probabilities plus its logits, gated on the logits; one linear output is
    a regression, refused as the image SavedModel refuses it."""
    import keras
    import tensorflow as tf
    from scipy.special import softmax

    classifier = build_text_classifier(tiny_text_encoder(sequence_length=12, num_layers=1), 3, dropout=0.0)
    features = classifier.get_layer("head_dropout").output
    model = keras.Model(classifier.input, keras.layers.Dense(3, name="head")(features))
    result, report = export_text_saved_model(model, str(tmp_path), name="logits", class_names=["a", "b", "c"],
                                             eval_data=HELD_OUT)
    assert report.passed and report["saved_model"].max_abs_error < 1e-5  # the served logits == Keras outputs
    logits = predict_texts(model, HELD_OUT)
    assert not np.allclose(logits.sum(1), 1.0)  # really logits
    loaded = tf.saved_model.load(result.path)
    ids = model.get_layer("tokenize").tokenize(np.array(HELD_OUT, dtype=object))
    for out in (loaded.signatures["serving_default"](text=tf.constant(HELD_OUT)),
                loaded.signatures["serving_tokens"](**{k: tf.constant(v) for k, v in ids.items()})):
        assert sorted(out) == sorted(result.outputs) == ["classes", "logits", "probabilities", "top_class",
                                                         "top_probability"]
        np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-5)
        np.testing.assert_allclose(out["probabilities"].numpy(), softmax(logits, axis=1), atol=1e-5)
        assert [c.decode() for c in out["top_class"].numpy()] == [["a", "b", "c"][i] for i in logits.argmax(1)]
    regression = keras.Model(classifier.input, keras.layers.Dense(1, name="head")(features), name="rating")
    with pytest.raises(ModelError, match="'rating' is a regression model"):
        export_text_saved_model(regression, str(tmp_path), name="rating")
    assert not (tmp_path / "rating").exists()


def test_token_classifier_exports_to_tflite_not_saved_model(tmp_path, tagger):
    model = tagger
    out = export_text_tflite(model, str(tmp_path / "ner.tflite"), class_names=TAGS)
    report = verify(model, {"float32": out.path}, HELD_OUT)
    assert report.passed and json.loads((tmp_path / "ner.json").read_text())["task"] == "token_classification"
    assert report["float32"].examples == int(sum(model.get_layer("tokenize").tokenize(  # [CLS]/[SEP] not counted
        np.array(HELD_OUT, dtype=object))["padding_mask"].sum(axis=1))) - 2 * len(HELD_OUT)
    with pytest.raises(ModelError, match="token classifier"):
        export_text_saved_model(model, str(tmp_path / "sm"), name="ner")


def test_wordpiece_tflite_runs_from_raw_strings_in_the_standalone_runner(tmp_path, clf):
    """The device side for BERT-family files: runner + wordpiece tokenizer copied beside the model, no
    tfxfer or TensorFlow on the path; probabilities match Keras within 1e-4."""
    from tests.text.helpers import run_device_runner

    model = clf
    texts = ["the film was good", "Dull, bad music!", "Zoë's café", "", "the acting " * 12]  # the last one truncated
    out = export_text_tflite(model, str(tmp_path / "bert.tflite"), class_names=["neg", "pos"])
    assert verify(model, {"float32": out.path}, texts).passed and json.loads((tmp_path / "bert.json").read_text())["tokenizer"]["type"] == "wordpiece"
    proc = run_device_runner(tmp_path, out.path, texts, "wordpiece_tokenizer.py", "--json", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)["results"]
    np.testing.assert_allclose(np.array([r["probabilities"] for r in results]), predict_texts(model, texts), atol=1e-4)
    assert [r["text"] for r in results] == texts


def test_export_all_runs_the_image_workflow_for_text_models(tmp_path, clf, tagger):
    """One workflow: text files converted, gated on (texts, labels), verdicts in the sidecars, a raw-string
    SavedModel; the same argument names and table as for image models."""
    model = clf
    labels = np.array([0, 1, 1, 0, 1])
    table = export_all(model, tmp_path, variants=("float32", "dynamic"), eval_data=(HELD_OUT, labels),
                       class_names=["neg", "pos"], name="clf", benchmark=False, serving_name="reviews")
    assert table.passed and table.kind == "text" and [r["variant"] for r in table.rows] == ["float32", "dynamic"]
    assert table.gate["float32"].examples == len(HELD_OUT) and table.rows[0]["latency_ms"] is None
    sidecar = json.loads((tmp_path / "clf_dynamic.json").read_text())
    assert sidecar["gate"]["passed"] is True and sidecar["class_names"] == ["neg", "pos"]
    assert (tmp_path / "clf_dynamic.vocab.txt").is_file() and table.saved_model.verified
    assert "SavedModel (raw strings in)" in table.format()
    assert json.loads((tmp_path / "clf_export_report.json").read_text())["kind"] == "text"
    with pytest.raises(ArgumentError, match="must be some of float32, float16, dynamic, weight_only for a text model"):
        export_all(model, tmp_path, variants=("int8",), eval_data=HELD_OUT, benchmark=False)
    with pytest.raises(ArgumentError, match="`serving_name` .*is for text classifiers"):
        export_all(tagger, tmp_path / "ner", eval_data=HELD_OUT, serving_name="ner", benchmark=False)


def test_bad_gate_labels_are_data_errors_naming_them(tmp_path, clf):
    """Labels out of range or not one per text gave raw numpy broadcast errors from inside the gate; now a
    DataError naming the labels (as the image gate's), before any file is converted where the model is not needed."""
    from tfxfer.errors import DataError

    model = clf
    texts = ["good film", "bad plot", "great movie", "awful"]
    tflite = convert_text_tflite(model)
    with pytest.raises(DataError, match=r"`eval_data` labels must be in \[0, 2\); got \[0, 5\]"):
        verify(model, {"float32": tflite}, (texts, [0, 5, 0, 1]), raise_on_failure=False)
    with pytest.raises(DataError, match="`eval_data` labels must be integer class ids"):
        verify(model, {"float32": tflite}, (texts, [0, 0.5, 0, 1]), raise_on_failure=False)
    with pytest.raises(DataError, match="`eval_data` has 4 texts but 2 labels"):
        export_all(model, tmp_path / "out", variants=("float32",), eval_data=(texts, [0, 1]), benchmark=False)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    with pytest.raises(DataError, match="`eval_data` labels must be numbers .*got dtype <U3"):
        verify(model, {"float32": tflite}, (texts, ["pos", "neg", "pos", "neg"]), raise_on_failure=False)
    assert verify(model, {"float32": tflite}, (texts, np.eye(2)[[0, 1, 1, 0]])).passed  # one-hot rows still work
