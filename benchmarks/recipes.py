"""Wall time and headline metrics of the shipped recipes, run end to end on their packaged data.

Each recipe runs through `tfxfer.recipes.run_pipeline` in a fresh run folder (no stage reuse), in
this process, one after another. The table lists wall time, the test metric, the delivered TFLite
variant with its size, latency and accuracy, and whether every gate passed. ``--from-runs`` instead
reads the manifests of runs already made with ``tfxfer run`` (their wall times are as recorded).

    python benchmarks/recipes.py                       # quick, image_classification, edge (about 12 min)
    python benchmarks/recipes.py --recipes quick,text_classification,ner
    python benchmarks/recipes.py --from-runs runs/image_classification /tmp/runs/quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import machine_info, print_table, write_result  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADLINE = ("accuracy", "macro_f1", "entity_f1", "ece")


def row_from_manifest(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    metrics = manifest.get("metrics") or {}
    gate = manifest.get("gate") or {}
    deliver = gate.get("deliver")
    rows = {r["variant"]: r for r in gate.get("rows", [])}
    variant = next((v for v in rows if deliver and deliver.endswith(f"_{v}.tflite")), None)
    shipped = rows.get(variant, {})
    row = {"recipe": manifest["config"]["name"], "status": manifest["status"],
           "wall_min": round(manifest["wall_s"] / 60.0, 2),
           **{k: metrics[k] for k in HEADLINE if metrics.get(k) is not None},
           "delivered": variant, "size_kib": shipped.get("size_kib"), "latency_ms": shipped.get("latency_ms"),
           "accuracy_file": shipped.get("accuracy_file"), "gate_passed": gate.get("passed"),
           # the gate judges the file against the Keras model on the same held-out examples (image recipes:
           # validation + test; text: test), so these two compare like with like; "accuracy" is the test split's
           "accuracy_keras_gate_set": shipped.get("accuracy_keras"), "top1_agreement": shipped.get("top1_agreement")}
    return row


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", default="quick,image_classification,edge",
                        help="comma-separated names of pipelines/<name>.yaml")
    parser.add_argument("--from-runs", nargs="*", help="read these run folders' manifests instead of running")
    args = parser.parse_args(argv)
    if args.from_runs:
        rows = [row_from_manifest(d) for d in args.from_runs]
        source = "manifests of earlier `tfxfer run` runs: " + ", ".join(args.from_runs)
    else:
        from tfxfer.recipes import load_config, run_pipeline

        rows = []
        with tempfile.TemporaryDirectory(prefix="tfxfer-recipes-") as tmp:
            for name in [n.strip() for n in args.recipes.split(",") if n.strip()]:
                cfg = load_config(os.path.join(ROOT, "pipelines", f"{name}.yaml"))
                result = run_pipeline(cfg, out_dir=os.path.join(tmp, name), verbosity=0)
                rows.append(row_from_manifest(result.run_dir))
                print_table(rows[-1:])
        source = "fresh runs in this process"
    import datetime

    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes")
    cpu = machine_info()["cpu"]  # rows kept from earlier runs may come from other machines: each row names its CPU
    for row in rows:
        row["measured"], row["source"], row["cpu"] = stamp, source, cpu
    # Keep the rows of recipes not re-run this time (each row says when and how it was measured).
    previous = os.path.join(ROOT, "benchmarks", "results", "recipes.json")
    if os.path.isfile(previous):
        with open(previous, encoding="utf-8") as f:
            kept = [r for r in json.load(f).get("rows", []) if r["recipe"] not in {n["recipe"] for n in rows}]
        rows = kept + rows
    order = ["quick", "image_classification", "edge", "text_classification", "ner"]
    rows.sort(key=lambda r: order.index(r["recipe"]) if r["recipe"] in order else len(order))
    columns = ["recipe", "status", "wall_min", *HEADLINE, "delivered", "size_kib", "latency_ms", "accuracy_file",
               "accuracy_keras_gate_set", "top1_agreement", "gate_passed"]
    print_table(rows, [c for c in columns if any(c in r for r in rows)])
    write_result("recipes", rows, {"recipes": [r["recipe"] for r in rows],
                                   "note": "wall times on this machine; see each row's source and date"})


if __name__ == "__main__":
    main()
