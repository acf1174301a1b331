"""``tfxfer rank RECIPE|DATA``: rank candidate backbones (images) or text encoders (text data) by
transferability beside their cost, with an optional negative-transfer probe (see `tfxfer.transfer`).

Example:
    >>> from tfxfer.cli import main
    >>> main(["rank", "pipelines/quick.yaml", "--max-size-mib", "5", "--probe"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse

from tfxfer.cli.common import (EXIT_OK, add_json, add_verbosity, check_data_argument, check_recipe_names, emit_json,
                               import_tensorflow, say, verbosity)
from tfxfer.errors import ArgumentError


def add_parser(sub) -> None:
    p = sub.add_parser("rank", help="rank candidate backbones on your data before training (LogME and kin)",
                       description="Score candidate backbones on your data from one pass of frozen features, beside "
                       "their int8 TFLite size and LiteRT latency. Given a recipe, its data, color mode and input size "
                       "are used and the candidates default to its backbone plus efficientnet_lite0/1/2. Text data "
                       "(a packaged text data set, a TSV / JSONL table, or a CSV with a `text` column) ranks text "
                       "encoders instead, beside their parameter count and float32 size.")
    p.add_argument("data", metavar="RECIPE|DATA", help="a recipe (.yaml), a packaged data set name, a folder of class "
                   "sub-folders, an image CSV table, or a text table (CSV / TSV / JSONL with text,label)")
    p.add_argument("--candidates", help="comma-separated catalog names, e.g. efficientnet_lite0,mobilenet_v2:random@96, "
                   "or for text data text encoders, e.g. all-minilm-l6-v2,all-minilm-l6-v2:random,path/to/preset "
                   "(required for DATA; for a RECIPE default: its backbone,efficientnet_lite0,efficientnet_lite1,"
                   "efficientnet_lite2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, as in `tfxfer run` (repeatable; RECIPE only)")
    p.add_argument("--input-size", type=int, help="square input size for candidates without their own "
                   "(default: the recipe's model.input_size, else each backbone's native size)")
    p.add_argument("--max-samples", type=int, default=1000, help="labelled examples to score on (default 1000)")
    p.add_argument("--max-per-class", type=int, default=50, help="images: at most this many examples of each class, "
                   "a stratified seeded subset (default 50; 0 for no per-class cap)")
    p.add_argument("--max-size-mib", type=float, help="budget: largest int8 TFLite size in MiB")
    p.add_argument("--max-latency-ms", type=float, help="budget: largest LiteRT latency in ms")
    p.add_argument("--max-params", type=int, help="budget: most parameters (images and text)")
    p.add_argument("--sequence-length", type=int, help="text: tokens per text for encoders without @N "
                   "(default 128, capped at each encoder's maximum)")
    p.add_argument("--probe", action="store_true", help="also run the negative-transfer probe on the top-ranked "
                   "candidate (pretrained vs random-weights features, and TF-IDF for text) and print its verdict")
    p.add_argument("--no-cost", action="store_true", help="skip the int8 size / latency measurement")
    p.add_argument("--cache", metavar="DIR", help="where features and int8 size / latency are kept between rankings "
                   "(images; default $TFXFER_CACHE_DIR/ranking, else ~/.cache/tfxfer/ranking)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the ranking cache")
    p.add_argument("--convert-extractors", action=argparse.BooleanOptionalAction, default=None,
                   help="images: keep each candidate's feature extractor in the cache as a float32 TFLite file "
                   "(a few seconds per candidate, once), so later rankings run in LiteRT and build no Keras model; "
                   "default: for backbones of up to 25M parameters")
    p.add_argument("--weights-dir", metavar="DIR", help="locally supplied ImageNet weights for any catalog backbone: "
                   "NAME.weights.h5, NAME.h5, NAME_notop.weights.h5 or NAME_notop.h5 (default $TFXFER_WEIGHTS_DIR); "
                   "a file with the ImageNet classifier also gives LEEP/NCE")
    add_verbosity(p)
    add_json(p)


def _check_flags(args, *, recipe: bool) -> None:
    """Flag combinations that make no sense for this kind of RECIPE|DATA (one-line usage errors)."""
    if not recipe and args.overrides:
        raise ArgumentError("--set", args.overrides[0], "applies only when ranking from a recipe (.yaml)")
    if not recipe and not args.candidates:
        raise ArgumentError("--candidates", None, "is required when DATA is not a recipe (.yaml)")
    if args.max_per_class is not None and args.max_per_class < 0:
        raise ArgumentError("--max-per-class", args.max_per_class, "must be >= 1 (or 0 for no per-class cap)")
    from tfxfer.recipes.config_checks import MAX_INPUT_SIDE
    from tfxfer.utils.validate import check_float, check_int

    # the library's own bounds (rank_backbones, the probe, Budget), checked here under the flags' names
    # before TensorFlow loads and the data are read
    for flag, value, low, high in (("--input-size", args.input_size, 1, MAX_INPUT_SIDE),  # a recipe's cap
                                   ("--max-samples", args.max_samples, 3 if args.probe else 2, None),
                                   ("--max-params", args.max_params, 1, None),
                                   ("--sequence-length", args.sequence_length, 2, None)):
        if value is not None:
            check_int(flag, value, low=low, high=high)
    for flag, value in (("--max-size-mib", args.max_size_mib), ("--max-latency-ms", args.max_latency_ms)):
        if value is not None:
            check_float(flag, value, low=0, low_open=True)


def _check_text_flags(args) -> None:
    for flag, value in (("--input-size", args.input_size), ("--max-size-mib", args.max_size_mib),
                        ("--max-latency-ms", args.max_latency_ms)):
        if value is not None:
            raise ArgumentError(flag, value, "applies to image backbones; text encoders are ranked on "
                                "--max-params and --sequence-length (their int8 size and latency are not measured)")


def cache_dir(args) -> str | None:
    """The ranking cache folder: ``--cache``, else ``$TFXFER_CACHE_DIR/ranking``, else
    ``$XDG_CACHE_HOME/tfxfer/ranking`` (``~/.cache``); None with ``--no-cache``."""
    import os

    if args.no_cache:
        if args.cache:
            raise ArgumentError("--no-cache", True, "cannot be combined with --cache")
        return None
    if args.cache:
        return args.cache
    if os.environ.get("TFXFER_CACHE_DIR"):
        return os.path.join(os.environ["TFXFER_CACHE_DIR"], "ranking")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tfxfer", "ranking")


def weights_dir(args) -> str | None:
    """``--weights-dir``, else ``$TFXFER_WEIGHTS_DIR``, else None (checked before TensorFlow loads)."""
    import os

    folder = args.weights_dir or os.environ.get("TFXFER_WEIGHTS_DIR") or None
    if folder is not None and not os.path.isdir(os.path.expanduser(folder)):
        raise ArgumentError("--weights-dir", folder, "must be an existing folder of ImageNet weights files")
    return None if folder is None else os.path.expanduser(folder)


def _budget(args):
    from tfxfer.transfer import Budget  # imports TensorFlow

    return Budget(max_size_mib=args.max_size_mib, max_latency_ms=args.max_latency_ms, max_params=args.max_params)


def _probe(args, top, run_probe, *, control: str):
    """``--probe``: the verdict for the top-ranked candidate (``top``), printed; returned for ``--json``."""
    if not args.probe:
        return None
    if top is None:
        print("\nProbe skipped: no candidate is within the budget.")  # on stderr under --json
        return None
    say(args, f"Probing {top.label}: linear probe on its features vs {control}")
    report = run_probe(top)
    if not args.json:
        print(f"\nNegative-transfer probe for {top.label}:\n{report.to_markdown()}")
        if top.weights is None:
            print("(Its weights are random, so the probe compares two random initialisations.)")
    return report


def _finish(args, result, probe, *, kind: str) -> int:
    if args.json:
        emit_json(args, kind=kind, candidates=result.to_rows(), best=result.best,
                  ranking={k: v for k, v in result.to_dict().items() if k != "rows"},
                  probe=probe.to_dict() if probe is not None else None)
    return EXIT_OK


def cmd_rank(args) -> int:
    # tfxfer.recipes imports numpy, and ranking imports TensorFlow where it needs it: loaded here,
    # not at `tfxfer --help`, and a recipe typo stays a fast one-line error
    from tfxfer.recipes import ranking

    recipe = ranking.is_recipe(args.data)
    _check_flags(args, recipe=recipe)
    local = weights_dir(args)  # a missing folder fails before TensorFlow
    if recipe:  # a recipe typo, an unknown data set or backbone fails before TensorFlow
        from tfxfer.recipes import load_config

        check_recipe_names(load_config(args.data, overrides=args.overrides))
        import_tensorflow(args)  # quietly, before image_rank_inputs reads the catalog and the data (TensorFlow)
    else:
        check_data_argument(args.data)  # an unknown data set name or a missing path fails before TensorFlow
        import_tensorflow(args)  # telling text from image data reads the data set catalog (TensorFlow)
        if ranking.is_text_source(args.data):
            return _rank_text(args)
    inputs = ranking.image_rank_inputs(args.data, candidates=args.candidates and args.candidates.split(","),
                                       overrides=args.overrides, input_size=args.input_size)
    from tfxfer.recipes.inference import evaluation_data  # imports TensorFlow: after import_tensorflow
    from tfxfer.transfer import rank_backbones
    from tfxfer.transfer.candidates import with_local_weights

    candidates = [with_local_weights(c, local) for c in inputs.candidates] if local else inputs.candidates
    size = inputs.input_size
    x, y, _ = evaluation_data(inputs.source, image_size=size or (224, 224), channels=inputs.channels, split="train",
                              limit=args.max_samples, sample_seed=0)  # a seeded subset, not the first classes
    result = rank_backbones((x, y), candidates, input_size=size, budget=_budget(args),
                            measure_cost=not args.no_cost, max_samples=args.max_samples,
                            max_per_class=args.max_per_class or None, cache_dir=cache_dir(args),
                            convert_extractors=args.convert_extractors,
                            verbose=1 if verbosity(args) else 0)
    if not args.json:
        print(result.to_markdown())
    probe = _probe(args, ranking.probe_target(result, candidates), lambda top: ranking.probe_image_candidate(
        (x, y), top, input_size=size, max_samples=args.max_samples),
        control="the same architecture with random weights")
    return _finish(args, result, probe, kind="image")


def _rank_text(args) -> int:
    """`tfxfer rank` on text data: text encoders scored on mean-pooled embeddings."""
    # TensorFlow is already imported by cmd_rank
    from tfxfer.recipes import ranking
    from tfxfer.transfer import rank_backbones

    _check_text_flags(args)
    if args.cache:
        raise ArgumentError("--cache", args.cache, "applies to image backbones (text embeddings are not cached)")
    if args.weights_dir:
        raise ArgumentError("--weights-dir", args.weights_dir, "applies to image backbones (text encoders load presets)")
    candidates = ranking.text_candidates(args.candidates.split(","))  # an image backbone here is a one-line error

    texts, labels = ranking.load_text_rank_data(args.data, max_samples=args.max_samples)
    result = rank_backbones((texts, labels), candidates, budget=_budget(args), sequence_length=args.sequence_length,
                            verbose=1 if verbosity(args) else 0)
    if not args.json:
        print(result.to_markdown())
    probe = _probe(args, ranking.probe_target(result, candidates), lambda top: ranking.probe_text_candidate(
        texts, labels, top, sequence_length=args.sequence_length), control="random weights and TF-IDF")
    return _finish(args, result, probe, kind="text")
