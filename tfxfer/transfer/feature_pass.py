"""Frozen features for many candidates with few model builds: the extraction step of ranking.

`rank_backbones` scores each candidate on pooled features (and, for LEEP/NCE, the ImageNet head's
class probabilities). At ranking sizes (hundreds of images) building a backbone and tracing its
forward pass cost more than running it, so `extract_candidates`:

* builds each (architecture, input size) once: a pretrained candidate and its random-weights
  twin (``"efficientnet_lite0"`` and ``"efficientnet_lite0:random"``) share one model whose weights
  are swapped between them;
* traces one ``tf.function`` per model with a fixed input signature (resize to the input size,
  preprocessing, backbone, pooling and the ImageNet head in one graph), called on batches of raw
  pixels: no per-call ``predict`` set-up, no retracing for the last, smaller batch;
* builds and traces the next model in a worker thread while the current one runs (building and
  tracing are Python-bound, running is not), so most of the set-up hides behind the compute;
* draws random weights from each layer's own initialisers with a fixed seed (`reinitialize`), so a
  random candidate's features are the same run after run and whether or not its pretrained twin
  is ranked beside it. Layers whose initialisers it cannot tell (e.g. Keras ``Normalization``,
  ConvNeXt's ``LayerScale``) fall back to a separately built random model.

The features equal `tfxfer.transfer.embeddings.candidate_features`' up to float rounding (same
bilinear resize, preprocessing and model).

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer.candidates import Candidate
    >>> from tfxfer.transfer.feature_pass import extract_candidates
    >>> images = np.random.default_rng(0).uniform(0, 255, (6, 24, 24, 1)).astype("float32")
    >>> out = extract_candidates([Candidate("mobilenet_v2", weights=None)], images, input_size=(32, 32))
    >>> feats, seconds = out["mobilenet_v2:random"]
    >>> feats.features.shape, feats.source_probs.shape, seconds > 0
    ((6, 1280), (6, 1000), True)
"""

from __future__ import annotations

import concurrent.futures
import logging
import time

import numpy as np

from tfxfer.errors import ArgumentError, ExportError
from tfxfer.transfer.cache import architecture_id
from tfxfer.transfer.candidates import Candidate
from tfxfer.transfer.embeddings import CandidateFeatures, _feature_model, _source_head_model, resize_batch
from tfxfer.transfer.lite_extractor import LiteExtractor

#: Which initialiser attribute of a layer made each of its variables (by the variable's name).
_INITIALIZERS = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),
    "bias": ("bias_initializer",),
    "gamma": ("gamma_initializer",),
    "beta": ("beta_initializer",),
    "moving_mean": ("moving_mean_initializer",),
    "moving_variance": ("moving_variance_initializer",),
    "depthwise_kernel": ("depthwise_initializer",),
    "pointwise_kernel": ("pointwise_initializer",),
    "embeddings": ("embeddings_initializer",),
}


def _initializer_plan(model) -> list | None:
    """[(variable, initializer)] for every weight of ``model``, or None where one cannot be told."""
    import keras

    leaves = [layer for layer in model._flatten_layers(include_self=False)
              if not list(layer._flatten_layers(include_self=False))]
    plan, covered = [], set()
    for layer in leaves:
        for variable in layer.weights:
            names = _INITIALIZERS.get(variable.name.split("/")[-1].split(":")[0], ())
            if isinstance(layer, keras.layers.DepthwiseConv2D) and variable.name == "kernel":
                names = ("depthwise_initializer",)
            init = next((getattr(layer, n) for n in names if getattr(layer, n, None) is not None), None)
            if init is None:
                return None
            plan.append((variable, keras.initializers.get(init)))
            covered.add(id(variable))
    if covered != {id(v) for v in model.weights}:
        return None  # a variable owned by no leaf layer: do not guess
    return plan


def reinitialize(model, seed: int = 0) -> bool:
    """Redraw every weight of ``model`` from its layer's own initialiser, seeded per variable.

    Returns False (``model`` untouched) when some weight's initialiser cannot be told; the random
    weights are then those of a fresh build with ``weights=None``.

    Example:
        >>> from tfxfer.models import build_model
        >>> model = build_model("mobilenet_v2", 2, input_size=(32, 32), weights=None)
        >>> first = model.get_weights()[0].copy()
        >>> reinitialize(model, seed=1), reinitialize(model, seed=1)
        (True, True)
        >>> bool((model.get_weights()[0] == first).all()), model.get_weights()[0].shape == first.shape
        (False, True)
    """
    draw = random_draw(model, seed)
    if draw is None:
        return False
    for variable, value in draw:
        variable.assign(value)
    return True


def random_draw(model, seed: int = 0) -> list | None:
    """``[(variable, array)]``: what `reinitialize` assigns, drawn without touching ``model``'s weights
    (so it can be drawn while the model runs); None when some weight's initialiser cannot be told."""
    import keras

    plan = _initializer_plan(model)
    if plan is None:
        return None
    states = np.random.SeedSequence([int(seed), 0x7E1]).generate_state(len(plan))
    draw = []
    for (variable, init), state in zip(plan, states):
        config = init.get_config()
        if "seed" in config:
            init = type(init).from_config({**config, "seed": int(state % (2**31 - 1))})
        draw.append((variable, keras.ops.convert_to_numpy(init(tuple(variable.shape), dtype=variable.dtype))))
    return draw


def _build(candidate: Candidate, shape: tuple, source_head: bool):
    """(model, with_probs, note) as `candidate_features` builds it."""
    spec = candidate.spec
    note = ""
    if source_head:
        if not spec.has_imagenet_head:
            note = f"LEEP/NCE skipped: {spec.name} has no ImageNet head in the catalog"
        else:
            try:
                return _source_head_model(candidate, shape), True, ""
            except Exception as exc:  # weights that cannot load offline, a headless local file, sizes the head rejects
                if candidate.weights not in (None, "imagenet"):
                    note = "LEEP/NCE skipped: the local weights file holds no ImageNet head (a headless file)"
                else:
                    note = f"LEEP/NCE skipped: ImageNet head unavailable ({type(exc).__name__}: {str(exc)[:120]})"
    return _feature_model(candidate, shape), False, note


def _forward(model, raw_shape: tuple, size: tuple, with_probs: bool):
    """One traced function: raw pixels (B, H, W, C) -> resized -> model; fixed signature, one trace."""
    import tensorflow as tf

    def run(images):
        if tuple(raw_shape[:2]) != tuple(size):
            images = tf.image.resize(images, size, method="bilinear")
        out = model(images, training=False)
        return (out[0], out[1]) if with_probs else (out, tf.zeros((tf.shape(images)[0], 0)))

    return tf.function(run, input_signature=[tf.TensorSpec((None, *raw_shape), tf.float32)], autograph=False)


def _prepare(candidate: Candidate, raw_shape: tuple, size: tuple, source_head: bool, policy=None,
             draw_seed: int | None = None):
    """(model, forward, with_probs, note, draw): ``candidate``'s model, built and its forward pass
    traced, and with ``draw_seed`` the `random_draw` of its random-weights twin (else None)."""
    if policy is not None:  # Keras keeps the dtype policy per thread: the worker uses the caller's
        import keras

        keras.config.set_dtype_policy(policy)
    model, with_probs, note = _build(candidate, (*size, raw_shape[-1]), source_head)
    forward = _forward(model, raw_shape, size, with_probs)
    forward.get_concrete_function()  # trace here (in the worker), not on the first batch
    draw = None if draw_seed is None else random_draw(model, draw_seed)
    return model, forward, with_probs, note, draw


#: Build and trace the next model in a worker thread while the current one runs (False: one thread).
_OVERLAP = True


def _run(forward, images: np.ndarray, batch_size: int, note: str, with_probs: bool) -> CandidateFeatures:
    feats, probs = [], []
    for start in range(0, len(images), batch_size):
        f, p = forward(np.asarray(images[start:start + batch_size], dtype=np.float32))
        feats.append(f.numpy())
        if with_probs:
            probs.append(p.numpy())
    return CandidateFeatures(features=np.concatenate(feats).astype(np.float32),
                             source_probs=np.concatenate(probs).astype(np.float64) if with_probs else None, note=note)


def _groups(candidates, sizes):
    """Lists of candidates that can share one model: at most one with real weights, first, then
    random-weights candidates of the same backbone and input size."""
    groups, by_arch = [], {}
    for candidate, size in zip(candidates, sizes):
        arch = (architecture_id(candidate.spec), tuple(size))
        if candidate.weights is None:
            continue
        group = [candidate]
        groups.append(group)
        by_arch.setdefault(arch, group)
    for candidate, size in zip(candidates, sizes):
        if candidate.weights is not None:
            continue
        arch = (architecture_id(candidate.spec), tuple(size))
        if arch not in by_arch:
            by_arch[arch] = []
            groups.append(by_arch[arch])
        by_arch[arch].append(candidate)
    return groups


def auto_batch_size(size) -> int:
    """Images per call for inputs of ``size`` (height, width): about 32 images of 224 x 224 worth of
    pixels, between 32 and 128. On CPU, small inputs run up to twice as fast in batches of 128 as of
    32 (EfficientNet-Lite at 64 px), while at 224 px 32 is as fast as any.

    Example:
        >>> auto_batch_size((224, 224)), auto_batch_size((128, 128)), auto_batch_size((64, 64))
        (32, 98, 128)
    """
    h, w = (int(v) for v in size)
    return int(min(128, max(32, 32 * 224 * 224 // max(h * w, 1))))


def _prepare_lite(group, missing, raw_shape: tuple, size: tuple, source_head: bool, seed: int, probe, policy=None):
    """``{label: (content, outputs, note)}``: the TFLite extractors of ``group``'s candidates named in
    ``missing``, converted from one build where they can share it (`convert_extractor`)."""
    from tfxfer.transfer.lite_extractor import convert_extractor, trace_extractor

    if policy is not None:
        import keras

        keras.config.set_dtype_policy(policy)
    out, model, shareable = {}, None, False
    for candidate in group:
        if candidate.label not in missing:
            continue
        if model is None or not shareable:
            model, with_probs, note = _build(candidate, (*size, raw_shape[-1]), source_head)
            shareable = with_probs or not (source_head and candidate.spec.has_imagenet_head)
            traced = None
        if candidate.weights is None and not reinitialize(model, seed):
            fresh = _build(candidate, (*size, raw_shape[-1]), source_head)[0]
            model.set_weights(fresh.get_weights())
            del fresh
        if traced is None:  # one trace per build; the twin's weights are frozen from the same trace
            try:
                traced = trace_extractor(model, probe.shape[1:])
            except Exception as exc:
                raise ExportError(f"the extractor of {candidate.label!r} could not be traced: {exc}") from None
        content, outputs = convert_extractor(model, probe, traced)
        out[candidate.label] = (content, outputs, note)
    return out


def extract_candidates(candidates, images: np.ndarray, *, input_size=None, batch_size: int | None = None,
                       source_head: bool = True, seed: int = 0, on_done=None, extractor_cache=None,
                       convert_extractors=True) -> dict:
    """Features of every candidate on raw-pixel ``images`` (N, H, W, C), built and traced once per
    (backbone, input size).

    Args:
        candidates: `Candidate` objects (distinct labels).
        images: raw 0-255 pixels, any size; resized (bilinear) to each candidate's input size.
        input_size: (height, width) for candidates without their own; None: the backbone's native size.
        batch_size: images per call of the traced function; None: `auto_batch_size` of each
            candidate's input size.
        source_head: also return the ImageNet head's probabilities where the backbone has one.
        seed: seed of random-weights candidates (`reinitialize`).
        on_done: optional ``on_done(candidate, features, seconds)`` called as each candidate finishes.
        extractor_cache: optional `tfxfer.transfer.cache.RankingCache`: features are then computed by
            each candidate's float32 TFLite extractor (`tfxfer.transfer.lite_extractor`), loaded from
            the cache or converted once (one build per shared model) and stored there; a candidate
            whose extractor does not convert falls back to the Keras model.
        convert_extractors: with ``extractor_cache``, convert and store the extractors it lacks (about
            2-3 s per candidate for EfficientNet-Lite at 64 px, once); False: use those it holds, and
            run the Keras model for a shared model whose extractors are not all there; a callable
            ``convert_extractors(candidate) -> bool``: convert for the models whose candidates it
            accepts (all of a shared model's).

    Returns:
        ``{label: (CandidateFeatures, seconds)}``; seconds: wall time since the previous candidate
        finished (for the first candidate of a model, including any wait for its build and trace).
    """
    candidates = list(candidates)
    if not all(isinstance(c, Candidate) for c in candidates):
        raise ArgumentError("candidates", candidates, "must be Candidate objects")
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise ArgumentError("images", f"array of shape {images.shape}", "must have shape (N, H, W, C) with N >= 1")
    sizes = [tuple(c.input_size or input_size or c.spec.input_size) for c in candidates]
    size_of = {c.label: s for c, s in zip(candidates, sizes)}
    raw_shape = tuple(int(v) for v in images.shape[1:])
    keys, stored = {}, {}
    if extractor_cache is not None:
        for c in candidates:
            keys[c.label] = extractor_cache.extractor_key(c.spec, c.weights, input_size=size_of[c.label],
                                                          channels=raw_shape[-1], source_head=source_head, seed=seed)
            stored[c.label] = extractor_cache.get_extractor(keys[c.label])
    resized = {}

    def images_at(size):
        if size not in resized:
            resized[size] = np.concatenate([resize_batch(images[i:i + 256], size) for i in range(0, len(images), 256)])
        return resized[size]

    out = {}
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    groups = _groups(candidates, sizes)
    missing = {id(g): [c.label for c in g if stored.get(c.label) is None] for g in groups}
    to_build = [g for g in groups if extractor_cache is None or missing[id(g)]]
    convert = convert_extractors if callable(convert_extractors) else lambda candidate: bool(convert_extractors)
    lite = {id(g): extractor_cache is not None and (all(map(convert, g)) or not missing[id(g)]) for g in groups}
    pool = policy = None
    if _OVERLAP and len(to_build) > 1:
        import keras

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfxfer-extract")
        policy = keras.config.dtype_policy()

    def prepare(group):
        """What the main loop needs for ``group``: Keras model and trace, or its TFLite extractors."""
        size = size_of[group[0].label]
        if lite[id(group)]:
            args = (group, missing[id(group)], raw_shape, size, source_head, seed, images_at(size)[:4])
            return _Ready.of(_prepare_lite, *args) if pool is None else pool.submit(_prepare_lite, *args, policy)
        twin = seed if any(c.weights is None for c in group) else None
        args = (group[0], raw_shape, size, source_head)
        return _Ready.of(_prepare, *args, draw_seed=twin) if pool is None else pool.submit(_prepare, *args, policy, twin)

    try:
        ahead = {id(to_build[0]): prepare(to_build[0])} if to_build else {}
        start = time.perf_counter()
        for group in groups:
            size = size_of[group[0].label]
            prepared = None
            if id(group) in ahead:
                try:
                    prepared = ahead.pop(id(group)).result()
                except ExportError:
                    prepared = None  # an extractor that does not convert: this group runs in Keras
                position = next(i for i, g in enumerate(to_build) if g is group)
                if position + 1 < len(to_build):
                    ahead[id(to_build[position + 1])] = prepare(to_build[position + 1])
            if lite[id(group)] and (prepared is not None or not missing[id(group)]):
                for candidate in group:
                    entry = stored.get(candidate.label)
                    if entry is None:
                        entry = prepared[candidate.label]
                        extractor_cache.put_extractor(keys[candidate.label], *entry)
                    content, outputs, note = entry
                    features, probs = LiteExtractor(content, outputs).run(
                        images_at(size), batch_size or auto_batch_size(size))
                    feats = CandidateFeatures(features=features, source_probs=probs, note=note)
                    start = _done(out, candidate, feats, start, on_done)
                continue
            if prepared is None:  # an extractor that did not convert: the Keras model, built and traced here
                prepared = _prepare(group[0], raw_shape, size, source_head,
                                    draw_seed=seed if any(c.weights is None for c in group) else None)
            model, forward, with_probs, note, draw = prepared
            # a random twin shares the model unless the pretrained one lost its ImageNet head (weights
            # that cannot load offline, a headless local file): the twin still has one
            shareable = with_probs or not (source_head and group[0].spec.has_imagenet_head)
            for candidate in group:
                if candidate is not group[0] and not shareable:
                    model, forward, with_probs, note, draw = _prepare(candidate, raw_shape, size, source_head,
                                                                      draw_seed=seed)
                    shareable = True
                if candidate.weights is None and draw is not None:
                    for variable, value in draw:  # drawn ahead, in the worker: `reinitialize` without the wait
                        variable.assign(value)
                elif candidate.weights is None:
                    # initialisers unknown: the random weights of a fresh build (a second build, no second trace)
                    fresh = _build(candidate, (*size, raw_shape[-1]), source_head)[0]
                    model.set_weights(fresh.get_weights())
                    del fresh
                feats = _run(forward, images, batch_size or auto_batch_size(size), note, with_probs)
                start = _done(out, candidate, feats, start, on_done)
            del model, forward
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        logger.setLevel(level)
    return {c.label: out[c.label] for c in candidates}


def _done(out: dict, candidate, feats, start: float, on_done) -> float:
    """Record ``candidate``'s features and call ``on_done``; returns the next candidate's start time."""
    seconds = time.perf_counter() - start
    out[candidate.label] = (feats, seconds)
    if on_done is not None:
        on_done(candidate, feats, seconds)
    return time.perf_counter()


class _Ready:
    """A call made now, with a future's ``result()`` (the single-thread path): its value, or its
    exception raised again."""

    def __init__(self, value=None, error: BaseException | None = None):
        self.value, self.error = value, error

    @classmethod
    def of(cls, fn, *args, **kwargs) -> _Ready:
        try:
            return cls(fn(*args, **kwargs))
        except Exception as exc:  # raised again by result(), as a future would
            return cls(error=exc)

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value
