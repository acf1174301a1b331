"""A TF Serving SavedModel of a text classifier whose ``serving_default`` takes raw strings.

``<base_dir>/<name>/<version>/`` with ``serving_default`` on raw strings (``text``: string
``[batch]``; the tokenizer is inside) and ``serving_tokens`` on the token tensors, plus warm-up
requests and ``models.config`` (`tfxfer.export.serving`). Both serve what the head means, as the image
SavedModel does (`tfxfer.export.served_outputs.OUTPUTS`): a softmax model ``probabilities``, ``classes``,
``top_class``, ``top_probability``; a linear head real softmax ``probabilities`` plus its ``logits``; a
sigmoid model the ``predicted`` label set; another output layer its ``scores``. A regression model (one
linear output) is refused with `ModelError`. Given ``eval_data``, the written SavedModel is loaded back
and the served output that is the model's own (`model_output`) is gated against Keras.

The tokenizer inside runs tensorflow-text ops (``RegexSplitWithOffsets``, ``FastWordpieceTokenizeWithOffsets``,
...). TF Serving (2.2 and later) links them, so the stock ``tensorflow/serving`` image serves the SavedModel
as it is. To load it in Python, ``import tensorflow_text`` first (it registers the ops; keras-hub installs
it): ``tf.saved_model.load`` in a process that has not imported it fails with ``Op type not registered
'RegexSplitWithOffsets'``. tfxfer need not be installed:

    import tensorflow as tf
    import tensorflow_text  # noqa: F401 -- registers the tokenizer ops
    served = tf.saved_model.load("serving/reviews/1")
    served.signatures["serving_default"](text=tf.constant(["A fine film."]))["probabilities"]

Example:
    >>> import tempfile
    >>> from tfxfer.text import build_bert_encoder, build_text_classifier
    >>> from tfxfer.export import export_text_saved_model
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film"]
    >>> encoder = build_bert_encoder(vocab, num_layers=1, hidden_dim=8, intermediate_dim=16,
    ...                              num_heads=2, sequence_length=8)
    >>> result, report = export_text_saved_model(build_text_classifier(encoder, 2), tempfile.mkdtemp(),
    ...                                          name="reviews", eval_data=["good film", "bad"])
    >>> result.version, report.passed
    (1, True)
"""

from __future__ import annotations

import os

import numpy as np

from tfxfer.errors import ArgumentError, ModelError
from tfxfer.export.gate import Thresholds
from tfxfer.export.metadata import model_task
from tfxfer.export.savedmodel import check_folder
from tfxfer.export.served_outputs import OUTPUTS, check_servable, model_output, served_outputs
from tfxfer.export.text_gate import check_text_eval_data, gate_text_runs
from tfxfer.text.graph import text_parts, token_model
from tfxfer.utils.atomic import atomic_path
from tfxfer.utils.validate import check_safe_name


def _text_task(model) -> str:
    """`tfxfer.export.metadata.model_task` of a text model, where only a single linear output marks a
    regression: a linear layer named ``head`` marks one in `tfxfer.models.build_model`'s image models,
    but `tfxfer.text` builds no regression head, so a text model's linear ``head`` over several classes
    is a linear classifier ("logits")."""
    task = model_task(model)
    return "logits" if task == "regression" and int(model.outputs[0].shape[-1]) > 1 else task


def _serving_functions(model, class_names, task):
    import tensorflow as tf

    parts = text_parts(model)
    tokens = token_model(model)
    keys = [t.name for t in tokens.inputs]
    names = tf.constant(class_names)

    def outputs(raw):
        return served_outputs(task, raw, names)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def from_text(text):
        return outputs(tf.cast(model(text, training=False), tf.float32))

    specs = [tf.TensorSpec([None, parts.sequence_length], tf.int32, name=k) for k in keys]

    @tf.function(input_signature=specs)
    def from_tokens(*args):
        return outputs(tf.cast(tokens(dict(zip(keys, args)), training=False), tf.float32))

    return {"serving_default": from_text, "serving_tokens": from_tokens}


def export_text_saved_model(model, base_dir, *, name: str, version: int | None = None, class_names=None,
                            eval_data=None, thresholds=None, warmup: bool = True, overwrite: bool = False,
                            serving_base_path: str | None = None):
    """Write a TF Serving SavedModel whose ``serving_default`` takes raw strings.

    Args:
        model: a tfxfer text classifier (sequence outputs ``[batch, classes]``: softmax, sigmoid, logits
            or other class scores; what each serves is `tfxfer.export.served_outputs.OUTPUTS`).
        base_dir: model repository; the model goes to ``<base_dir>/<name>/<version>/``.
        name: served model name.
        version: default one more than the highest present.
        class_names: one per class (default "0", "1", ...).
        eval_data: held-out texts, or ``(texts, labels)``; the written SavedModel is loaded and
            gated against Keras (variant "saved_model", default limits: max abs error 1e-4, top-1
            agreement 1.0; a failure raises `GateError` and nothing is written).
        thresholds: ``{"saved_model": Thresholds | dict}`` overriding those limits.
        warmup: write TF Serving warm-up requests (two example texts).

    Returns:
        ``(SavedModelExport, GateReport or None)``.

    Raises:
        ModelError: a token classifier, or a regression model (one linear output, not class scores).
    """
    import keras
    import tensorflow as tf

    from tfxfer.export import serving
    from tfxfer.export.savedmodel import SavedModelExport

    parts = text_parts(model)
    if parts.pool.mode == "tokens":
        raise ModelError("export_text_saved_model serves sequence classifiers; export a token classifier "
                         "with export_text_tflite (word alignment runs on the client)")
    task = check_servable(model, _text_task(model))  # regression refused, as the image SavedModel refuses it
    num = int(model.outputs[0].shape[-1])
    names = [str(c) for c in class_names] if class_names is not None else [str(i) for i in range(num)]
    if len(names) != num:
        raise ArgumentError("class_names", class_names, f"must have {num} names")
    check_safe_name("name", name)
    check_folder("base_dir", base_dir, inside=name)
    model_dir = os.path.join(os.fspath(base_dir), name)
    if version is None:
        existing = [int(v) for v in os.listdir(model_dir) if v.isdigit()] if os.path.isdir(model_dir) else []
        version = max(existing, default=0) + 1
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArgumentError("version", version, "must be an int >= 1")
    path = os.path.join(model_dir, str(version))
    if os.path.exists(path) and not overwrite:
        raise ArgumentError("version", version, f"already exists at {path!r}", hint="Pass overwrite=True")
    functions = _serving_functions(model, names, task)
    texts, labels = check_text_eval_data(model, eval_data) if eval_data is not None else (None, None)
    report = None
    with atomic_path(path, directory=True) as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        for signature, function in functions.items():
            archive.add_endpoint(signature, function)
        archive.write_out(tmp, verbose=False)
        examples = list(texts)[:2] if texts is not None else ["An example text.", ""]
        if warmup:
            logs = serving.warmup_requests(model_name=name, requests=[
                ("serving_default", {"text": np.array([t.encode("utf-8") for t in examples], dtype=object)})])
            serving.write_warmup(tmp, logs)
        if texts is not None:
            loaded = tf.saved_model.load(tmp)
            signature = loaded.signatures["serving_default"]
            own = model_output(signature.structured_outputs)  # what the Keras reference holds: like with like

            def run(_inputs):
                return signature(text=tf.constant(list(texts)))[own].numpy()

            limits = {"saved_model": Thresholds(min_top1_agreement=1.0, max_abs_error=1e-4)}
            limits.update(thresholds or {})
            report = gate_text_runs(model, {"saved_model": (path, run)}, texts, labels, thresholds=limits,
                                    class_names=names, raise_on_failure=True)
    config_path = serving.write_models_config(base_dir, serving_base_path=serving_base_path)
    signatures = {"serving_default": "text: string [batch] of raw texts",
                  "serving_tokens": f"{', '.join(parts.keys)}: int32 [batch, {parts.sequence_length}]"}
    warmup_path = os.path.join(path, serving.WARMUP_DIR, serving.WARMUP_FILE) if warmup else None
    result = SavedModelExport(path=path, name=name, version=version, signatures=signatures, warmup_path=warmup_path,
                              models_config_path=config_path, verified=texts is not None,
                              outputs=dict(OUTPUTS[task]))
    return result, report
