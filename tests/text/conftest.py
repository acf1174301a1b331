"""Text-test fixtures shared across modules: each builds a tiny model and runs its expensive step once.

Every user treats them as read-only (no training, no compile, nothing written into their folders)."""

import types

import pytest

from tests.text.helpers import HELD_OUT


@pytest.fixture(scope="session")
def tiny_classifier():
    """A tiny 2-class text classifier over 12 tokens (head dropout 0.1, so "no dropout at serving time" means
    something), shared by test_export.py and test_export_savedmodel_process.py."""
    import keras

    from tests.factories import tiny_text_encoder
    from tfxfer.text import build_text_classifier

    keras.utils.set_random_seed(1234)  # the same weights whichever test (or xdist worker) builds it first
    return build_text_classifier(tiny_text_encoder(sequence_length=12, num_layers=1), 2)


@pytest.fixture(scope="session")
def served_classifier(tiny_classifier, tmp_path_factory):
    """`tiny_classifier` and its raw-string SavedModel ``sentiment`` v1 (class names neg, pos), gated on
    `HELD_OUT`: written once (~7 s of CPU: write, load, gate) for both modules."""
    from tfxfer.export import export_text_saved_model

    base = tmp_path_factory.mktemp("served")
    result, report = export_text_saved_model(tiny_classifier, str(base), name="sentiment",
                                             class_names=["neg", "pos"], eval_data=HELD_OUT)
    return types.SimpleNamespace(model=tiny_classifier, base=base, result=result, report=report)


@pytest.fixture(scope="session")
def tiny_roberta():
    """``(classifier, vocabulary)``: a 1-layer RoBERTa classifier (3 classes, 16 tokens) over the byte-level BPE
    vocabulary of test_bpe_tokenizer.py, shared by that module and test_export_files.py."""
    import keras

    from tests.text.test_bpe_tokenizer import _tiny_roberta_classifier, load_bpe_module

    keras.utils.set_random_seed(1234)
    return _tiny_roberta_classifier(load_bpe_module())
