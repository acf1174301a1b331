"""Where a sentiment model's errors sit: accuracy by how clearly the human raters agreed.

The packaged ``sentiment_*`` sets label a snippet by the sign of its mean rating (20 raters, -4 to +4) and keep
the near-neutral ones (``|rating| < 1``; see ``tfxfer datasets``). This script scores a finished text run (its
``model/model.keras`` and the ``.tflite`` file it delivered) on the packaged test split, per band of
``|rating|``, so that a target such as "0.90 accuracy" can be read against what the labels allow: a model at
chance on near-neutral snippets needs ``(0.90 - 0.5 * share_near) / (1 - share_near)`` on the rest.

    python benchmarks/rating_bands.py RUN_DIR [--dataset sentiment_movies]

Writes ``results/rating_bands.json`` (one row per band and model).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import print_table, write_result  # noqa: E402

BANDS = ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 4.01))


def band_rows(model_name: str, correct: np.ndarray, rating: np.ndarray) -> list[dict]:
    """Accuracy per ``|rating|`` band, plus near-neutral (< 1) and clear (>= 1) and all."""
    strength = np.abs(rating)
    groups = [(f"[{lo:g}, {min(hi, 4):g}{']' if hi > 4 else ')'}", (strength >= lo) & (strength < hi)) for lo, hi in BANDS]
    groups += [("near-neutral (< 1)", strength < 1), ("clear (>= 1)", strength >= 1), ("all", strength >= 0)]
    return [{"model": model_name, "band": name, "n": int(mask.sum()), "share": float(mask.mean()),
             "accuracy": float(correct[mask].mean()) if mask.any() else None} for name, mask in groups]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", help="a finished `tfxfer run` folder of a text_classification recipe")
    parser.add_argument("--dataset", default="sentiment_movies")
    parser.add_argument("--name", default="rating_bands")
    args = parser.parse_args(argv)
    if args.run is None:  # `make bench` runs every script bare: this one scores an earlier run
        print("skipped: needs RUN_DIR (a finished text recipe run); see the module docstring")
        return

    import keras

    import tfxfer  # noqa: F401  (registers tfxfer's Keras classes)
    from tfxfer import data
    from tfxfer.export.text_gate import predict_text_tflite, tokenize_for
    from tfxfer.recipes.inference import delivered_file
    from tfxfer.text import predict_texts

    d = data.load(args.dataset)
    texts, labels = np.asarray(d.test[0], dtype=object), np.asarray(d.test[1])
    rating = np.asarray(d.extras["test"]["rating"], dtype=float)
    model = keras.saving.load_model(os.path.join(args.run, "model", "model.keras"), compile=False)
    keras_pred = predict_texts(model, texts).argmax(-1)
    rows = band_rows("keras", keras_pred == labels, rating)
    summary = {"run": os.path.abspath(args.run), "dataset": args.dataset, "split": "packaged test split",
               "test_size": int(len(labels))}
    tflite = delivered_file(args.run)
    if tflite:
        file_pred = predict_text_tflite(tflite, tokenize_for(model, texts)).argmax(-1)
        rows += band_rows(os.path.basename(tflite), file_pred == labels, rating)
        summary.update(delivered=os.path.basename(tflite), top1_agreement=float((file_pred == keras_pred).mean()))
    near = next(r for r in rows if r["model"] == "keras" and r["band"] == "near-neutral (< 1)")
    share = near["share"]
    summary["clear_accuracy_needed_for_0.90"] = {
        "near_neutral_at_chance": (0.90 - 0.5 * share) / (1 - share),
        "near_neutral_as_measured_keras": (0.90 - near["accuracy"] * share) / (1 - share)}
    print_table(rows)
    write_result(args.name, rows, summary)


if __name__ == "__main__":
    main()
