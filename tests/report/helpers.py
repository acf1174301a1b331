"""A synthetic run directory with every file the report reads (no training needed)."""

import json
import os

import numpy as np
import yaml

CLASSES = ["bear", "bird", "cat"]


def _write(run_dir, rel, obj):
    path = os.path.join(run_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def make_run_dir(run_dir, *, gate="pass", text_mistakes=False):
    run_dir = str(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    config = {"name": "synthetic", "task": "image_classification", "seed": 0,
              "data": {"source": "animal_mnist"}, "model": {"backbone": "efficientnet_lite0"},
              "export": {"deliver": "int8", "variants": ["float32", "int8"]}}
    with open(os.path.join(run_dir, "config.yaml"), "w") as f:
        yaml.safe_dump(config, f)
    counts = {"train": {"bear": 40, "bird": 35, "cat": 12}, "val": {"bear": 5, "bird": 5, "cat": 2},
              "test": {"bear": 5, "bird": 4, "cat": 3}}
    _write(run_dir, "data/summary.json", {
        "source": "packaged data set 'animal_mnist' (MIT)", "scanned": 111, "used": 111, "class_names": CLASSES,
        "class_counts": counts, "skipped": [{"path": "bear/broken.jpg", "reason": "empty_file", "detail": "broken.jpg"}],
        "skip_counts": {"empty_file": 1}, "duplicates": [],
        "leakage": [{"sha256": "ab" * 32, "splits": {"test": ["test#1"], "train": ["train#3"]}}],
        "imbalance": {"ratio": 3.33}, "notes": ["a note <b>escaped</b>"], "eval_split": "test",
        "data_fingerprint": "f" * 64})
    epochs = 5
    _write(run_dir, "model/history.json", {
        "history": {"loss": list(np.linspace(1.5, 0.3, epochs)), "val_loss": list(np.linspace(1.4, 0.4, epochs)),
                    "accuracy": list(np.linspace(0.4, 0.9, epochs)), "val_accuracy": list(np.linspace(0.45, 0.85, epochs))},
        "stages": [{"epoch": 0, "label": "head on cached features", "learning_rate": 1e-3, "trainable_groups": ["head"]},
                   {"epoch": 3, "label": "unfreeze 1 group(s): top", "learning_rate": 1e-4,
                    "trainable_groups": ["head", "top"]}],
        "lr_steps": [{"step": i, "epoch": i / 4, "lr": 1e-3 if i < 12 else 1e-4 * min(1, (i - 11) / 4)}
                     for i in range(1, 21)]})
    _write(run_dir, "eval/metrics.json", {
        "num_examples": 12, "accuracy": 0.75, "macro_f1": 0.7, "ece": 0.08, "split": "test",
        "per_class": [{"name": n, "precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 4} for n in CLASSES],
        "confusion": [[4, 1, 0], [1, 3, 0], [0, 1, 2]],
        "reliability": [{"lo": i / 5, "hi": (i + 1) / 5, "count": 2 + i, "confidence": i / 5 + 0.1,
                         "accuracy": i / 5 + 0.05} for i in range(5)]})
    shown = [{"index": i, "true": "cat", "predicted": "bird", "confidence": 0.9 - i / 10, "true_probability": 0.05}
             for i in range(3)]
    for i, item in enumerate(shown):
        if text_mistakes:
            item["text"] = f"a <script>alert({i})</script> review"
        else:
            item["thumbnail"] = i
    _write(run_dir, "eval/misclassified.json", {"count": 3, "shown": shown})
    if not text_mistakes:
        thumbs = np.random.default_rng(0).integers(0, 255, (3, 28, 28, 1)).astype(np.uint8)
        with open(os.path.join(run_dir, "eval", "misclassified.npz"), "wb") as f:
            np.savez(f, thumbnails=thumbs)
    rows = [{"variant": v, "file": f"synthetic_{v}.tflite", "size_kib": size, "size_ratio": None,
             "latency_ms": lat, "latency_nt_ms": lat / 1.6, "threads": [1, 2], "accuracy_keras": 0.75,
             "accuracy_file": acc, "accuracy_drop_pts": round((0.75 - acc) * 100, 2), "top1_agreement": 0.99,
             "max_abs_error": 1e-6, "gate": g, "failures": [] if g == "pass" else ["accuracy drop 9.0 > 1.0 points"]}
            for v, size, lat, acc, g in (("float32", 13194.7, 12.4, 0.75, "pass"), ("int8", 3901.7, 1.3, 0.66, gate))]
    _write(run_dir, "export/table.json", {"rows": rows, "deliver": "export/synthetic_int8.tflite" if gate == "pass"
                                          else None, "passed": gate == "pass"})
    _write(run_dir, "manifest.json", {
        "status": "ok" if gate == "pass" else "gate_failed", "wall_s": 250.0, "written": "2026-01-01T00:00:00+00:00",
        "command": ["tfxfer", "run", "pipelines/quick.yaml"], "packages": {"tensorflow": "2.21.0", "keras": "3.15.1"},
        "stages": {"verify": {"status": "done", "wall_s": 40.0, "fingerprint": "v"},
                   "data": {"status": "skipped", "wall_s": 2.0, "fingerprint": "d"},
                   "finetune": {"status": "done", "wall_s": 60.0, "fingerprint": "f"}},
        "artefacts": {"export/synthetic_int8.tflite": {"sha256": "c" * 64, "bytes": 3995341, "stage": "export"}}})
    return run_dir
