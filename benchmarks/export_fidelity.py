"""The file that ships is the model that was validated: ELPV int8 fidelity and four-path parity.

EfficientNet-Lite0 (real ImageNet weights, offline) gets a new head trained on cached features of
ELPV (grayscale solar cells, 2 classes: functional / defective). ``tfxfer.export.export_all`` then
writes float32 and full int8, calibrated on TRAINING images only (``--calibration``, recorded in
the sidecar), and gates both on ALL held-out images (validation + test, which neither the head
fit nor the calibration saw). Measured (issue 14):

* the int8 file's input quantization (target: uint8, scale 1, zero point 0);
* top-1 agreement of the int8 file with the Keras model on all held-out images (target >= 98 %);
* its accuracy drop with the paired 95 % interval and the gate's verdict;
* parity of the four paths (training pipeline, ``predict``, the SavedModel's serving signature,
  ``export/litert_runner.py``) on a mixed-format folder made from held-out cells (JPEG, CMYK JPEG,
  PNG 8/16-bit/palette/alpha, GIF, BMP): same top-1 on every image, max probability difference.

    python benchmarks/export_fidelity.py [--size 224] [--calibration 500] [--head-epochs 30]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from _common import Timer, print_table, write_result  # noqa: E402

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "export", "litert_runner.py")


def _resize(images, size):
    import tensorflow as tf

    from tfxfer.data.decode import resize_pixels

    out = [resize_pixels(tf.constant(images[s: s + 256]), (size, size)).numpy() for s in range(0, len(images), 256)]
    return np.concatenate(out).astype("float32")


def _mixed_folder(images, folder):
    """Write each held-out cell (raw, full size) in a different format; returns the paths."""
    from PIL import Image

    writers = [
        ("jpg", lambda im, p: im.convert("RGB").save(p, quality=92)),
        ("cmyk.jpg", lambda im, p: im.convert("CMYK").save(p, quality=92)),
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


def _parity(model, paths, size, channels, out_dir, class_names):
    import tensorflow as tf

    from tfxfer.data.tfdata import decode_file
    from tfxfer.export import export_saved_model, export_tflite
    from tfxfer.recipes.inference import read_images

    training = np.stack([decode_file(tf.constant(p), tf.constant(b""), image_size=(size, size),
                                     channels=channels).numpy() for p in paths]).astype("float32")
    p_train = model.predict(training, verbose=0)
    p_predict = model.predict(read_images(paths, image_size=(size, size), channels=channels), verbose=0)
    saved = export_saved_model(model, os.path.join(out_dir, "serving"), name="elpv", class_names=class_names)
    serve = tf.saved_model.load(saved.path).signatures["serving_default"]
    blobs = [open(p, "rb").read() for p in paths]
    p_serving = np.concatenate([serve(image_bytes=tf.constant(blobs[s: s + 16]))["probabilities"].numpy()
                                for s in range(0, len(blobs), 16)])
    tflite = export_tflite(model, os.path.join(out_dir, "parity_float32.tflite"), variant="float32",
                           class_names=class_names, run_preflight=False)
    spec = importlib.util.spec_from_file_location("litert_runner", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    classifier = runner.Classifier(tflite.path)
    p_device = np.stack([classifier.classify(p)[0] for p in paths])
    out = {}
    for name, probs in (("predict", p_predict), ("serving", p_serving), ("device_runner", p_device)):
        out[name] = {"top1_same_as_training": int((probs.argmax(1) == p_train.argmax(1)).sum()),
                     "images": len(paths), "max_probability_difference": float(np.abs(probs - p_train).max())}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--calibration", type=int, default=500)
    parser.add_argument("--head-epochs", type=int, default=30)
    parser.add_argument("--parity-images", type=int, default=48)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import keras

    from tfxfer import data
    from tfxfer.export import export_all
    from tfxfer.export.litert import load_interpreter
    from tfxfer.models import build_model, feature_model, head_model

    keras.utils.set_random_seed(0)
    elpv = data.load("elpv")
    x_train, y_train = _resize(elpv.train.x, args.size), elpv.train.y
    held_x = np.concatenate([elpv.val.x, elpv.test.x])
    x_held, y_held = _resize(held_x, args.size), np.concatenate([elpv.val.y, elpv.test.y])
    model = build_model("efficientnet_lite0", len(elpv.class_names), input_size=(args.size, args.size), channels=1)
    with Timer() as t_train:
        features = feature_model(model).predict(x_train, batch_size=32, verbose=0)
        head = head_model(model)
        head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        head.fit(features, y_train, epochs=args.head_epochs, batch_size=32, verbose=0)
    out_dir = args.out or tempfile.mkdtemp(prefix="tfxfer-fidelity-")
    with Timer() as t_export:
        table = export_all(model, out_dir, variants=("float32", "int8"), representative_data=x_train,
                           eval_data=(x_held, y_held), class_names=list(elpv.class_names), name="elpv",
                           num_calibration=args.calibration, benchmark=False, keep_failed=True,
                           calibration_record={"source": "elpv", "split": "train"})
    print(table.gate.format(per_class="all"))
    detail = load_interpreter(table.exports["int8"].path).get_input_details()[0]
    int8 = table.gate["int8"]
    folder = tempfile.mkdtemp(prefix="tfxfer-mixed-")
    paths = _mixed_folder(held_x[: args.parity_images], folder)
    parity = _parity(model, paths, args.size, 1, out_dir, list(elpv.class_names))
    rows = [{"path": name, **values} for name, values in parity.items()]
    print_table(rows, ["path", "top1_same_as_training", "images", "max_probability_difference"])
    summary = {
        "backbone": "efficientnet_lite0 (imagenet)", "input_size": args.size, "channels": 1,
        "train_images": int(len(y_train)), "held_out_images": int(len(y_held)),
        "calibration": {"source": "elpv", "split": "train", "images": int(table.exports["int8"].calibration_samples)},
        "int8_input": {"dtype": detail["dtype"].__name__, "scale": float(detail["quantization"][0]),
                       "zero_point": int(detail["quantization"][1])},
        "int8_top1_agreement_all_held_out": int8.top1_agreement,
        "keras_accuracy": int8.keras_accuracy, "int8_accuracy": int8.tflite_accuracy,
        "int8_accuracy_drop_pts": int8.accuracy_drop, "int8_drop_interval_95": list(int8.drop_interval),
        "int8_drop_verdict": int8.drop_verdict, "int8_examples_needed": int8.examples_needed,
        "int8_gate_passed": int8.passed,
        "per_class": int8.per_class,
        "parity": parity,
        "targets": {"int8_agreement>=0.98": int8.top1_agreement >= 0.98,
                    "int8_input_scale1_zp0": (float(detail["quantization"][0]), int(detail["quantization"][1]))
                    == (1.0, 0),
                    "parity_top1_all_images": all(v["top1_same_as_training"] == v["images"] for v in parity.values())},
        "train_seconds": round(t_train.seconds, 1), "export_seconds": round(t_export.seconds, 1),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    write_result("export_fidelity", rows, summary)


if __name__ == "__main__":
    main()
