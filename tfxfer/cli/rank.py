"""``tfxfer rank RECIPE|DATA``: rank candidate backbones (images) or text encoders (text data) by
transferability beside their cost, with an optional negative-transfer probe (see `tfxfer.transfer`).

Example:
    >>> from tfxfer.cli import main
    >>> main(["rank", "pipelines/quick.yaml", "--max-size-mib", "5", "--probe"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import os

from tfxfer.cli.common import EXIT_OK, add_verbosity, import_tensorflow, say, verbosity



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
    p.add_argument("--max-size-mib", type=float, help="budget: largest int8 TFLite size in MiB")
    p.add_argument("--max-latency-ms", type=float, help="budget: largest LiteRT latency in ms")
    p.add_argument("--max-params", type=int, help="budget: most parameters (images and text)")
    p.add_argument("--sequence-length", type=int, help="text: tokens per text for encoders without @N "
                   "(default 128, capped at each encoder's maximum)")
    p.add_argument("--probe", action="store_true", help="also run the negative-transfer probe on the top-ranked "
                   "candidate (pretrained vs random-weights features, and TF-IDF for text) and print its verdict")
    p.add_argument("--no-cost", action="store_true", help="skip the int8 size / latency measurement")
    add_verbosity(p)


RANK_DEFAULT_CANDIDATES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def _is_recipe(path: str) -> bool:
    return path.lower().endswith((".yaml", ".yml"))


def _rank_inputs(args):
    """(data source, channels, input size or None, `Candidate` s) from ``RECIPE|DATA`` and the flags."""
    from tfxfer.errors import ArgumentError, ConfigError

    if not _is_recipe(args.data):
        if args.overrides:
            raise ArgumentError("--set", args.overrides[0], "applies only when ranking from a recipe (.yaml)")
        if not args.candidates:
            raise ArgumentError("--candidates", None, "is required when DATA is not a recipe (.yaml)")
        size = (args.input_size, args.input_size) if args.input_size else None
        return args.data, 3, size, _candidates(args.candidates.split(","))
    from tfxfer.recipes import load_config
    from tfxfer.recipes.sources import resolve_source

    cfg = load_config(args.data, overrides=args.overrides)
    if cfg.task != "image_classification":
        raise ConfigError(f"{os.path.basename(args.data)}: `tfxfer rank` ranks image backbones; the recipe's task "
                          f"is {cfg.task!r}")
    resolve_source(cfg)  # strict: a missing folder or an unknown data set is a one-line ConfigError
    size = (args.input_size, args.input_size) if args.input_size else cfg.model.input_size
    if args.candidates:
        names = args.candidates.split(",")
    else:
        weights = cfg.model.weights
        own = cfg.model.backbone + ("" if weights == "imagenet" else f":{weights or 'random'}")
        names = [own, *RANK_DEFAULT_CANDIDATES]
    channels = 1 if cfg.data.color_mode == "grayscale" else 3
    return cfg.data.source, channels, (tuple(size) if size else None), _candidates(names)


def _candidates(items) -> list:
    """Candidate strings -> `Candidate` s in order, without repeats (same backbone, weights and size)."""
    from tfxfer.transfer.candidates import Candidate

    from tfxfer.errors import ArgumentError
    from tfxfer.transfer.text_candidates import is_text_candidate

    out, seen = [], set()
    for item in (i.strip() for i in items if i.strip()):
        if is_text_candidate(item):
            raise ArgumentError("--candidates", item, "must be image backbones: the data holds images, and this "
                                "is a text encoder")
        candidate = Candidate.parse(item)
        key = (candidate.backbone, candidate.weights, candidate.input_size)
        if key not in seen:
            seen.add(key)
            out.append(candidate)
    return out


TEXT_TABLES = (".tsv", ".tab", ".jsonl", ".ndjson")


def _is_text_source(source: str) -> bool:
    """A packaged text data set, a TSV / JSONL table, or a CSV whose header has a `text` column."""
    import csv

    from tfxfer.data import describe, list_datasets
    from tfxfer.errors import ArgumentError

    key = source.strip().lower().replace("-", "_")
    if key in list_datasets():
        task = describe(key).task
        if task == "token_classification":
            raise ArgumentError("data", source, "must be a classification data set; `tfxfer rank` does not rank "
                                "NER (token classification) data")
        return task == "text_classification"
    path = os.path.abspath(os.path.expanduser(source))
    if not os.path.isfile(path):
        return False
    if path.lower().endswith(TEXT_TABLES):
        return True
    if path.lower().endswith(".csv"):
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            header = [c.strip().lower() for c in next(csv.reader(f), [])]
        return "text" in header and "path" not in header
    return False


def _rank_budget(args) -> dict:
    return {k: v for k, v in (("max_size_mib", args.max_size_mib), ("max_latency_ms", args.max_latency_ms),
                              ("max_params", args.max_params)) if v is not None}


def _rank_text(args) -> int:
    """`tfxfer rank` on text data: text encoders scored on mean-pooled embeddings."""
    from tfxfer.errors import ArgumentError

    if args.overrides:
        raise ArgumentError("--set", args.overrides[0], "applies only when ranking from a recipe (.yaml)")
    if not args.candidates:
        raise ArgumentError("--candidates", None, "is required when DATA is not a recipe (.yaml)")
    for flag, value in (("--input-size", args.input_size), ("--max-size-mib", args.max_size_mib),
                        ("--max-latency-ms", args.max_latency_ms)):
        if value is not None:
            raise ArgumentError(flag, value, "applies to image backbones; text encoders are ranked on --max-params "
                                "and --sequence-length (their int8 size and latency are not measured)")
    from tfxfer.transfer.text_candidates import as_text_candidate

    candidates, seen = [], set()
    for item in (i.strip() for i in args.candidates.split(",") if i.strip()):
        candidate = as_text_candidate(item)  # an image backbone here is a one-line error
        key = (candidate.preset, candidate.pretrained, candidate.sequence_length)
        if key not in seen:
            seen.add(key)
            candidates.append(candidate)
    import_tensorflow(args)
    from tfxfer.transfer import probe_text, rank_backbones
    from tfxfer.transfer.text_ranking import embed_texts, text_arrays

    key = args.data.strip().lower().replace("-", "_")
    from tfxfer.data import list_datasets, load, load_texts

    if key in list_datasets():
        texts, labels = load(key).train
    else:
        texts, labels = load_texts(os.path.abspath(os.path.expanduser(args.data)), on_leakage="ignore").train
    texts, labels = text_arrays(([str(t) for t in texts], labels), max_samples=args.max_samples, seed=0)
    result = rank_backbones((texts, labels), candidates, budget=_rank_budget(args) or None,
                            sequence_length=args.sequence_length, verbose=1 if verbosity(args) else 0)
    print(result.to_markdown())
    top = _probe_target(args, result, candidates)
    if top is not None:
        say(args, f"Probing {top.label}: linear probe on its features vs random weights and TF-IDF")

        def encoder(pretrained):
            enc = type(top)(top.preset, pretrained=pretrained, sequence_length=top.sequence_length).load(
                sequence_length=args.sequence_length)
            return lambda t: embed_texts(enc, list(t), batch_size=32)

        report = probe_text(list(texts), labels, encode=encoder(top.pretrained), encode_control=encoder(False))
        print(f"\nNegative-transfer probe for {top.label}:\n{report.to_markdown()}")
        if not top.pretrained:
            print("(Its weights are random, so the probe compares two random initialisations.)")
    return EXIT_OK


def _probe_target(args, result, candidates):
    """The top-ranked candidate to probe (``--probe``), or None (no probe asked, or none in budget)."""
    if not args.probe:
        return None
    if result.best is None:
        print("\nProbe skipped: no candidate is within the budget.")
        return None
    return next(c for c in candidates if c.label == result.best["candidate"])


def cmd_rank(args) -> int:
    if not _is_recipe(args.data) and _is_text_source(args.data):
        return _rank_text(args)
    source, channels, size, candidates = _rank_inputs(args)
    import_tensorflow(args)
    from tfxfer.recipes.inference import evaluation_data
    from tfxfer.transfer import probe_backbone, rank_backbones

    budget = _rank_budget(args)
    x, y, _ = evaluation_data(source, image_size=size or (224, 224), channels=channels, split="train",
                              limit=args.max_samples)
    result = rank_backbones((x, y), candidates, input_size=size, budget=budget or None,
                            measure_cost=not args.no_cost, max_samples=args.max_samples,
                            verbose=1 if verbosity(args) else 0)
    print(result.to_markdown())
    top = _probe_target(args, result, candidates)
    if top is not None:
        probe_size = top.input_size or size or top.spec.input_size
        say(args, f"Probing {top.label}: linear probe on its features vs the same architecture with random weights")
        report = probe_backbone((x, y), top.spec, weights=top.weights, input_size=tuple(probe_size),
                                max_samples=args.max_samples)
        print(f"\nNegative-transfer probe for {top.label}:\n{report.to_markdown()}")
        if top.weights is None:
            print("(Its weights are random, so the probe compares two random initialisations.)")
    return EXIT_OK
