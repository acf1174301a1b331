"""The file that ships is the model that was validated: ELPV int8 fidelity and four-path parity.

Runs the default image recipe (``pipelines/image_classification.yaml``: ELPV solar cells, gray,
EfficientNet-Lite0 with ImageNet weights, head on cached features, one unfreezing stage, one epoch of
quantization-aware training, float32 + post-training int8 + QAT int8 files) exactly as ``tfxfer run``
does, then reads what the run delivered and measures (issue 14):

* the delivered int8 file's top-1 agreement with the Keras model on ALL held-out images (validation
  + test: no gradient step and no int8 calibration saw them; target >= 98 %), with a 95 % Wilson
  interval;
* its accuracy change with the gate's paired 95 % interval and verdict (the documented 1.0-point limit);
* the input quantization of every int8 file (post-training, QAT, selective; target: uint8, scale 1, zero
  point 0) and which images calibrated the post-training file;
* with ``--reverify``: the run's verify stage run again with the current code on a copy of the run
  (``<run>-chain``): the export chain (QAT -> post-training -> selective int8 -> float) with the 98 %
  agreement target; the selective remedy searches on the validation split, so the delivered file's
  agreement is also given on the test split alone;
* parity of the four paths (training pipeline, ``predict``, the SavedModel's serving signature,
  ``export/litert_runner.py``) with the run's Keras model on a mixed-format folder made from held-out
  cells (JPEG, CMYK JPEG, EXIF-turned JPEG, PNG 8/16-bit/palette/alpha, GIF, BMP): same top-1 on every
  image, max probability difference; and the delivered file through the device runner on the same folder.

Settings are the recipe's; ``--set key=value`` (as ``tfxfer run --set``) reduces them, and the JSON
lists every override. A run folder (``--run-dir``) that already holds this configuration's finished
run is reused (the recipe runner skips unchanged stages).

    python benchmarks/export_fidelity.py [--run-dir DIR] [--set train.epochs=2] [--parity-images 54]
    python benchmarks/export_fidelity.py --read-run runs/image_classification [--qat-targets float_model]
    python benchmarks/export_fidelity.py --read-run runs/image_classification --reverify   # the export chain again
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import Timer, print_table, write_result  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RUNNER = os.path.join(ROOT, "export", "litert_runner.py")
RECIPE = os.path.join(ROOT, "pipelines", "image_classification.yaml")


def wilson(successes: int, n: int, z: float = 1.959964) -> list[float]:
    """95 % Wilson score interval of a proportion."""
    if n == 0:
        return [0.0, 1.0]
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def _mixed_folder(images, folder):
    """Write each held-out cell (raw, full size) in a different format; returns the paths."""
    from PIL import Image

    def exif_turned(im, p):  # stored turned 90 degrees counter-clockwise; EXIF 6 turns it back upright
        exif = Image.Exif()
        exif[0x0112] = 6
        im.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(p, quality=92, exif=exif)

    writers = [
        ("jpg", lambda im, p: im.convert("RGB").save(p, quality=92)),
        ("cmyk.jpg", lambda im, p: im.convert("CMYK").save(p, quality=92)),
        ("exif6.jpg", exif_turned),
        ("png", lambda im, p: im.save(p)),
        ("16.png", lambda im, p: Image.fromarray(np.asarray(im).astype(np.uint16) * 257).save(p)),
        ("palette.png", lambda im, p: im.convert("RGB").quantize(256).save(p)),
        ("alpha.png", lambda im, p: im.convert("RGBA").save(p)),
        ("gif", lambda im, p: im.save(p)),
        ("bmp", lambda im, p: im.save(p)),
    ]
    paths = []
    for i, image in enumerate(images):
        ext, write = writers[i % len(writers)]
        path = os.path.join(folder, f"cell{i:03d}.{ext}")
        write(Image.fromarray(np.squeeze(image).astype(np.uint8)), path)
        paths.append(path)
    return paths


def _runner():
    spec = importlib.util.spec_from_file_location("litert_runner", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    return runner


def _parity(model, paths, size, channels, out_dir, class_names, delivered):
    """The four paths on ``paths`` vs the training pipeline; the delivered file on the device runner."""
    import tensorflow as tf

    from tfxfer.data.scan import scan_images
    from tfxfer.data.tfdata import decode_file
    from tfxfer.export import export_saved_model, export_tflite
    from tfxfer.export.served_outputs import model_output
    from tfxfer.recipes.image_inputs import read_images

    scanned = {r.path: r.blob for r in scan_images(paths).ok}  # the loaders' view (EXIF turn, conversions)
    missing = [p for p in paths if p not in scanned]
    if missing:
        raise RuntimeError(f"the loaders skipped {missing}")
    training = np.stack([decode_file(tf.constant(p), tf.constant(scanned[p]), image_size=(size, size),
                                     channels=channels).numpy() for p in paths]).astype("float32")
    p_train = model.predict(training, verbose=0)
    p_predict = model.predict(read_images(paths, image_size=(size, size), channels=channels), verbose=0)
    saved = export_saved_model(model, os.path.join(out_dir, "serving"), name="elpv", class_names=class_names)
    serve = tf.saved_model.load(saved.path).signatures["serving_default"]
    blobs = []
    for p in paths:
        with open(p, "rb") as f:
            blobs.append(f.read())
    own = model_output(serve.structured_outputs)  # the served output that is the model's own: like with like
    p_serving = np.concatenate([serve(image_bytes=tf.constant(blobs[s: s + 16]))[own].numpy()
                                for s in range(0, len(blobs), 16)])
    tflite = export_tflite(model, os.path.join(out_dir, "parity_float32.tflite"), variant="float32",
                           class_names=class_names, run_preflight=False)
    runner = _runner()
    p_device = np.stack([runner.Classifier(tflite.path).classify(p)[0] for p in paths])
    p_delivered = np.stack([runner.Classifier(delivered).classify(p)[0] for p in paths])
    out = {}
    for name, probs in (("predict", p_predict), ("serving", p_serving), ("device_runner", p_device),
                        ("delivered_file_on_device_runner", p_delivered)):
        out[name] = {"top1_same_as_training": int((probs.argmax(1) == p_train.argmax(1)).sum()),
                     "images": len(paths), "max_probability_difference": float(np.abs(probs - p_train).max())}
    return out


def _input_quantization(path):
    from tfxfer.export.litert import load_interpreter

    detail = load_interpreter(path).get_input_details()[0]
    scale, zero = detail["quantization"]
    return {"dtype": detail["dtype"].__name__, "scale": float(scale), "zero_point": int(zero),
            "exact_raw_pixels": detail["dtype"].__name__ == "uint8" and (float(scale), int(zero)) == (1.0, 0)}


def _variant_entry(r, path) -> dict:
    agree = int(round(r["top1_agreement"] * r["examples"]))
    entry = {
        "top1_agreement": r["top1_agreement"], "agreeing_images": agree, "held_out_images": r["examples"],
        "top1_agreement_wilson_95": wilson(agree, r["examples"]),
        "keras_accuracy": r["keras_accuracy"], "file_accuracy": r["tflite_accuracy"],
        "accuracy_drop_pts": r["accuracy_drop"],
        "drop_interval_95_pts": list(r["drop_interval"]) if r["drop_interval"] else None,
        "drop_verdict": r["drop_verdict"], "examples_needed": r["examples_needed"], "gate_passed": r["passed"],
        "agreement_target": r.get("agreement_target"), "meets_agreement_target": r.get("meets_agreement_target"),
        "failures": r["failures"], "per_class": r["per_class"], "size_bytes": os.path.getsize(path),
    }
    if os.path.basename(path).count("int8"):
        entry["input"] = _input_quantization(path)
    return entry


def _qat_again(cfg, model, run_dir, targets) -> dict:
    """The recipe's quantize step (tfxfer.recipes.edge_stages.run_quantize, same arguments) with
    ``train_qat(targets=targets)``, gated on the same held-out images against the same Keras model."""
    from tfxfer.quantize import train_qat
    from tfxfer.recipes.export_stages import gate_thresholds
    from tfxfer.recipes.image_data import load_image_data, take_images
    from tfxfer.recipes.image_stages import image_size_of
    from tfxfer.recipes.sources import resolve_source

    q = cfg.quantize
    splits = load_image_data(cfg, resolve_source(cfg), image_size=image_size_of(cfg))
    calibration = take_images(splits.train_plain, cfg.export.num_calibration)[0]
    path = os.path.join(run_dir + "-remedy", f"{cfg.name}_int8_qat_{targets}.tflite")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with Timer() as t:
        result = train_qat(model, splits.train, eval_data=splits.held_out_arrays(), path=path, epochs=q.epochs,
                           learning_rate=q.learning_rate, batch_size=cfg.train.batch_size,
                           representative_data=calibration, num_calibration=cfg.export.num_calibration,
                           thresholds=gate_thresholds(cfg), class_names=splits.class_names, raise_on_failure=False,
                           seed=cfg.seed, targets=targets)
    r = result.gate[result.export.variant].to_dict()
    return {"targets": targets, "path": path, "qat_seconds": round(t.seconds, 1), "history": result.history,
            **_variant_entry(r, path)}


def _reverify(run_dir: str) -> tuple[str, dict, float]:
    """Copy the finished run to ``<run_dir>-chain`` and run its verify stage again with the current code
    (`tfxfer.recipes.export_stages.run_verify`: the gate, the export chain and its remedies), on the
    run's own model, data splits and files; returns ``(copy, the stage's outputs, seconds)``."""
    import shutil

    from tfxfer.recipes import load_config
    from tfxfer.recipes.context import RunContext
    from tfxfer.recipes.export_stages import run_verify

    copy = run_dir.rstrip("/") + "-chain"
    if os.path.exists(copy):
        shutil.rmtree(copy)
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("tensorboard"))
    from tfxfer.recipes.console import Console

    ctx = RunContext(load_config(os.path.join(copy, "config.yaml")), copy, console=Console(verbosity=1))
    for name in sorted(os.listdir(os.path.join(copy, "stages"))):
        with open(os.path.join(copy, "stages", name), encoding="utf-8") as f:
            record = json.load(f)
        stage = name[: -len(".json")]
        if stage != "verify":
            ctx.outputs[stage], ctx.records[stage] = record["outputs"], record
    with Timer() as t:
        out = run_verify(ctx)
    return copy, out, t.seconds


def _test_split_agreement(cfg, model, delivered_path) -> dict:
    """The delivered file's top-1 agreement with ``model`` on the test split alone (the selective remedy
    searched on the validation split; these images took part in no choice)."""
    from tfxfer.export.litert import predict_tflite
    from tfxfer.recipes.image_data import load_image_data, take_images
    from tfxfer.recipes.image_stages import image_size_of
    from tfxfer.recipes.sources import resolve_source

    splits = load_image_data(cfg, resolve_source(cfg), image_size=image_size_of(cfg))
    x, _ = take_images(splits.test)
    agree = int((model.predict(x, batch_size=64, verbose=0).argmax(1) == predict_tflite(delivered_path, x).argmax(1)).sum())
    return {"images": int(len(x)), "agreeing_images": agree, "top1_agreement": agree / max(len(x), 1),
            "wilson_95": wilson(agree, len(x))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default=RECIPE)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="reduce a recipe setting (recorded in the JSON), e.g. train.epochs=2")
    parser.add_argument("--run-dir", default=None, help="run folder (reused when it holds this configuration)")
    parser.add_argument("--read-run", default=None, metavar="DIR",
                        help="measure the finished run in DIR as it is (its own config.yaml; nothing is re-run, "
                             "even if the recipe's keys changed since)")
    parser.add_argument("--reverify", action="store_true",
                        help="with --read-run: copy the run to DIR-chain, run its verify stage again with the current "
                             "code (the export chain: agreement target, selective int8 remedy) and measure the copy")
    parser.add_argument("--parity-images", type=int, default=54)
    parser.add_argument("--qat-targets", choices=("float_model",), default=None,
                        help="also run the recipe's quantize step again with train_qat(targets=...) on the run's "
                             "model and data (the remedy measured beside the delivered file)")
    args = parser.parse_args(argv)

    import keras

    from tfxfer import data
    from tfxfer.errors import GateError
    from tfxfer.recipes import load_config, run_pipeline
    from tfxfer.reliability import load_model

    reverify = None
    if args.reverify and not args.read_run:
        parser.error("--reverify needs --read-run DIR")
    if args.read_run:
        run_dir = os.path.abspath(args.read_run)
        cfg = load_config(os.path.join(run_dir, "config.yaml"))
        if args.reverify:
            source = run_dir
            run_dir, out, seconds = _reverify(run_dir)
            reverify = {"source_run": source, "copy": run_dir, "verify_stage_s": round(seconds, 1),
                        "deliver_variant": out["deliver_variant"], "deliver_reason": out.get("deliver_reason"),
                        "remedy": out.get("remedy")}
            print(f"verify stage again on {run_dir}: delivers {out['deliver_variant']} "
                  f"({out.get('deliver_reason') or 'first choice'}) in {seconds:.0f} s")
    else:
        cfg = load_config(args.recipe, overrides=args.overrides)
        run_dir = os.path.abspath(args.run_dir or tempfile.mkdtemp(prefix="tfxfer-fidelity-"))
    gate_error = None
    manifest_path = os.path.join(run_dir, "manifest.json")
    before = None
    if os.path.isfile(manifest_path):  # a finished run being reused: keep its own timings
        with open(manifest_path, encoding="utf-8") as f:
            before = json.load(f)
    with Timer() as t_run:
        wall = None
        try:
            if not args.read_run:
                wall = run_pipeline(cfg, out_dir=run_dir, verbosity=1).wall_s
        except GateError as exc:  # the report and manifest are written first: read what was delivered
            gate_error = str(exc)
    with open(os.path.join(run_dir, "export", "gate.json"), encoding="utf-8") as f:
        gate = json.load(f)
    with open(os.path.join(run_dir, "export", "table.json"), encoding="utf-8") as f:
        table = json.load(f)
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    if before and all(v.get("status") == "skipped" for k, v in manifest["stages"].items() if k != "report"):
        manifest = before
    recipe_run = {"started": manifest.get("started"), "wall_s": manifest.get("wall_s"),
                  "stage_wall_s": {k: v.get("wall_s") for k, v in manifest["stages"].items()}}
    delivered_variant, delivered = table["deliver_variant"], table["deliver"]
    delivered_path = os.path.join(run_dir, delivered) if delivered else None

    rows, variants = [], {}
    for variant, r in gate["results"].items():
        path = os.path.join(run_dir, r["path"])
        entry = _variant_entry(r, path)
        variants[variant] = entry
        rows.append({"variant": variant + (" (delivered)" if variant == delivered_variant else ""),
                     "agreement": r["top1_agreement"], "acc_keras": r["keras_accuracy"],
                     "acc_file": r["tflite_accuracy"], "drop_pts": r["accuracy_drop"],
                     "drop_95": "-" if not r["drop_interval"] else
                     f"[{r['drop_interval'][0]:+.2f}, {r['drop_interval'][1]:+.2f}]",
                     "verdict": r["drop_verdict"] or "-", "gate": "PASS" if r["passed"] else "FAIL",
                     "input": "-" if "input" not in entry else
                     f"{entry['input']['dtype']} s={entry['input']['scale']:g} zp={entry['input']['zero_point']}"})
    print_table(rows, list(rows[0]))

    calibration = None
    if "int8" in gate["results"]:  # the post-training file's sidecar records its calibration images
        from tfxfer.export.metadata import sidecar_path

        with open(sidecar_path(os.path.join(run_dir, gate["results"]["int8"]["path"])), encoding="utf-8") as f:
            calibration = json.load(f).get("calibration")
    size = tuple(cfg.model.input_size)[0]
    channels = 1 if cfg.data.color_mode == "grayscale" else 3
    model = (load_model(os.path.join(run_dir, "model", "model.keras"))
             if args.parity_images or args.qat_targets or reverify else None)
    test_only = _test_split_agreement(cfg, model, delivered_path) if reverify and delivered_path else None
    parity, paths = {}, []
    if args.parity_images:  # 0: only read the run's gate (no TensorFlow work beyond loading the run)
        keras.utils.set_random_seed(0)
        elpv = data.load("elpv")
        held_x = np.concatenate([elpv.val.x, elpv.test.x])
        folder = tempfile.mkdtemp(prefix="tfxfer-mixed-")
        paths = _mixed_folder(held_x[: args.parity_images], folder)
        parity = _parity(model, paths, size, channels, run_dir + "-parity", list(elpv.class_names), delivered_path)
        parity_rows = [{"path": name, **values} for name, values in parity.items()]
        print_table(parity_rows, ["path", "top1_same_as_training", "images", "max_probability_difference"])

    remedy = _qat_again(cfg, model, run_dir, args.qat_targets) if args.qat_targets else None
    if remedy:
        print(f"QAT with targets={args.qat_targets}: agreement {remedy['top1_agreement']:.4f} "
              f"({remedy['agreeing_images']}/{remedy['held_out_images']}), drop {remedy['accuracy_drop_pts']:+.2f} pts "
              f"{remedy['drop_interval_95_pts']} {remedy['drop_verdict']}, gate {'PASS' if remedy['gate_passed'] else 'FAIL'}")
    d = variants.get(delivered_variant, {})
    int8_inputs = {v: e["input"] for v, e in variants.items() if "input" in e}
    summary = {
        "recipe": os.path.join(run_dir, "config.yaml") if args.read_run else os.path.relpath(args.recipe, ROOT),
        "overrides (reductions)": args.overrides,
        "settings": {"backbone": cfg.model.backbone, "weights": cfg.model.weights, "input_size": size,
                     "channels": channels, "head_epochs": cfg.train.head_epochs, "epochs": cfg.train.epochs,
                     "qat": {"enabled": cfg.quantize.enabled, "method": cfg.quantize.method,
                             "epochs": cfg.quantize.epochs},
                     "variants": list(cfg.export.variants), "deliver": cfg.export.deliver,
                     "thresholds": {k: dict(v) for k, v in cfg.export.thresholds.items()}, "seed": cfg.seed},
        "run_dir": run_dir, "read_as_is": bool(args.read_run), "recipe_run": recipe_run, "this_call_run_wall_s": wall, "gate_error": gate_error,
        "int8_calibration": calibration,
        "delivered": {"variant": delivered_variant, "path": delivered},
        "held_out_images": d.get("held_out_images"),
        "delivered_top1_agreement_all_held_out": d.get("top1_agreement"),
        "delivered_top1_agreement_wilson_95": d.get("top1_agreement_wilson_95"),
        "delivered_top1_agreement_test_split_only": test_only,
        "delivery_chain": {"reason": table.get("deliver_reason"), "agreement_target": d.get("agreement_target"),
                           "reverify": reverify},
        "delivered_accuracy_drop_pts": d.get("accuracy_drop_pts"),
        "delivered_drop_interval_95_pts": d.get("drop_interval_95_pts"),
        "delivered_drop_verdict": d.get("drop_verdict"), "delivered_gate_passed": d.get("gate_passed"),
        "int8_inputs": int8_inputs,
        "variants": variants,
        "qat_remedy": remedy,
        "parity": parity, "parity_folder_formats": sorted({os.path.basename(p).split(".", 1)[1] for p in paths}),
        "targets": {
            "delivered_int8_agreement>=0.98": bool(delivered_variant.startswith("int8")
                                                   and (d.get("top1_agreement") or 0) >= 0.98),
            "delivered_drop_within_gate": d.get("drop_verdict") in ("pass", "undecided") and bool(d.get("gate_passed")),
            "int8_inputs_scale1_zp0": bool(int8_inputs) and all(v["exact_raw_pixels"] for v in int8_inputs.values()),
            "parity_top1_all_images": (all(v["top1_same_as_training"] == v["images"]
                                           for k, v in parity.items() if k != "delivered_file_on_device_runner")
                                       if parity else None),
        },
        "benchmark_wall_s": round(t_run.seconds, 1), "load_average_1min": round(os.getloadavg()[0], 2),
    }
    write_result("export_fidelity", rows, summary)


if __name__ == "__main__":
    main()
