"""``tfxfer predict`` and ``tfxfer evaluate``: a saved model (.keras, .tflite or a run directory) on
images, or on texts for text classifiers and NER models.

``evaluate`` flags a model no better than chance (`tfxfer.metrics.chance_check`: a ``FLAGGED`` line,
the ``chance`` field of ``--json`` and exit code 4). ``--groups COLUMN`` adds a bias audit
(`tfxfer.fairness.group_metrics`: per-group metrics with bootstrap intervals and the worst-group
gap); ``--target DATA`` a shift test against unlabelled deployment data (`tfxfer.adapt.detect_shift`:
verdict, p-values, per-class confidence, expected accuracy). With ``--save`` and a run directory
both are written into the run (``eval/groups.json``, ``eval/shift.json``) and its report is rebuilt.

Both read images ``PREDICT_BATCH`` at a time: ``predict`` decodes, predicts and prints a batch before
reading the next, ``evaluate`` keeps only each batch's predictions and labels (``--target`` keeps the
images too: the shift test reads them), so the decoded pixels held do not grow with the number of
images (a packaged data set's raw arrays are in memory already).

Example:
    >>> from tfxfer.cli import main
    >>> main(["predict", "runs/quick", "photo.jpg", "--top", "2"])  # doctest: +SKIP
    0
    >>> main(["evaluate", "runs/elpv", "elpv", "--groups", "module_type", "--save"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import json
import os
import sys

from tfxfer.cli.common import (EXIT_OK, add_allow_chance, add_json, add_verbosity, chance_error, chance_exit,
                               chance_lines, check_data_argument, check_model_path, emit_json, import_tensorflow, show)
from tfxfer.errors import ArgumentError, DataError, bounded_repr
from tfxfer.utils.validate import check_int

#: The fewest ``--permutations`` a shift test takes: `tfxfer.adapt.detect_shift` with its defaults
#: (method "both", alpha 0.01) needs ceil(2 / 0.01), or no p-value could fall below alpha.
MIN_PERMUTATIONS = 200
#: The most ``--permutations`` / ``--bootstrap`` resamples: the library's bounds
#: (`tfxfer.adapt.two_sample.MAX_PERMUTATIONS`, `tfxfer.fairness.group_metrics.MAX_BOOTSTRAP`), repeated here so
#: that a wrong value is refused before TensorFlow and scipy are imported.
MAX_PERMUTATIONS = MAX_BOOTSTRAP = 100_000
#: Images ``predict`` decodes and runs through the model at a time (and ``evaluate`` for a folder or table).
PREDICT_BATCH = 32
#: The splits of a packaged data set.
SPLITS = ("train", "val", "test")


def add_parsers(sub) -> None:
    p = sub.add_parser("predict", help="classify images (or texts, or find entities) with a model or run directory")
    p.add_argument("model", help="a .keras or .tflite file, or a run directory")
    p.add_argument("inputs", nargs="+", help="image files or folders (searched recursively; a file there that "
                   "cannot be read is skipped with its reason, one named here is an error); for text models "
                   "texts or .txt files of lines")
    p.add_argument("--top", type=int, default=3, help="classes to show per image (default 3)")
    add_tta(p)
    add_json(p)
    add_verbosity(p)

    p = sub.add_parser("evaluate", help="accuracy, per-class metrics and calibration of a model on labelled data "
                       "(entity-level F1 for NER models)")
    p.add_argument("model", help="a .keras or .tflite file, or a run directory")
    p.add_argument("data", help="a packaged data set name, a folder of class sub-folders, or a CSV table; for a "
                   "text classifier a CSV / TSV / JSONL table, for an NER model a CoNLL file")
    p.add_argument("--split", default="test", help="split of a packaged data set: train, val or test (default "
                   "test); a folder or table is read whole")
    p.add_argument("--limit", type=int, help="evaluate at most this many images (texts, sentences); images of a "
                   "larger folder, table or packaged split are a seeded stratified sample across all classes "
                   "(seed 0; the output says N of how many), texts and sentences the first N")
    p.add_argument("--text-column", default="text", help="text column (CSV / TSV) or field (JSONL) of a text table")
    p.add_argument("--label-column", default="label", help="label column or field of a text table")
    p.add_argument("--groups", metavar="COLUMN", help="bias audit by this column: per-group accuracy, recall, FPR/FNR "
                   "and ECE with bootstrap intervals and the worst-group gap; a column of the CSV / TSV / JSONL "
                   "data table or a packaged set's per-example field (elpv: module_type, alias cell_type). DATA "
                   "may also be a domain pair (elpv_mono_to_poly, sentiment_movies_to_tweets, ...): both domains' "
                   "test examples, grouped by domain")
    p.add_argument("--target", metavar="DATA", help="unlabelled deployment data (image folder or files, .txt of "
                   "texts, a table or a packaged set): test for a domain shift against DATA and estimate the "
                   "accuracy to expect there (needs a .keras model or a run directory)")
    p.add_argument("--save", action="store_true", help="with a run directory: write eval/groups.json / "
                   "eval/shift.json into it and rebuild its report")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per group (default 1000)")
    p.add_argument("--permutations", type=int, default=500, help="permutations of each shift test (default 500, "
                   f"at least {MIN_PERMUTATIONS})")
    add_tta(p)
    add_allow_chance(p)
    add_json(p)
    add_verbosity(p)


def add_tta(p) -> None:
    p.add_argument("--tta", nargs="?", const="hflip", metavar="FLIPS",
                   help="image models: average each image with its flips (hflip, vflip or hflip,vflip; default "
                        "hflip); one model pass per view, so about 2-3x the time. Only where labels survive flips")


def tta_views(args) -> list | None:
    """``--tta`` as views (identity first), checked before TensorFlow; None without the flag."""
    if getattr(args, "tta", None) is None:
        return None
    flips = [f.strip() for f in args.tta.split(",") if f.strip()]
    if not flips or any(f not in ("hflip", "vflip") for f in flips) or len(set(flips)) != len(flips):
        raise ArgumentError("--tta", args.tta, "must be hflip, vflip or hflip,vflip")
    return ["identity", *flips]


def cmd_predict(args) -> int:
    check_int("--top", args.top, low=1)
    views = tta_views(args)
    check_model_path(args.model)  # a missing model fails before TensorFlow
    import_tensorflow(args)
    # tfxfer.recipes.inference imports TensorFlow: loaded after import_tensorflow hid its start-up logs
    from tfxfer.recipes.image_inputs import image_files, iter_images, skip_note
    from tfxfer.recipes.inference import open_model, predict_text_inputs, top_k

    model = open_model(args.model)
    if model.image_size is None:  # text classifier or NER model: the inputs are texts
        if views:
            raise ArgumentError("--tta", args.tta, "is for image models; this is a text model")
        results = predict_text_inputs(model, args.inputs, k=args.top)
        if args.json:
            emit_json(args, model=model.path, results=[{"text": t, "result": r} for t, r in results])
            return EXIT_OK
        for text, result in results:
            print(f"{text}: {result}")
        return EXIT_OK
    # Files found in folders that cannot be used (a name that is not UTF-8, empty, not an image, truncated,
    # corrupt...) are skipped with the training loaders' reason; a file named explicitly stays an error.
    skipped, named = [], []
    files = image_files(args.inputs, skipped=skipped, named=named)
    k = min(args.top, len(model.class_names))
    index = {str(c): i for i, c in enumerate(model.class_names)}
    results, done = [], 0
    # a batch at a time (decode, predict, print): memory stays bounded, results appear as they come
    for paths, images in iter_images(files, image_size=model.image_size, channels=model.channels,
                                     batch_size=PREDICT_BATCH, skipped=skipped, required=named):
        ranked_all = top_k(model.predict(images, batch_size=PREDICT_BATCH, views=views), model.class_names, k=k)
        done += len(paths)
        for path, ranked in zip(paths, ranked_all):
            if args.json:  # the device runner's schema (export/litert_runner.py): image, top [{index, label,
                # probability}]; "skipped" ({path, reason, detail} per file left out) only when a folder held some
                results.append({"image": path, "top": [{"index": index[c], "label": c, "probability": p}
                                                       for c, p in ranked]})
            else:
                print(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in ranked), flush=True)
    if not done:
        raise DataError(f"No readable image in {bounded_repr(list(args.inputs))} ({len(skipped)} skipped: "
                        f"{skip_note(skipped)})")
    if args.json:
        emit_json(args, model=model.path, results=results, **({"skipped": skipped} if skipped else {}))
        return EXIT_OK
    if skipped:  # on stderr, after the results: stdout keeps one result line per image
        print(f"tfxfer: note: skipped {len(skipped)} file(s) ({skip_note(skipped)}): "
              + ", ".join(f"{s['path']} ({s['reason']})" for s in skipped[:5])
              + (", ..." if len(skipped) > 5 else ""), file=sys.stderr)
    return EXIT_OK


def _check_evaluate_args(args) -> None:
    from tfxfer.recipes.audit_data import packaged_key

    check_int("--bootstrap", args.bootstrap, low=0, high=MAX_BOOTSTRAP)
    check_int("--permutations", args.permutations, low=MIN_PERMUTATIONS, high=MAX_PERMUTATIONS)
    if args.split not in SPLITS:
        raise ArgumentError("--split", args.split, 'must be "train", "val" or "test"')
    if args.split != "test" and packaged_key(args.data) is None and (args.target is None
                                                                     or packaged_key(args.target) is None):
        raise ArgumentError("--split", args.split, "applies to a packaged data set only; DATA (and --target) "
                            "is a folder, a table or a domain pair, read whole")
    if args.limit is not None:
        check_int("--limit", args.limit, low=1)
    if args.groups is not None and not args.groups.strip():
        raise ArgumentError("--groups", args.groups, "must name a column")
    if args.target is not None:
        check_data_argument(args.target, name="--target")
    if args.save:
        if not os.path.isdir(os.path.expanduser(args.model)):
            raise ArgumentError("--save", args.model, "needs a run directory as MODEL (the records go into it)")
        if not (args.groups or args.target):
            raise ArgumentError("--save", True, "has nothing to save without --groups or --target")


def cmd_evaluate(args) -> int:
    from tfxfer.recipes.audit_data import pair_key

    check_model_path(args.model)  # a missing model or data set fails before TensorFlow
    pair = pair_key(args.data)  # a domain pair: both domains' test examples, grouped by domain
    if pair is None:
        check_data_argument(args.data)
    _check_evaluate_args(args)
    views = tta_views(args)
    import_tensorflow(args)
    # these import TensorFlow: loaded after import_tensorflow hid its start-up logs
    import numpy as np

    from tfxfer.recipes.image_inputs import skip_counts
    from tfxfer.recipes.inference import delivered_file, evaluation_batches, open_model
    from tfxfer.metrics import classification_metrics, metrics_chance_check
    from tfxfer.recipes.text_eval import evaluate_text_model, format_text_metrics, model_task

    model = open_model(args.model)
    audit = bool(args.groups or args.target or pair)
    if views and model.image_size is None:
        raise ArgumentError("--tta", args.tta, "is for image models; this is a text model")
    if model.image_size is None and (not audit or model_task(model) == "token_classification"):
        if audit:
            raise ArgumentError(*(("--groups", args.groups) if args.groups else ("--target", args.target)
                                  if args.target else ("data", args.data)), "is for classifiers; this is an NER model")
        metrics = evaluate_text_model(model, args.data, split=args.split, limit=args.limit,
                                      text_column=args.text_column, label_column=args.label_column)
        check = metrics_chance_check(metrics)
        code = chance_exit(args, check)
        if args.json:
            emit_json(args, exit_code=code, error=chance_error(check, allowed=args.allow_chance), model=model.path,
                      data=args.data, split=args.split, metrics=metrics, chance=check)
        else:
            print(format_text_metrics(metrics, title=f"{os.path.basename(model.path)} on {args.data}"))
            for line in chance_lines(check, allowed=args.allow_chance):
                print(line)
        return code
    if model.image_size is None:  # a text classifier with --groups / --target
        from tfxfer.recipes.audit_data import text_data
        from tfxfer.text import predict_texts

        x, y, groups, skipped = text_data(model, args.data, split=args.split, limit=args.limit,
                                          text_column=args.text_column, label_column=args.label_column,
                                          groups=args.groups)
        names = list(model.class_names)
        probabilities = predict_texts(model.model, x)
        metrics = {"task": "text_classification", "skipped": skipped,
                   **classification_metrics(probabilities, y, names)}
        return _report(args, model, model, None, x, y, names, probabilities, metrics, None, None, groups)
    groups, skipped = None, []  # skipped: the loader's entry per file or row left out (unreadable, repeated...)
    sample = {}  # --limit below the data's size: a seeded stratified sample of every class, not the first N
    if pair is not None:
        from tfxfer.recipes.audit_data import pair_images

        x, y, groups = pair_images(args.data, args.groups, model=model, limit=args.limit)
        names, batches = list(model.class_names), [(x, y)]
    else:  # a batch at a time: only predictions and labels are kept, not the images
        batches, names = evaluation_batches(args.data, image_size=model.image_size, channels=model.channels,
                                            split=args.split, class_names=model.class_names, limit=args.limit,
                                            sample_seed=0, skipped=skipped, sample=sample, batch_size=PREDICT_BATCH)
        x = None
        if args.target:  # the shift test reads the images themselves
            parts = list(batches)
            x, batches = np.concatenate([b[0] for b in parts]), parts
    # A run directory: the file it delivered leads, the Keras model it came from stands beside it.
    shipped = delivered_file(args.model)
    keras_model = model
    if shipped is not None:
        model = open_model(shipped)
    probabilities, y, keras_probabilities, tta = _predict_batches(model, keras_model if shipped else None,
                                                                  batches, views)
    if not len(y):
        raise DataError(f"{args.data} yielded no images")
    if args.groups and pair is None:
        from tfxfer.recipes.audit_data import image_groups

        groups = image_groups(args.data, args.groups, split=args.split, limit=args.limit, count=len(y),
                              channels=model.channels, image_size=model.image_size, indices=sample.get("indices"))
    sample = {k: v for k, v in sample.items() if k != "indices"}
    metrics = {"skipped": len(skipped), "skip_reasons": skip_counts(skipped),
               **classification_metrics(probabilities, y, names)}
    keras_metrics, agreement = None, None
    if shipped is not None:
        keras_metrics = classification_metrics(keras_probabilities, y, names)
        agreement = float((probabilities.argmax(1) == keras_probabilities.argmax(1)).mean())
    return _report(args, model, keras_model, shipped, x, y, names, probabilities, metrics, keras_metrics, agreement,
                   groups, tta=tta, sample=sample or None)


def _predict_batches(model, keras_model, batches, views) -> tuple:
    """``(probabilities, labels, Keras probabilities or None, tta record or None)`` over ``(images, labels)``
    batches, one batch of images held at a time. With ``views`` each batch is predicted with and without
    them, both timed after a warm-up: the record is ``{"views", "accuracy", "plain_accuracy", "seconds",
    "plain_seconds", "cost"}`` (the keys of `tfxfer.train.tta.evaluate_tta`). ``keras_model``, when given,
    predicts each batch too (with the views)."""
    import time

    import numpy as np

    probabilities, labels, plain, keras_probabilities = [], [], [], []
    plain_s = seconds = 0.0
    for x, y in batches:
        if views:
            if not plain:
                model.predict(x[:1])  # load / trace outside the timing
            t0 = time.perf_counter()
            plain.append(model.predict(x))
            plain_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            probabilities.append(model.predict(x, views=views))
            seconds += time.perf_counter() - t0
        else:
            probabilities.append(model.predict(x))
        if keras_model is not None:
            keras_probabilities.append(keras_model.predict(x, views=views))
        labels.append(np.asarray(y))
    if not labels:
        return np.zeros((0, len(model.class_names)), np.float32), np.zeros((0,), np.int64), None, None
    probabilities, y = np.concatenate(probabilities), np.concatenate(labels)
    keras_probabilities = np.concatenate(keras_probabilities) if keras_model is not None else None
    if not views:
        return probabilities, y, keras_probabilities, None
    plain = np.concatenate(plain)
    record = {"views": list(views), "accuracy": float(np.mean(probabilities.argmax(1) == y)),
              "plain_accuracy": float(np.mean(plain.argmax(1) == y)), "seconds": seconds, "plain_seconds": plain_s,
              "cost": seconds / max(plain_s, 1e-9)}
    return probabilities, y, keras_probabilities, record


def _split(data: str, split: str) -> str | None:
    """The split a record names: a packaged data set's, none for a file or folder (read whole)."""
    from tfxfer.recipes.audit_data import packaged_key, pair_key

    return "test" if pair_key(data) is not None else split if packaged_key(data) is not None else None


def _audits(args, keras_model, x, y, names, probabilities, groups) -> tuple[dict | None, dict | None]:
    """The ``groups.json`` and ``shift.json`` records asked for (None where not asked)."""
    from tfxfer.report.run_data import groups_record, shift_record

    group_record = shift = None
    if groups is not None:
        from tfxfer.fairness import group_metrics

        report = group_metrics(y, probabilities, groups, class_names=names, n_bootstrap=args.bootstrap)
        group_record = groups_record(report, column=args.groups or "domain", data=args.data,
                                     split=_split(args.data, args.split))
    if args.target:
        from tfxfer.adapt import detect_shift
        from tfxfer.recipes.audit_data import target_images, target_texts

        if keras_model.kind != "keras":
            raise ArgumentError("--target", args.target, "needs a .keras model or a run directory (the shift test "
                                "reads the model's features); this model is a .tflite file")
        target_skipped = []  # the loader's entry per target image left out (a name that is not UTF-8...)
        if keras_model.image_size is None:
            target = target_texts(args.target, model=keras_model, split=args.split, text_column=args.text_column,
                                  label_column=args.label_column)
        else:
            target = target_images(args.target, model=keras_model, split=args.split, skipped=target_skipped)
        result = detect_shift(keras_model.model, (x, y), target, permutations=args.permutations)
        shift = shift_record(result, source=args.data, target=args.target, split=_split(args.data, args.split),
                             class_names=names)
        if keras_model.image_size is not None:
            from tfxfer.recipes.image_inputs import skip_counts

            shift.update(target_skipped=len(target_skipped), target_skip_reasons=skip_counts(target_skipped))
    return group_record, shift


def _save(args, group_record, shift) -> list[str]:
    """Write the records into the run directory (under its lock) and rebuild its report."""
    from tfxfer.cli.json_output import dumps
    from tfxfer.report import write_report
    from tfxfer.utils.atomic import atomic_write_json
    from tfxfer.utils.lock import FolderLock

    run_dir = os.path.abspath(os.path.expanduser(args.model))
    written = []
    with FolderLock(run_dir, command=["tfxfer", "evaluate", "--save"]):
        for name, record in (("groups", group_record), ("shift", shift)):
            if record is not None:
                path = os.path.join(run_dir, "eval", f"{name}.json")
                os.makedirs(os.path.dirname(path), exist_ok=True)
                atomic_write_json(path, json.loads(dumps(record)))  # NaN -> null, numpy -> numbers
                written.append(path)
        written.append(write_report(run_dir).html)
    return written


def _report(args, model, keras_model, shipped, x, y, names, probabilities, metrics, keras_metrics, agreement,
            groups, *, tta=None, sample=None) -> int:
    from tfxfer.metrics import metrics_chance_check

    check = metrics_chance_check(metrics)
    code = chance_exit(args, check)
    group_record, shift = _audits(args, keras_model, x, y, names, probabilities, groups)
    saved = _save(args, group_record, shift) if args.save else []
    if args.json:
        extra = {} if shipped is None else {"keras_model": keras_model.path, "keras_metrics": keras_metrics,
                                            "top1_agreement": agreement}
        if group_record is not None:
            extra["groups"] = group_record
        if args.target:
            extra["shift"] = shift
        if saved:
            extra["saved"] = saved
        if tta is not None:
            extra["tta"] = tta
        if sample is not None:  # --limit drew a sample: {"size", "of", "seed"}
            extra["sample"] = sample
        emit_json(args, exit_code=code, error=chance_error(check, allowed=args.allow_chance), model=model.path,
                  data=args.data,
                  split=args.split, metrics=metrics, chance=check, **extra)
        return code
    unit = "texts" if model.image_size is None else "images"
    reasons = metrics.get("skip_reasons") or {}
    skips = (f", {metrics['skipped']} skipped: " + ", ".join(f"{n} {r}" for r, n in reasons.items()) if reasons
             else f", {metrics['skipped']} skipped" if metrics.get("skipped") else "")
    drawn = f", a stratified sample of {sample['of']} (--limit, seed {sample['seed']})" if sample else ""
    print(f"{os.path.basename(model.path)} on {args.data} ({len(y)} {unit}{drawn}{skips}): accuracy "
          f"{metrics['accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, ECE {metrics['ece']:.4f}")
    for line in chance_lines(check, allowed=args.allow_chance):
        print(line)
    if tta is not None:
        print(f"  test-time augmentation ({' + '.join(tta['views'])}): accuracy {tta['accuracy']:.4f} vs "
              f"{tta['plain_accuracy']:.4f} without, {tta['cost']:.1f}x the time ({tta['seconds']:.1f} s vs "
              f"{tta['plain_seconds']:.1f} s); the figures above are with it")
    if keras_metrics is not None:
        print(f"  (the delivered file; Keras model {os.path.basename(keras_model.path)}: accuracy "
              f"{keras_metrics['accuracy']:.4f}, macro F1 {keras_metrics['macro_f1']:.4f}; top-1 agreement "
              f"{agreement:.4f})")
    keras_rows = {c["name"]: c for c in (keras_metrics or {}).get("per_class", [])}
    print(f"{'class':<20} {'precision':>9} {'recall':>7} {'F1':>7} {'support':>8}"
          + ("   Keras: precision  recall" if keras_rows else ""))
    for c in metrics["per_class"]:
        k = keras_rows.get(c["name"])
        print(f"{c['name'][:20]:<20} {c['precision']:>9.4f} {c['recall']:>7.4f} {c['f1']:>7.4f} {c['support']:>8}"
              + (f"   {k['precision']:>16.4f} {k['recall']:>7.4f}" if k else ""))
    if metrics.get("confusion") is not None:
        print("confusion (rows: true class, columns: predicted):")
        for name, row in zip(names, metrics["confusion"]):
            print(f"  {name[:20]:<20} " + " ".join(f"{v:>6}" for v in row))
    if group_record is not None:
        from tfxfer.cli.audit import group_lines

        print(group_lines(group_record))
    if shift is not None:
        from tfxfer.cli.audit import shift_lines

        print(shift_lines(shift))
    for path in saved:
        print(f"Saved:    {show(path)}")
    return code
