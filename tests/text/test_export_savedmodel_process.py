"""The text SavedModel loads in a fresh Python process that imports tensorflow and tensorflow_text but not
tfxfer (as a serving client does), and serves the Keras model's outputs; without ``import tensorflow_text``
the tokenizer's ops are unknown (what the docs tell users)."""

import json
import os
import subprocess
import sys

import numpy as np

import tfxfer.export.text_savedmodel

from tests.text.helpers import HELD_OUT as TEXTS
from tfxfer.text import predict_texts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LOADER = r"""
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
path, texts = sys.argv[1], json.loads(sys.argv[2])
try:
    tf.saved_model.load(path)
    without = None
except Exception as exc:  # the tf-text ops are not registered yet
    without = f"{type(exc).__name__}: {exc}"
import tensorflow_text  # noqa: F401 -- registers the tokenizer ops
served = tf.saved_model.load(path)
out = served.signatures["serving_default"](text=tf.constant(texts))
print(json.dumps({"without_tensorflow_text": without,
                  "probabilities": out["probabilities"].numpy().tolist(),
                  "top_class": [c.decode() for c in out["top_class"].numpy()],
                  "imported": sorted(m for m in ("tfxfer", "keras_hub") if m in sys.modules)}))
"""


def test_text_saved_model_loads_in_a_fresh_process_with_tensorflow_text_only(tmp_path, served_classifier):
    # export_text_saved_model(model, base, name="sentiment", class_names=["neg", "pos"], eval_data=TEXTS), written
    # once for this module and test_export.py (tests/text/conftest.py); the loader below is a fresh process
    model, result = served_classifier.model, served_classifier.result
    assert served_classifier.report.passed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOADER, result.path, json.dumps(TEXTS)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["imported"] == []  # neither tfxfer nor keras-hub: tensorflow + tensorflow_text only
    expected = predict_texts(model, TEXTS)
    np.testing.assert_allclose(np.array(served["probabilities"]), expected, atol=1e-5)
    assert served["top_class"] == [["neg", "pos"][i] for i in expected.argmax(1)]
    # the documented requirement: without `import tensorflow_text` the SavedModel does not load
    assert served["without_tensorflow_text"] is not None
    assert "Op type not registered" in served["without_tensorflow_text"]


def test_docs_say_to_import_tensorflow_text_before_loading_the_text_saved_model():
    """Where the text SavedModel is documented, users are told to load it after ``import tensorflow_text``."""
    docs = {"tfxfer/export/text_savedmodel.py": tfxfer.export.text_savedmodel.__doc__}
    for name in ("README.md", os.path.join("export", "README.md")):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            docs[name] = f.read()
    for name, text in docs.items():
        assert "import tensorflow_text" in text and "RegexSplitWithOffsets" in text, name
