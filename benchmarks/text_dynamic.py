"""The dynamic (int8-weight) text file two ways, on a finished text recipe run's model: which one to ship.

``tfxfer.export.convert_text_tflite(model, variant="dynamic")`` can take its int8 weights from the TFLite
converter's dynamic-range pass (``quantizer="converter"``: per-channel projections, but the token embedding with
one scale for the whole table) or from tfxfer's own rewrite of the float32 file (``quantizer="per_row"``, the
default: one scale per row for every large matrix, the projections on LiteRT's hybrid kernels with asymmetric
input quantization, the embedding dequantized once at load). Both are scored against the run's Keras model on the
packaged validation and test texts (top-1 agreement, the documented gate being >= 0.99; accuracy; disagreements),
with size and single-thread latency (LiteRT, interleaved rounds); the float32 file is the reference row.

    python benchmarks/text_dynamic.py RUN_DIR [RUN_DIR ...]   # e.g. runs/text_classification

Several run folders (e.g. the recipe run with ``--set seed=1`` / ``seed=2``) give one row per run and file and a
per-file summary (gate passes, mean agreement). Writes ``results/text_dynamic.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _common import print_table, write_result  # noqa: E402

FILES = {"float32": ("float32", "per_row"), "dynamic_converter": ("dynamic", "converter"),
         "dynamic_per_row": ("dynamic", "per_row"), "weight_only": ("weight_only", "per_row")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs_dirs", nargs="*", metavar="RUN_DIR",
                        help="finished `tfxfer run` folders of a text_classification recipe")
    parser.add_argument("--runs", type=int, default=30, help="timed LiteRT runs per file and thread count")
    args = parser.parse_args(argv)
    if not args.runs_dirs:  # `make bench` runs every script bare: this one scores an earlier run
        print("skipped: needs RUN_DIR (a finished text recipe run); see the module docstring")
        return
    rows, runs = [], []
    for run in args.runs_dirs:
        run_rows, info = score_run(run, args.runs)
        rows += run_rows
        runs.append(info)
    print_table(rows)
    write_result("text_dynamic", rows, {"runs": runs, "per_file": per_file(rows),
                                        "gate": "dynamic: top-1 agreement >= 0.99 on the recipe's test texts",
                                        "timed_runs": args.runs})


def per_file(rows) -> dict:
    """Per file kind over runs: gate passes, mean / min test agreement, mean accuracy minus Keras's."""
    out = {}
    for key in FILES:
        mine = [r for r in rows if r["file"] == key]
        out[key] = {"runs": len(mine), "gate_passes": sum(r["gate_test"] == "pass" for r in mine),
                    "test_agreement_mean": round(float(np.mean([r["test_agreement"] for r in mine])), 4),
                    "test_agreement_min": round(float(min(r["test_agreement"] for r in mine)), 4),
                    "val_agreement_mean": round(float(np.mean([r["val_agreement"] for r in mine])), 4),
                    "test_accuracy_minus_keras_mean": round(float(np.mean(
                        [r["test_accuracy"] - r["test_accuracy_keras"] for r in mine])), 4)}
    return out


def score_run(run: str, timed_runs: int):
    """Rows (one per file kind) for one finished recipe run, and the run's description."""
    from tfxfer.data import load
    from tfxfer.export import benchmark_variants, convert_text_tflite
    from tfxfer.export.text_gate import predict_text_tflite, tokenize_for
    from tfxfer.reliability import load_model

    with open(os.path.join(run, "manifest.json")) as f:
        manifest = json.load(f)
    source = manifest["config"]["data"]["source"]
    seed = manifest["config"].get("seed")
    model = load_model(os.path.join(run, "model", "model.keras"), compile=False)
    data = load(source)
    splits = {}
    for name, (texts, labels) in (("val", data.val), ("test", data.test)):
        texts = np.asarray([str(t) for t in texts], dtype=object)
        reference = np.asarray(model.predict(texts, batch_size=64, verbose=0))
        splits[name] = (tokenize_for(model, texts), np.asarray(labels), reference.argmax(-1))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for key, (variant, quantizer) in FILES.items():
            paths[key] = os.path.join(tmp, f"{key}.tflite")
            with open(paths[key], "wb") as f:
                f.write(convert_text_tflite(model, variant=variant, quantizer=quantizer))
        timing = benchmark_variants(paths, threads=(1,), runs=timed_runs, memory=False)
        for key, path in paths.items():
            row = {"seed": seed, "file": key, "size_mib": round(os.path.getsize(path) / 2**20, 2),
                   "median_ms_1thread": round(timing[key].median_ms(1), 2)}
            for name, (inputs, labels, keras_top1) in splits.items():
                top1 = predict_text_tflite(path, inputs).argmax(-1)
                row[f"{name}_agreement"] = round(float((top1 == keras_top1).mean()), 4)
                row[f"{name}_disagreements"] = int((top1 != keras_top1).sum())
                row[f"{name}_accuracy"] = round(float((top1 == labels).mean()), 4)
                row[f"{name}_accuracy_keras"] = round(float((keras_top1 == labels).mean()), 4)
            row["gate_test"] = "pass" if row["test_agreement"] >= 0.99 else "FAIL"
            rows.append(row)
    return rows, {"run": os.path.abspath(run), "data": source, "seed": seed,
                  "sizes": {k: int(len(v[1])) for k, v in splits.items()},
                  "batch_size": timing["float32"].batch_size}


if __name__ == "__main__":
    main()
