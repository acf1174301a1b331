"""``tfxfer predict`` and ``tfxfer evaluate``: a saved model (.keras, .tflite or a run directory) on
images, or on texts for text classifiers and NER models.

Example:
    >>> from tfxfer.cli import main
    >>> main(["predict", "runs/quick", "photo.jpg", "--top", "2"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import os

from tfxfer.cli.common import (EXIT_OK, add_json, add_verbosity, check_data_argument, check_model_path, emit_json,
                               import_tensorflow)
from tfxfer.utils.validate import check_int


def add_parsers(sub) -> None:
    p = sub.add_parser("predict", help="classify images (or texts, or find entities) with a model or run directory")
    p.add_argument("model", help="a .keras or .tflite file, or a run directory")
    p.add_argument("inputs", nargs="+", help="image files or folders; for text models texts or .txt files of lines")
    p.add_argument("--top", type=int, default=3, help="classes to show per image (default 3)")
    add_json(p)
    add_verbosity(p)

    p = sub.add_parser("evaluate", help="accuracy, per-class metrics and calibration of a model on labelled data "
                       "(entity-level F1 for NER models)")
    p.add_argument("model", help="a .keras or .tflite file, or a run directory")
    p.add_argument("data", help="a packaged data set name, a folder of class sub-folders, or a CSV table; for a "
                   "text classifier a CSV / TSV / JSONL table, for an NER model a CoNLL file")
    p.add_argument("--split", default="test", help="split of a packaged data set (default test)")
    p.add_argument("--limit", type=int, help="evaluate at most this many images (texts, sentences)")
    p.add_argument("--text-column", default="text", help="text column (CSV / TSV) or field (JSONL) of a text table")
    p.add_argument("--label-column", default="label", help="label column or field of a text table")
    add_json(p)
    add_verbosity(p)


def cmd_predict(args) -> int:
    check_int("--top", args.top, low=1)
    check_model_path(args.model)  # a missing model fails before TensorFlow
    import_tensorflow(args)
    # tfxfer.recipes.inference imports TensorFlow: loaded after import_tensorflow hid its start-up logs
    from tfxfer.recipes.inference import image_files, open_model, predict_text_inputs, read_images, top_k

    model = open_model(args.model)
    if model.image_size is None:  # text classifier or NER model: the inputs are texts
        results = predict_text_inputs(model, args.inputs, k=args.top)
        if args.json:
            emit_json(args, model=model.path, results=[{"text": t, "result": r} for t, r in results])
            return EXIT_OK
        for text, result in results:
            print(f"{text}: {result}")
        return EXIT_OK
    files = image_files(args.inputs)
    probs = model.predict(read_images(files, image_size=model.image_size, channels=model.channels))
    ranked_all = top_k(probs, model.class_names, k=min(args.top, len(model.class_names)))
    if args.json:  # the device runner's schema (export/litert_runner.py): image, top [{index, label, probability}]
        index = {str(c): i for i, c in enumerate(model.class_names)}
        emit_json(args, model=model.path, results=[
            {"image": path, "top": [{"index": index[c], "label": c, "probability": p} for c, p in ranked]}
            for path, ranked in zip(files, ranked_all)])
        return EXIT_OK
    for path, ranked in zip(files, ranked_all):
        print(f"{path}: " + ", ".join(f"{c} {p:.3f}" for c, p in ranked))
    return EXIT_OK


def cmd_evaluate(args) -> int:
    check_model_path(args.model)  # a missing model or data set fails before TensorFlow
    check_data_argument(args.data)
    import_tensorflow(args)
    # these import TensorFlow: loaded after import_tensorflow hid its start-up logs
    from tfxfer.recipes.inference import delivered_file, evaluation_data, open_model
    from tfxfer.metrics import classification_metrics
    from tfxfer.recipes.text_eval import evaluate_text_model, format_text_metrics

    model = open_model(args.model)
    if model.image_size is None:  # text classifier or NER model: labelled texts, tables or CoNLL files
        metrics = evaluate_text_model(model, args.data, split=args.split, limit=args.limit,
                                      text_column=args.text_column, label_column=args.label_column)
        if args.json:
            emit_json(args, model=model.path, data=args.data, split=args.split, metrics=metrics)
        else:
            print(format_text_metrics(metrics, title=f"{os.path.basename(model.path)} on {args.data}"))
        return EXIT_OK
    x, y, names = evaluation_data(args.data, image_size=model.image_size, channels=model.channels, split=args.split,
                                  class_names=model.class_names, limit=args.limit)
    # A run directory: the file it delivered leads, the Keras model it came from stands beside it.
    shipped = delivered_file(args.model)
    keras_model = model
    if shipped is not None:
        model = open_model(shipped)
    probabilities = model.predict(x)
    metrics = classification_metrics(probabilities, y, names)
    keras_metrics, agreement = None, None
    if shipped is not None:
        keras_probabilities = keras_model.predict(x)
        keras_metrics = classification_metrics(keras_probabilities, y, names)
        agreement = float((probabilities.argmax(1) == keras_probabilities.argmax(1)).mean())
    if args.json:
        extra = {} if shipped is None else {"keras_model": keras_model.path, "keras_metrics": keras_metrics,
                                            "top1_agreement": agreement}
        emit_json(args, model=model.path, data=args.data, split=args.split, metrics=metrics, **extra)
        return EXIT_OK
    print(f"{os.path.basename(model.path)} on {args.data} ({len(y)} images): accuracy {metrics['accuracy']:.4f}, "
          f"macro F1 {metrics['macro_f1']:.4f}, ECE {metrics['ece']:.4f}")
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
    return EXIT_OK
