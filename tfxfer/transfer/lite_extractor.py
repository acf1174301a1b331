"""Frozen feature extractors as float32 TFLite files: ranking's forward passes in LiteRT.

At ranking sizes, ranking's time goes into forward passes of small batches through mobile
backbones, where TensorFlow's CPU kernels (depthwise convolutions above all) are several times
slower than LiteRT's XNNPACK: EfficientNet-Lite1, 500 images at 64 px, 2 threads, one machine
(loaded): 2.17 s in TensorFlow vs 0.41 s in LiteRT, largest feature difference 8e-5 (features up
to 6). So a ranking with a ``cache_dir`` freezes and converts each candidate's extractor
(preprocessing, backbone, pooling and, for LEEP/NCE, the ImageNet head) once per (backbone, weights,
input size, channels) and keeps it beside the cached int8 costs; a ranking on new data then loads it
(about 0.1 s) instead of building and tracing a Keras model. ``rank_backbones``' default
(``convert_extractors=None``) does this for backbones of up to 25M parameters. Six
EfficientNet-Lite candidates at 64 px, 500 images (benchmarks/results/transferability.json): the
first ranking takes 42 s instead of 28 s (the conversions), each later ranking on new data 3.3 s
instead of 12.8 s.

`convert_extractor(model, ...)` freezes a Keras model's inference graph (weights as constants,
BatchNorm in inference mode), converts it without optimisation, and checks the file against the
model on a probe batch: each Keras output is matched to the file's output of the same shape that
agrees with it (largest difference within ``1e-3`` of the output's scale), else `ExportError`
(the caller then runs the Keras model). `LiteExtractor` runs the file on batches.

Example:
    >>> import numpy as np, keras
    >>> from tfxfer.transfer.lite_extractor import LiteExtractor, convert_extractor
    >>> inputs = keras.Input((8, 8, 3))
    >>> pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
    >>> model = keras.Model(inputs, [pooled, keras.layers.Dense(5, activation="softmax")(pooled)])
    >>> probe = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    >>> content, outputs = convert_extractor(model, probe)
    >>> features, probs = LiteExtractor(content, outputs).run(probe, batch_size=2)
    >>> features.shape, probs.shape
    ((3, 4), (3, 5))
    >>> bool(np.allclose(features, model(probe)[0], atol=1e-4))
    True
"""

from __future__ import annotations

import os

import numpy as np

from tfxfer.errors import ArgumentError, ExportError
from tfxfer.utils.native_logs import quiet_native_logs

#: Largest difference between a Keras output and the file's, relative to the output's largest value.
TOLERANCE = 1e-3


def trace_extractor(model, input_shape):
    """``model``'s inference pass as a concrete function of images ``(None, *input_shape)``: trace it
    once and freeze it again after the weights change (a random-weights twin), no second trace."""
    import tensorflow as tf

    spec = tf.TensorSpec((None, *input_shape), tf.float32, name="images")
    return tf.function(lambda x: model(x, training=False), input_signature=[spec],
                       autograph=False).get_concrete_function()


def convert_extractor(model, probe: np.ndarray, traced=None) -> tuple[bytes, list[int]]:
    """``(content, outputs)``: ``model``'s inference graph as a float32 TFLite file, and for each
    Keras output (in order) the index of the file output that holds it.

    The graph is frozen with the weights' current values (``traced``: a `trace_extractor` of
    ``model`` to reuse) and converted from the frozen GraphDef, about 3 s for EfficientNet-Lite.

    Args:
        model: a Keras model taking images of ``probe``'s shape (a batch dimension of any size).
        probe: a few input images (N, H, W, C) the file is checked on against ``model``'s graph.

    Raises:
        ExportError: the conversion failed, or the file does not reproduce an output.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    probe = np.asarray(probe, np.float32)
    if probe.ndim != 4 or not len(probe):
        raise ArgumentError("probe", f"array of shape {probe.shape}", "must have shape (N, H, W, C) with N >= 1")
    try:
        traced = traced if traced is not None else trace_extractor(model, probe.shape[1:])
        frozen, graph_def = convert_variables_to_constants_v2_as_graph(traced)
        with quiet_native_logs():  # the converter's notes on stderr
            content = tf.compat.v1.lite.TFLiteConverter(graph_def, frozen.inputs, frozen.outputs).convert()
        expected = [np.asarray(o) for o in tf.nest.flatten(frozen(tf.constant(probe)))]
    except Exception as exc:  # a layer the converter cannot freeze or lower
        raise ExportError(f"the extractor of {model.name!r} did not convert to TFLite: "
                          f"{type(exc).__name__}: {str(exc)[:200]}") from None
    got = LiteExtractor(content, list(range(len(expected)))).run_all(probe)
    outputs = []
    for k, reference in enumerate(expected):
        scale = float(np.max(np.abs(reference))) + 1e-6
        fits = [i for i, g in enumerate(got) if g.shape == reference.shape and i not in outputs
                and float(np.max(np.abs(g - reference))) <= TOLERANCE * scale]
        if not fits:
            raise ExportError(f"the TFLite extractor of {model.name!r} does not reproduce its output {k} "
                              f"(shape {reference.shape}) within {TOLERANCE:g} of its scale")
        outputs.append(min(fits, key=lambda i: float(np.max(np.abs(got[i] - reference)))))
    return bytes(content), outputs


class LiteExtractor:
    """Runs a `convert_extractor` file: ``run(images)`` -> ``(features, probs or None)``.

    Args:
        content: the TFLite file's bytes.
        outputs: the file output index of each Keras output (features first, then probabilities).
        num_threads: LiteRT threads (default: every core).
    """

    def __init__(self, content: bytes, outputs, num_threads: int | None = None):
        from tfxfer.export.litert import new_interpreter

        self.outputs = [int(i) for i in outputs]
        self.interpreter = new_interpreter(model_content=bytes(content), num_threads=num_threads or os.cpu_count() or 1)
        self.interpreter.allocate_tensors()  # a no-op when new_interpreter's allocation worked; raises if it failed
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._outs = [d["index"] for d in self.interpreter.get_output_details()]
        if not self.outputs or max(self.outputs) >= len(self._outs):
            raise ArgumentError("outputs", outputs, f"must index the file's {len(self._outs)} outputs")
        self._batch = None

    def _invoke(self, batch: np.ndarray) -> list[np.ndarray]:
        if self._batch != batch.shape:
            self.interpreter.resize_tensor_input(self._input, list(batch.shape))
            self.interpreter.allocate_tensors()
            self._batch = batch.shape
        self.interpreter.set_tensor(self._input, batch)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i).copy() for i in self._outs]

    def run_all(self, images: np.ndarray, batch_size: int = 128) -> list[np.ndarray]:
        """Every file output (in the file's order) for ``images``, in batches."""
        images = np.asarray(images, np.float32)
        parts = [self._invoke(np.ascontiguousarray(images[s:s + batch_size]))
                 for s in range(0, len(images), batch_size)]
        return [np.concatenate([p[i] for p in parts]) for i in range(len(self._outs))]

    def run(self, images: np.ndarray, batch_size: int = 128):
        """``(features, probs)`` for ``images`` (probs None when the file has no second Keras output)."""
        got = self.run_all(images, batch_size)
        features = got[self.outputs[0]].astype(np.float32)
        probs = got[self.outputs[1]].astype(np.float64) if len(self.outputs) > 1 else None
        return features, probs
