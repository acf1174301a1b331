"""What a tfxfer classifier SavedModel serves for each kind of head, built inside the serving graph.

The image SavedModel (`tfxfer.export.savedmodel`) and the text one (`tfxfer.export.text_savedmodel`)
both return `OUTPUTS` of the model's task (`tfxfer.export.metadata.model_task`: what the output layer
means), always with ``classes`` (the class names, aligned with the other ``[batch, classes]`` outputs):

* softmax ("multiclass"): ``probabilities`` (the model's output), ``top_class``, ``top_probability``.
* linear classifier ("logits"): ``probabilities`` (softmax of the logits: rows sum to 1), ``logits``
  (the model's output), ``top_class`` (the argmax) and ``top_probability`` (from the softmax).
* sigmoid ("multilabel"): ``probabilities`` (the model's output, one per label) and ``predicted`` (bool
  ``[batch, labels]``, probability >= `MULTILABEL_THRESHOLD`: the set of labels predicted); no ``top_class``.
* another output layer ("scores", e.g. relu or tanh): ``scores`` (the model's output) and ``top_class``
  (the argmax, as the TFLite sidecars and the gate read it); no ``probabilities``: no softmax is assumed.

A regression model (its output is the prediction, not class scores) is refused (`check_servable`).
`model_output` names the served output that is the Keras model's own, the one to compare with
``model.predict``.

Example:
    >>> import tensorflow as tf
    >>> served = served_outputs("logits", tf.constant([[2.0, 0.0]]), tf.constant(["cat", "dog"]))
    >>> sorted(served), round(float(served["probabilities"][0, 0]), 3), served["top_class"].numpy()
    (['classes', 'logits', 'probabilities', 'top_class', 'top_probability'], 0.881, array([b'cat'], dtype=object))
    >>> model_output(served)
    'logits'
"""

from __future__ import annotations

from tfxfer.errors import ModelError

#: A multi-label model predicts every label whose probability is at least this (as the gate judges it).
MULTILABEL_THRESHOLD = 0.5
_CLASSES = "string [batch, classes]: the class names, aligned with the other [batch, classes] outputs"
_TOP_CLASS = "string [batch]: the name of the argmax class"
_TOP_PROBABILITY = "float32 [batch]: the largest probability"
#: What every signature returns for each `tfxfer.export.metadata.model_task` (regression is refused).
OUTPUTS = {
    "multiclass": {"probabilities": "float32 [batch, classes]: the model's softmax output", "classes": _CLASSES,
                   "top_class": _TOP_CLASS, "top_probability": _TOP_PROBABILITY},
    "logits": {"probabilities": "float32 [batch, classes]: softmax of the logits (rows sum to 1)",
               "logits": "float32 [batch, classes]: the model's output", "classes": _CLASSES,
               "top_class": _TOP_CLASS, "top_probability": _TOP_PROBABILITY},
    "multilabel": {"probabilities": "float32 [batch, labels]: the model's sigmoid output, one per label",
                   "classes": _CLASSES, "predicted": f"bool [batch, labels]: probabilities >= {MULTILABEL_THRESHOLD}"},
    "scores": {"scores": "float32 [batch, classes]: the model's output (class scores, not probabilities)",
               "classes": _CLASSES, "top_class": _TOP_CLASS},
}


def model_output(output_names) -> str:
    """The output of a tfxfer SavedModel signature that is the Keras model's own output (what to
    compare with ``model.predict``): ``logits`` or ``scores`` where the signature serves one, else
    ``probabilities`` (softmax and sigmoid models, and SavedModels written before ``logits`` existed).

    Example:
        >>> model_output(["classes", "logits", "probabilities", "top_class", "top_probability"])
        'logits'
    """
    names = set(output_names)
    return next((name for name in ("logits", "scores") if name in names), "probabilities")


def check_servable(model, task: str) -> str:
    """``task`` if a classifier SavedModel can serve it (a key of `OUTPUTS`); `ModelError` for a
    regression model, as `tfxfer.export.export_all` refuses it.

    Example:
        >>> check_servable(None, "logits")
        'logits'
    """
    if task in OUTPUTS:
        return task
    raise ModelError(f"`model` {model.name!r} is a regression model (a linear output "
                     f"{tuple(model.outputs[0].shape)}): the SavedModel serves classifiers (probabilities, "
                     "classes, top_class), so nothing was written. Serve it with tf.saved_model.save or "
                     "keras.export.ExportArchive and name its output yourself")


def served_outputs(task: str, raw, names) -> dict:
    """The signature outputs (`OUTPUTS` of ``task``) of the model's output ``raw`` (float ``[batch,
    classes]``) with class names ``names`` (a string tensor), as TensorFlow ops (inside a
    ``tf.function``, or eagerly).

    Example:
        >>> import tensorflow as tf
        >>> served = served_outputs("multilabel", tf.constant([[0.7, 0.2]]), tf.constant(["cat", "dog"]))
        >>> sorted(served), served["predicted"].numpy().tolist()
        (['classes', 'predicted', 'probabilities'], [[True, False]])
    """
    import tensorflow as tf

    top = tf.gather(names, tf.argmax(raw, axis=1, output_type=tf.int32))
    classes = tf.tile(names[None, :], [tf.shape(raw)[0], 1])
    if task == "multilabel":
        return {"probabilities": raw, "classes": classes, "predicted": raw >= MULTILABEL_THRESHOLD}
    if task == "scores":
        return {"scores": raw, "classes": classes, "top_class": top}
    probabilities = tf.nn.softmax(raw, axis=-1) if task == "logits" else raw
    logits = {"logits": raw} if task == "logits" else {}
    return {"probabilities": probabilities, **logits, "classes": classes, "top_class": top,
            "top_probability": tf.reduce_max(probabilities, axis=1)}
