"""Rank candidate backbones by transferability and edge cost before fine-tuning any of them.

`rank_backbones` takes a stratified, seeded subset of the data (by default at most 50 examples per
class and 1000 in all: scores order backbones from a few dozen examples per class, and ranking then
costs about the same whatever the data size), extracts pooled features once per candidate (each
architecture built and traced once: a pretrained candidate and its random twin share the model,
`tfxfer.transfer.feature_pass`), scores them (LogME, H-score, k-NN and, for backbones with an
ImageNet head, LEEP and NCE), measures each candidate's parameter count,
full-int8 TFLite size and LiteRT latency at its input size, drops what is over budget, and marks
the Pareto front of score against cost. With ``cache_dir`` the features and the edge costs are
kept on disk (`tfxfer.transfer.cache`) and reused by later rankings. The scores are advisory (see
`ADVISORY`). Given ``(texts, labels)`` it ranks text encoders instead (`tfxfer.transfer.text_ranking`).

Example:
    >>> import numpy as np
    >>> from tfxfer.transfer import rank_backbones
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(0, 255, (24, 32, 32, 3)).astype("float32"); y = np.arange(24) % 2
    >>> result = rank_backbones((x, y), ["mobilenet_v2:random"], input_size=(32, 32),
    ...                         scores=("logme",), latency_runs=3, verbose=0)
    >>> row = result.to_rows()[0]
    >>> row["candidate"], row["rank"], row["pareto"], row["int8_size_mib"] > 0
    ('mobilenet_v2:random', 1, True, True)
"""

from __future__ import annotations

import concurrent.futures
import time

import numpy as np

from tfxfer.errors import ArgumentError, ArgumentTypeError, DataError
from tfxfer.transfer._data import ranking_subset, read_image_arrays, single_labels
from tfxfer.transfer.cache import RankingCache, architecture_id
from tfxfer.transfer.candidates import Budget, Candidate, as_candidate, check_weights_dir, with_local_weights
from tfxfer.transfer.edge_cost import measure_edge_cost
from tfxfer.transfer.feature_pass import extract_candidates
from tfxfer.transfer.logme import logme
from tfxfer.transfer.ranking_result import ADVISORY, COST_AXES, SCORE_NAMES, TASKS, RankingResult, pareto_flags
from tfxfer.transfer.scores import hscore, knn, leep, nce
from tfxfer.transfer.text_candidates import is_text_candidate, is_text_data
from tfxfer.transfer.text_ranking import check_text_options, rank_text_rows
from tfxfer.utils.validate import check_int

__all__ = ["ADVISORY", "COST_AXES", "SCORE_NAMES", "RankingResult", "pareto_flags", "rank_backbones"]


def _check_options(scores, primary, cost_axis, task, max_samples, max_per_class, batch_size):
    scores = tuple(scores)
    unknown = [s for s in scores if s not in SCORE_NAMES]
    if not scores or unknown:
        raise ArgumentError("scores", scores, "must be a non-empty subset of " + ", ".join(SCORE_NAMES))
    if primary is None:
        primary = "logme" if "logme" in scores else scores[0]
    if primary not in scores:
        raise ArgumentError("primary", primary, f"must be one of the requested scores {scores}")
    if cost_axis is not None and cost_axis not in COST_AXES:
        raise ArgumentError("cost_axis", cost_axis, "must be one of " + ", ".join(COST_AXES))
    if task not in TASKS:
        raise ArgumentError("task", task, "must be one of " + ", ".join(TASKS))
    if task == "regression" and set(scores) - {"logme"}:
        raise ArgumentError("scores", scores, "must be ('logme',) for task='regression' (the others need classes)")
    check_int("max_samples", max_samples, low=2, allow_none=True)
    check_int("max_per_class", max_per_class, low=1, allow_none=True)
    check_int("batch_size", batch_size, low=2, allow_none=True)
    return scores, primary


def _one_blas_thread():
    """BLAS/LAPACK on one thread while scoring: the eigendecompositions are small (at most
    max_samples or D square), where two threads gain little on an idle machine and, on a busy
    one, spin against each other (numpy's ``eigh`` of 500 x 500 measured 1.3 s on two threads
    vs 0.06 s on one with other jobs running)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a scikit-learn dependency; without it the scores just run as they are
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _score(name, feats, labels, task):
    if name == "logme":
        return logme(feats.features, labels, task=task)
    if name == "hscore":
        return hscore(feats.features, labels)
    if name == "knn":
        return knn(feats.features, labels)
    if feats.source_probs is None:
        return None
    return leep(feats.source_probs, labels) if name == "leep" else nce(feats.source_probs, labels)


#: ``convert_extractors=None`` converts the extractors of backbones up to this many parameters: float32
#: files up to about 95 MiB in the ranking cache (every MobileNet and EfficientNet-Lite, EfficientNet
#: B0-B4, DenseNet, ResNet50, InceptionV3, Xception, VGG; not the larger ResNets, ConvNeXt,
#: InceptionResNetV2, NASNetLarge or EfficientNet B5-B7).
AUTO_CONVERT_MAX_PARAMS = 25_000_000


def _convert_rule(convert_extractors):
    """`extract_candidates`' ``convert_extractors``: a bool, or for None a per-candidate rule."""
    if convert_extractors is None:
        return lambda candidate: (candidate.spec.params or 0) <= AUTO_CONVERT_MAX_PARAMS
    if not isinstance(convert_extractors, (bool, np.bool_)):
        raise ArgumentTypeError("convert_extractors", convert_extractors, "True, False or None")
    return bool(convert_extractors)


def rank_backbones(
    data,
    candidates,
    *,
    budget=None,
    input_size: tuple[int, int] | None = None,
    scores=SCORE_NAMES,
    primary: str | None = None,
    cost_axis: str | None = None,
    task: str = "classification",
    measure_cost: bool = True,
    score_over_budget: bool = False,
    max_samples: int | None = 1000,
    max_per_class: int | None = 50,
    batch_size: int | None = None,
    threads: int = 1,
    latency_runs: int = 20,
    num_calibration: int = 32,
    seed: int = 0,
    keep_features: bool = False,
    sequence_length: int | None = None,
    cache_dir=None,
    convert_extractors: bool | None = None,
    weights_dir=None,
    verbose: int = 1,
) -> RankingResult:
    """Score every candidate backbone on ``data`` and put the scores beside its edge cost.

    Args:
        data: ``(images, labels)`` with images (N, H, W, C) raw 0-255 pixels (C = 1 or 3) and
            integer or one-hot labels (real targets for ``task="regression"``), or a
            ``tf.data.Dataset`` of such batches (e.g. ``tfxfer.data`` loaders' ``train``); or, to
            rank text encoders, ``(texts, labels)`` with texts a list / 1-D array of str (labels
            ids or names). A few hundred to a few thousand labelled examples are plenty.
        candidates: `Candidate` objects, catalog names, or strings ``"name[:weights][@size]"``
            (``"efficientnet_lite0"``, ``"efficientnet_lite0:random@96"``, ``"resnet50:/w.h5"``).
            For text data: `TextCandidate` objects or ``"preset[:random][@tokens]"`` strings, where
            preset is what `tfxfer.text.load_encoder` loads (a local preset directory,
            ``"all-minilm-l6-v2"``, a keras-hub preset) and ``:random`` is the re-initialised control.
        budget: `Budget`, a dict (``{"max_size_mib": 5, "max_latency_ms": 20}``) or None.
            Candidates over budget are listed with the reason, get no rank, and (unless
            ``score_over_budget``) are not scored, which saves their feature extraction.
        input_size: (height, width) for candidates that do not set their own; None uses each
            backbone's native size. Images are resized (bilinear) to it.
        scores: which of "logme", "hscore", "knn", "leep", "nce" to compute. LEEP and NCE need
            the backbone's ImageNet head and are left empty where it is unavailable; "knn" is the
            leave-one-out 10-nearest-neighbour accuracy (`tfxfer.transfer.knn`).
        primary: the score that orders the table and defines the Pareto front; default "logme"
            if requested, else the first of ``scores``.
        cost_axis: "latency_ms", "int8_size_mib", "params" or "float32_size_mib": the cost side of
            the Pareto front; None: "latency_ms" for images, "params" for text (text encoders have
            only params and float32 size: int8 size and latency are not measured, nor budgeted).
        task: "classification" or "regression" (LogME only).
        measure_cost: convert and time each architecture (int8 TFLite + LiteRT); False skips it
            (no size, latency or Pareto flag, and a budget on size/latency cannot be checked).
        score_over_budget: also extract features for candidates over budget.
        max_samples: score on at most this many examples (default 1000; None: all). Images:
            a stratified subset, seeded by ``seed``, see ``max_per_class``; text: a seeded random
            subset. A ``tf.data.Dataset`` is read until it ends or has yielded 10x this many.
            The examples used are recorded in ``RankingResult.sample`` (their indices in ``data``).
        max_per_class: images, classification: at most this many examples of each class
            (default 50; None: no per-class cap); classes with fewer keep all theirs. With both
            limits the subset is as even across classes as the data allows. Scores order
            backbones from a few dozen examples per class (a larger subset mostly costs time:
            feature extraction grows with it, model building and tracing do not).
        batch_size: feature-extraction batch size (images per call of the traced forward pass);
            None: 32 to 128 by input size (`tfxfer.transfer.feature_pass.auto_batch_size`).
        threads: LiteRT threads for the latency measurement.
        latency_runs: timed LiteRT invocations per architecture (median reported).
        num_calibration: images used to calibrate each int8 conversion.
        seed: seed of the subset, of the int8 calibration images and of random-weights candidates
            (drawn from each layer's initialisers: the same features run after run).
        keep_features: keep each candidate's features in ``RankingResult.features``.
        sequence_length: text only: tokens per text for candidates without ``@N``; None: 128,
            capped at each encoder's maximum.
        cache_dir: a folder for `tfxfer.transfer.cache.RankingCache`: features per (candidate,
            data, input size) and edge costs per (architecture, input size, head, machine) are
            read from it when present and written to it when computed (images only). Rows say
            what came from it (``features_cached``, ``cost_cached``).
        convert_extractors: with ``cache_dir``, also freeze each candidate's extractor into a float32
            TFLite file kept in the cache (`tfxfer.transfer.lite_extractor`; about 2-3 s per candidate
            for EfficientNet-Lite at 64 px, once per backbone, weights and input size). Extractors
            already in the cache are always used: later rankings of those candidates run in LiteRT and
            build no Keras model (six EfficientNet-Lite candidates at 64 px, new data: 3.3 s instead
            of 12.8 s). None (default): convert backbones of at most `AUTO_CONVERT_MAX_PARAMS`
            parameters (float32 files up to about 95 MiB); True: every candidate; False: none
            (rankings run in TensorFlow).
        weights_dir: a folder of locally supplied ImageNet weights, so any catalog backbone ranks
            offline: a candidate with "imagenet" weights whose backbone downloads them (Keras
            Applications) reads ``<name>.weights.h5`` / ``<name>.h5`` / ``<name>_notop.weights.h5``
            / ``<name>_notop.h5`` from it when present (`tfxfer.transfer.candidates.LOCAL_WEIGHT_NAMES`).
            A file of the full ImageNet classifier also gives LEEP and NCE; a headless one does not.
        verbose: 1 prints one progress line per candidate, 0 is silent.

    Returns:
        A `RankingResult`: ``to_rows()`` (one dict per candidate: scores, params, int8_size_mib,
        latency_ms, pareto, within_budget, rank, timings, note), ``to_markdown()``, ``best``,
        ``sample`` (which examples were scored).

    Raises:
        ArgumentError / ArgumentTypeError: bad options or candidates (unknown backbone names
            raise `UnknownNameError` with close matches).
        DataError: images of the wrong shape, length mismatch, a single class.
    """
    wall = time.perf_counter()
    scores, primary = _check_options(scores, primary, cost_axis, task, max_samples, max_per_class, batch_size)
    convert_rule = _convert_rule(convert_extractors)
    budget = Budget.coerce(budget)
    if is_text_data(data):
        if cache_dir is not None:
            raise ArgumentError("cache_dir", cache_dir, "applies to image backbones (text embeddings are not cached)")
        if weights_dir is not None:
            raise ArgumentError("weights_dir", weights_dir, "applies to image backbones (text encoders load presets)")
        return _rank_text(data, candidates, budget=budget, scores=scores, primary=primary, cost_axis=cost_axis,
                          task=task, input_size=input_size, score_over_budget=score_over_budget,
                          max_samples=max_samples, batch_size=batch_size or 32, sequence_length=sequence_length,
                          seed=seed, keep_features=keep_features, verbose=verbose, wall=wall)
    cost_axis = cost_axis or "latency_ms"
    if not measure_cost and (budget.max_size_mib is not None or budget.max_latency_ms is not None):
        raise ArgumentError("measure_cost", False, "must be True when the budget limits size or latency")
    if isinstance(candidates, (str, Candidate)):
        candidates = [candidates]
    text = [c for c in candidates if is_text_candidate(c)]
    if text:
        raise ArgumentError("candidates", text[0] if isinstance(text[0], str) else text[0].label,
                            "must be image backbones for image data, not a text encoder")
    candidates = [as_candidate(c) for c in candidates]
    if weights_dir is not None:
        check_weights_dir(weights_dir)  # even when no candidate needs it
        candidates = [with_local_weights(c, weights_dir) for c in candidates]
    if not candidates:
        raise ArgumentError("candidates", candidates, "must name at least one backbone")
    labels_seen = [c.label for c in candidates]
    if len(set(labels_seen)) != len(labels_seen):
        raise ArgumentError("candidates", labels_seen, "must not repeat a candidate (give each a distinct label)")
    images, labels = read_image_arrays(data, read_limit=None if max_samples is None else 10 * max_samples)
    total = len(images)
    if task == "classification":
        labels = single_labels(labels)
        classes = np.unique(labels)
        if classes.size < 2:
            raise DataError(f"`data` has a single class ({classes.tolist()}); ranking needs at least 2")
        num_outputs, head_task = int(classes.size), "multiclass"
    else:
        num_outputs, head_task = 1 if labels.ndim == 1 else int(labels.shape[1]), "regression"
    index = ranking_subset(labels, max_samples=max_samples, max_per_class=max_per_class, seed=seed,
                           stratify=task == "classification")
    images, labels = images[index], labels[index]
    sample = {"indices": index.tolist(), "count": int(len(index)), "of": int(total), "max_samples": max_samples,
              "max_per_class": max_per_class if task == "classification" else None, "seed": int(seed),
              "stratified": task == "classification"}
    if task == "classification":
        found, counts = np.unique(labels, return_counts=True)
        sample["per_class"] = {str(k): int(v) for k, v in zip(found.tolist(), counts.tolist())}
    channels = int(images.shape[-1])
    calibration = images[np.random.default_rng(seed).permutation(len(images))[:num_calibration]]
    cache = None if cache_dir is None else cache_dir if isinstance(cache_dir, RankingCache) else RankingCache(cache_dir)
    fingerprint = cache.fingerprint(images) if cache else None
    source_head = bool({"leep", "nce"} & set(scores))

    rows, cost_cache, kept, to_extract, feature_keys = [], {}, {}, [], {}
    position = {c.label: i for i, c in enumerate(candidates, 1)}

    def finish(candidate, row, feats, seconds):
        """Scores of one candidate from its features, and its progress line."""
        row["extract_s"], row["note"] = seconds, feats.note
        if keep_features:
            kept[candidate.label] = (feats.features, feats.source_probs, labels)
        start = time.perf_counter()
        try:
            with _one_blas_thread():
                for name in scores:
                    row[name] = _score(name, feats, labels, task)
        except DataError as exc:  # e.g. random weights whose activations overflow to inf
            row["note"] = (row["note"] + "; " if row["note"] else "") + f"not scored: {exc}"
            row.update({name: None for name in scores})
        row["score_s"] = time.perf_counter() - start
        if verbose:
            _progress(row, position[candidate.label], len(candidates), primary)

    for candidate in candidates:
        spec = candidate.spec
        size = tuple(candidate.input_size or input_size or spec.input_size)
        spec.check_input_shape((*size, 3))
        row = {"candidate": candidate.label, "backbone": spec.name,
               "weights": "random" if candidate.weights is None else str(candidate.weights),
               "input_size": f"{size[0]}x{size[1]}", "params": None, "float32_size_mib": None, "int8_size_mib": None,
               "latency_ms": None, **{name: None for name in SCORE_NAMES}, "pareto": False,
               "within_budget": True, "over_budget": "", "rank": None,
               "cost_s": 0.0, "extract_s": 0.0, "score_s": 0.0, "note": "",
               "features_cached": False, "cost_cached": False}
        rows.append(row)
        if measure_cost:
            key = (architecture_id(spec), size, channels)
            if key not in cost_cache:
                disk_key = cache.cost_key(spec, input_size=size, channels=channels, num_outputs=num_outputs,
                                          task=head_task, threads=threads, runs=latency_runs,
                                          num_calibration=num_calibration) if cache else None
                stored = cache.get_cost(disk_key) if cache else None
                if stored is None:
                    cost_cache[key] = measure_edge_cost(
                        spec, input_size=size, channels=channels, num_classes=num_outputs, task=head_task,
                        representative=calibration, threads=threads, runs=latency_runs,
                        num_calibration=num_calibration)
                    row["cost_s"] = cost_cache[key]["cost_s"]
                    if cache:
                        cache.put_cost(disk_key, cost_cache[key])
                else:
                    cost_cache[key] = dict(stored, from_cache=True)
            row["cost_cached"] = bool(cost_cache[key].get("from_cache"))
            row.update({k: cost_cache[key][k] for k in ("params", "int8_size_mib", "latency_ms")})
            row["float32_size_mib"] = None if row["params"] is None else row["params"] * 4 / 2.0**20
        reasons = budget.violations(row)
        row["within_budget"], row["over_budget"] = not reasons, "; ".join(reasons)
        if not (row["within_budget"] or score_over_budget):
            if verbose:
                _progress(row, position[candidate.label], len(candidates), primary)
            continue
        feats = None
        if cache:
            start = time.perf_counter()
            feature_keys[candidate.label] = cache.feature_key(spec, candidate.weights, data=fingerprint,
                                                              input_size=size, source_head=source_head, seed=seed)
            feats = cache.get_features(feature_keys[candidate.label], rows=len(images))
            row["features_cached"] = feats is not None
            if feats is not None:
                finish(candidate, row, feats, time.perf_counter() - start)
        if feats is None:
            to_extract.append(candidate)

    # one build and one trace per (backbone, input size): a pretrained candidate and its random twin share them
    by_label = {row["candidate"]: row for row in rows}

    def store_and_finish(candidate, feats, seconds):
        if cache:
            cache.put_features(feature_keys[candidate.label], feats)
        finish(candidate, by_label[candidate.label], feats, seconds)

    if to_extract:
        # each candidate is stored and scored in a second thread (numpy, GIL released) while the next one
        # is extracted; one such thread keeps the rows and progress lines in candidate order
        with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfxfer-score") as scorer:
            pending = []
            try:
                extract_candidates(to_extract, images, input_size=input_size, batch_size=batch_size,
                                   source_head=source_head, seed=seed, extractor_cache=cache,
                                   convert_extractors=convert_rule,
                                   on_done=lambda *args: pending.append(scorer.submit(store_and_finish, *args)))
            finally:
                for future in pending:
                    future.result()

    return _finish(rows, kept, primary=primary, cost_axis=cost_axis, budget=budget, pareto=measure_cost,
                   num_samples=len(images), num_classes=num_outputs if task == "classification" else None, wall=wall,
                   sample=sample)


def _progress(row, index, count, primary):
    cost = (f"{row['int8_size_mib']:.2f} MiB int8, {row['latency_ms']:.2f} ms"
            if row["latency_ms"] is not None else "cost not measured")
    score = row[primary]
    print(f"[{index}/{count}] {row['candidate']} @ {row['input_size']}: {cost}; "
          + (f"{primary} {score:.4f} (features {row['extract_s']:.1f} s"
             + (", cached)" if row["features_cached"] else ")") if score is not None
             else (f"over budget ({row['over_budget']})" if not row["within_budget"] else "not scored")),
          flush=True)


def _rank_text(data, candidates, *, budget, scores, primary, cost_axis, task, input_size, wall, **options):
    cost_axis = cost_axis or "params"
    check_text_options(budget, cost_axis, input_size)
    if primary in ("leep", "nce"):
        raise ArgumentError("primary", primary, "must be logme or hscore for text encoders (LEEP/NCE need a source head)")
    rows, kept, num_samples, num_classes = rank_text_rows(data, candidates, budget=budget, scores=scores,
                                                          score_names=SCORE_NAMES, primary=primary, task=task, **options)
    return _finish(rows, kept, primary=primary, cost_axis=cost_axis, budget=budget, pareto=True,
                   num_samples=num_samples, num_classes=num_classes, wall=wall)


def _finish(rows, kept, *, primary, cost_axis, budget, pareto, num_samples, num_classes, wall,
            sample=None) -> RankingResult:
    """Pareto flags and ranks among in-budget scored rows; those first, best first."""
    eligible = [r["within_budget"] and r[primary] is not None for r in rows]
    flags = pareto_flags([r[primary] if ok else None for r, ok in zip(rows, eligible)],
                         [r[cost_axis] if ok else None for r, ok in zip(rows, eligible)])
    for row, flag in zip(rows, flags):
        row["pareto"] = bool(flag) if pareto else False
    ranked = sorted((r for r, ok in zip(rows, eligible) if ok), key=lambda r: -r[primary])
    for rank, row in enumerate(ranked, 1):
        row["rank"] = rank
    rest = [r for r, ok in zip(rows, eligible) if not ok]
    timings = {"wall_s": time.perf_counter() - wall,
               "extract_s": sum(r["extract_s"] for r in rows), "cost_s": sum(r["cost_s"] for r in rows),
               "score_s": sum(r["score_s"] for r in rows)}
    return RankingResult(rows=ranked + rest, primary=primary, cost_axis=cost_axis, budget=budget,
                         num_samples=num_samples, num_classes=num_classes, timings=timings, features=kept,
                         sample=sample or {})
